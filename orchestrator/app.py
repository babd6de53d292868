"""The gateway's app factory: public routes, the client token check, the order flow."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import falcon

from contracts import gateway as wire
from contracts import vocabulary as words
from orchestrator import flow, resources
from orchestrator.auth import ClientAuth
from orchestrator.console import RunStore, add_console
from orchestrator.console.recorder import Recorder
from orchestrator.docs import add_docs
from orchestrator.metrics import FlowMetrics
from orchestrator.tokens import TokenVerifier
from services.common.clients import CLIENTS, make_client
from services.common.config import INTERNAL_SERVICES, Settings
from services.common.errors import ApiError, Mapped, retry_after
from services.common.metrics import Metrics
from services.common.readiness import add_readiness
from services.common.tracing import Tracing
from services.common.web import base_app

SERVICE = "gateway"


def on_flow_stopped(req: falcon.Request, resp: falcon.Response, exc: Exception, params: Any) -> None:
    assert isinstance(exc, flow.FlowStopped)
    failure, step = exc.failure, exc.step
    # A refusal the step passes on is the client's to fix; any other means a request
    # the gateway made was refused, so the client gets the failed step.
    if failure.reason == words.REFUSED and failure.status in step.client_refusals:
        raise ApiError(failure.status, failure.code or "refused", failure.detail, order_id=exc.order_id)
    status = words.STATUS_OF_FAILURE[failure.reason]
    raise ApiError(
        status,
        f"{step.name}_failed",
        f"Order flow stopped at step {step.number} ({step.name})",
        _advice(exc),
        headers=retry_after(status, failure.retry_after),
        step=step.number,
        step_name=step.name,
        reason=failure.reason,
        order_id=exc.order_id,
        service=step.target,
    )


def _advice(exc: flow.FlowStopped) -> str:
    where = f"{exc.step.target} {exc.failure.reason.replace('_', ' ')}"
    if exc.order_id is None:
        return f"{where}; no order was created. Send the same request again."
    return (
        f"{where}. Order {exc.order_id} is kept; send the same request with the same "
        "Idempotency-Key again to finish it, or an operator's recovery will."
    )


def create_app(
    settings: Settings,
    *,
    clients: Mapping[str, Any] | None = None,
    tracing: Tracing | None = None,
    runs: RunStore | None = None,
) -> falcon.App:
    """The gateway, calling the five services through ``clients`` by name (by default,
    over HTTP at the configured URLs), keeping the runs it answers in ``runs`` for the
    operator console (by default, the last ``console_runs``)."""
    tracing = tracing or Tracing(SERVICE)
    runs = runs if runs is not None else RunStore(settings.console_runs)
    tracing.provider.add_span_processor(Recorder(runs))
    tracer = tracing.tracer
    made = clients or {
        name: make_client(CLIENTS[name], SERVICE, name, settings, tracer=tracer) for name in INTERNAL_SERVICES
    }
    verifier = TokenVerifier(
        made["auth"],
        settings.token_issuer,
        settings.token_audience,
        settings.token_leeway,
        settings.jwks_refresh_interval,
    )
    services = flow.Services(orders=made["orders"], billing=made["billing"], notifications=made["notifications"])
    # The flow's metrics join the HTTP ones in the gateway's registry.
    metrics = Metrics(SERVICE)
    app = base_app(
        SERVICE,
        metrics=metrics,
        max_body=settings.max_body,
        middleware=[ClientAuth(verifier, wire.OPERATIONS)],
        domain_errors={flow.Forbidden: Mapped(403, "forbidden", "Not your order to create")},
        tracer=tracer,
    )
    app.add_error_handler(flow.FlowStopped, on_flow_stopped)
    app.add_route("/auth/register", resources.Register(made["auth"]))
    app.add_route("/auth/login", resources.Login(made["auth"]))
    app.add_route("/profile", resources.Profile(made["profiles"]))
    app.add_route("/wallet", resources.Wallet(made["billing"]))
    app.add_route("/wallet/operations", resources.WalletOperations(made["billing"]))
    app.add_route("/wallet/deposits", resources.Deposits(made["billing"]))
    steps_traced = tracer if tracing.enabled else None
    app.add_route("/orders", resources.Orders(services, FlowMetrics(metrics.registry), steps_traced))
    app.add_route("/orders/{order_id:uuid}", resources.Order(made["orders"]))
    app.add_route("/letters", resources.Letters(made["notifications"]))
    app.add_route("/letters/{letter_id:uuid}", resources.Letter(made["notifications"]))
    add_docs(app)
    add_console(app, runs, settings.operator())
    # No database of its own: ready unless draining, whichever services behind it are down.
    add_readiness(app, SERVICE, {})
    return app


def get_app() -> falcon.App:
    return create_app(Settings.from_env())
