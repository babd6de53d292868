"""The gateway's public resources. Each checks the caller from the token, calls the
service that owns the data, and answers in the same error shape.

Another user's order or letter reads as 404: the gateway does not say it exists.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from typing import Any

import falcon
from opentelemetry import trace
from opentelemetry.trace import Tracer

from contracts import auth, billing
from contracts import vocabulary as words
from contracts.gateway import DepositRequest
from orchestrator import flow, spans
from orchestrator.metrics import FlowMetrics
from services.common.clients import AuthClient, BillingClient, NotificationsClient, OrdersClient, ProfilesClient
from services.common.errors import ApiError, retry_after
from services.common.http import Reply
from services.common.web import page, read_body, respond

_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")


def passed_on(reply: Reply) -> Any:
    """A service's documented answer: its data, or its error raised as ours."""
    if reply.error is not None:
        body = reply.error
        headers = retry_after(reply.status, reply.retry_after)
        raise ApiError(reply.status, body.code, body.title, body.description, headers=headers, errors=body.errors)
    return reply.data


def idempotency_key(req: falcon.Request) -> str | None:
    key = req.get_header("Idempotency-Key")
    if key is not None and not _KEY.match(key):
        raise ApiError(422, "validation_failed", "Invalid Idempotency-Key", "Use 1 to 128 printable ASCII characters.")
    return key


class Register:
    def __init__(self, auth_client: AuthClient) -> None:
        self.auth = auth_client

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """``{"login", "password", "email", "first_name", "last_name"}`` → 201 user."""
        span = trace.get_current_span()
        run_id = new_run_id(req)
        spans.describe_registration(span, run_id, None)
        user = passed_on(self.auth.register(read_body(req, auth.Registration)))
        spans.describe_registration(span, run_id, user.id)
        respond(resp, user, 201)


class Login:
    def __init__(self, auth_client: AuthClient) -> None:
        self.auth = auth_client

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """``{"login", "password"}`` → 200 ``{"access_token", "token_type", "expires_in"}``."""
        reply = self.auth.login(read_body(req, auth.Credentials))
        if reply.status == 429 and reply.error is not None:
            retry_after = {"Retry-After": reply.retry_after or "60"}
            raise ApiError(429, reply.error.code, reply.error.title, reply.error.description, headers=retry_after)
        resp.set_header("Cache-Control", "no-store")
        respond(resp, passed_on(reply))


class Profile:
    def __init__(self, profiles: ProfilesClient) -> None:
        self.profiles = profiles

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        respond(resp, passed_on(self.profiles.get_profile(req.context.user_id)))


class Wallet:
    def __init__(self, billing_client: BillingClient) -> None:
        self.billing = billing_client

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        respond(resp, passed_on(self.billing.get_wallet(req.context.user_id)))


class WalletOperations:
    def __init__(self, billing_client: BillingClient) -> None:
        self.billing = billing_client

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        asked = page(req)
        reply = self.billing.list_operations(req.context.user_id, asked.limit, asked.offset, asked.before)
        respond(resp, passed_on(reply))


class Deposits:
    def __init__(self, billing_client: BillingClient) -> None:
        self.billing = billing_client

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """``{"amount": 10000}`` (minor units) → 201 with the operation and the wallet.
        Without an ``Idempotency-Key`` the gateway makes one, so its own retry is safe."""
        data = read_body(req, DepositRequest)
        key = idempotency_key(req) or f"gw-{uuid.uuid4()}"
        reply = self.billing.deposit(req.context.user_id, billing.Deposit(amount=data.amount, idempotency_key=key))
        respond(resp, passed_on(reply), reply.status)


class Orders:
    def __init__(self, services: flow.Services, metrics: FlowMetrics, tracer: Tracer | None = None) -> None:
        self.services = services
        self.metrics = metrics
        # Each step a span, when tracing is on.
        self.tracer = tracer

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """The eleven steps. ``{"user_id", "items": [{"name", "quantity", "price"}],
        "currency"}`` → 201 with the order (``paid`` or ``cancelled``), the payment
        operation and the letter ID."""
        body = req.get_media() if _is_json(req) else _not_json()
        key = idempotency_key(req)
        run = flow.Run(
            services=self.services,
            user_id=req.context.user_id,
            body=body,
            idempotency_key=key or f"gw-{uuid.uuid4()}",
            run_id=new_run_id(req),
        )
        # Also on errors: a client that sent no key learns the one that finishes this order.
        resp.set_header("Idempotency-Key", run.idempotency_key)
        span = trace.get_current_span()
        try:
            flow.run_flow(run, observe=self.metrics.observe, tracer=self.tracer)
        except flow.FlowStopped as stopped:
            spans.describe_stop(span, stopped)
            self.metrics.stopped()
            if run.order is not None and run.order.status == words.PENDING:
                _release(self.services.orders, run)
            raise
        finally:
            spans.describe_order(span, run)
            req.context.timings.extend(server_timing(run))
        assert run.order is not None
        self.metrics.finished(run.order.status)
        if run.replayed:
            resp.set_header("Idempotent-Replayed", "true")
        resp.location = f"/orders/{run.order.id}" if run.order else None
        respond(resp, run.result, 201)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        asked = page(req)
        reply = self.services.orders.list_orders(
            user_id=req.context.user_id, limit=asked.limit, offset=asked.offset, before=asked.before
        )
        respond(resp, passed_on(reply))


def new_run_id(req: falcon.Request) -> str:
    """A run's ID: its request ID (which a client may send again) and eight random hex."""
    return f"{req.context.request_id}-{uuid.uuid4().hex[:8]}"


def _is_json(req: falcon.Request) -> bool:
    return bool(req.content_type and req.content_type.startswith(falcon.MEDIA_JSON))


def _not_json() -> Any:
    raise ApiError(415, "unsupported_media_type", "Send JSON", "Content-Type must be application/json.")


def _release(orders_client: OrdersClient, run: flow.Run) -> None:
    """Best effort: free the order for an immediate retry; the lease expires anyway."""
    assert run.order is not None
    # The failure being reported matters more than this one.
    with contextlib.suppress(Exception):
        orders_client.release_order(run.order.id, run.run_id)


def server_timing(run: flow.Run) -> list[str]:
    """One ``Server-Timing`` entry per step that took time, in step order."""
    return [f's{step.number};desc="{step.name}";dur={ms:.2f}' for step, ms in flow.sorted_by_number(run.durations)]


class Order:
    def __init__(self, orders_client: OrdersClient) -> None:
        self.orders = orders_client

    def on_get(self, req: falcon.Request, resp: falcon.Response, order_id: uuid.UUID) -> None:
        order = passed_on(self.orders.get_order(str(order_id)))
        if order.user_id != req.context.user_id:
            raise ApiError(404, "not_found", "Not found", "No such order.")
        respond(resp, order)


class Letters:
    def __init__(self, notifications: NotificationsClient) -> None:
        self.notifications = notifications

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        asked = page(req)
        reply = self.notifications.list_letters(
            user_id=req.context.user_id, limit=asked.limit, offset=asked.offset, before=asked.before
        )
        respond(resp, passed_on(reply))


class Letter:
    def __init__(self, notifications: NotificationsClient) -> None:
        self.notifications = notifications

    def on_get(self, req: falcon.Request, resp: falcon.Response, letter_id: uuid.UUID) -> None:
        letter = passed_on(self.notifications.get_letter(str(letter_id)))
        if letter.user_id != req.context.user_id:
            raise ApiError(404, "not_found", "Not found", "No such letter.")
        respond(resp, letter)
