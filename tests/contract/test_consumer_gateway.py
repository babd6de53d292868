"""Consumer side for the gateway's other clients: each public route that reads or writes
through one service (Auth, Profiles, Billing, Orders, Notifications), and the JWKS fetch
that verifies access tokens, against WireMock stand-ins.

A documented answer of the service is passed on as it is; anything else (a status only
the service's plumbing answers, a 500, a body that is not JSON or not the documented
shape, a timeout, a dropped connection) is the gateway's own 5xx naming the service.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import falcon.testing
import pytest

from contracts import examples, openapi
from contracts.examples import wire
from orchestrator.app import create_app
from services.common.config import Settings
from tests.contract.consumers import (
    ATTEMPTS,
    ClientKeys,
    Misbehaviour,
    consumer_settings,
    misbehave,
    misbehaviours,
    sent,
)
from tests.contract.stubs import WireMock, documented, stub

REQUEST_ID = "contract-run-0003"
JWKS = ("auth", "GET", "/.well-known/jwks.json")


@attrs.frozen
class Route:
    method: str
    path: str
    service: str
    operation: str
    ok: int
    body: Any = None
    public: bool = False
    # Login is not retried: each attempt counts towards the login throttle.
    idempotent: bool = True

    @property
    def id(self) -> str:
        return f"{self.method} {self.path.split('/')[1]}:{self.operation}"


ROUTES = [
    Route("POST", "/auth/register", "auth", "register", 201, wire(examples.REGISTRATION), public=True),
    Route("POST", "/auth/login", "auth", "login", 200, wire(examples.CREDENTIALS), public=True, idempotent=False),
    Route("GET", "/profile", "profiles", "get_profile", 200),
    Route("GET", "/wallet", "billing", "get_wallet", 200),
    Route("GET", "/wallet/operations", "billing", "list_operations", 200),
    Route("POST", "/wallet/deposits", "billing", "deposit", 201, wire(examples.DEPOSIT_REQUEST)),
    Route("GET", "/orders", "orders", "list_orders", 200),
    Route("GET", f"/orders/{examples.PAID_ORDER_ID}", "orders", "get_order", 200),
    Route("GET", "/letters", "notifications", "list_letters", 200),
    Route("GET", f"/letters/{examples.HAPPY_LETTER_ID}", "notifications", "get_letter", 200),
]


@pytest.fixture
def call(settings: Settings, keys: ClientKeys) -> Any:
    client = falcon.testing.TestClient(create_app(settings))
    token = keys.token(settings, examples.USER_ID)

    def send(route: Route) -> falcon.testing.Result:
        headers = {"X-Request-ID": REQUEST_ID}
        if not route.public:
            headers["Authorization"] = f"Bearer {token}"
        return client.simulate_request(route.method, route.path, json=route.body, headers=headers)

    return send


def calls(wiremock: WireMock, settings: Settings) -> list[tuple[str, str, str]]:
    received = sent(wiremock, settings, "gateway")
    assert all(r.headers.get("X-Request-ID") == REQUEST_ID for r in received)
    return [r.call for r in received if r.call != JWKS]


def downstream_call(route: Route) -> tuple[str, str, str]:
    op = next(op for op in openapi.SERVICES[route.service] if op.name == route.operation)
    values = {"user_id": examples.USER_ID, "order_id": examples.PAID_ORDER_ID, "letter_id": examples.HAPPY_LETTER_ID}
    return (route.service, op.method, op.path.format(**values))


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.id)
def test_a_route_passes_on_the_documented_answer(
    wiremock: WireMock, settings: Settings, call: Any, route: Route
) -> None:
    answer = documented(route.service, route.operation, route.ok)
    stub(wiremock, route.service, route.operation, answer)
    result = call(route)
    assert result.status_code == route.ok, result.text
    assert result.json == answer["jsonBody"]
    assert calls(wiremock, settings) == [downstream_call(route)]


def test_a_deposit_carries_an_idempotency_key_so_its_retry_is_safe(
    wiremock: WireMock, settings: Settings, call: Any
) -> None:
    stub(wiremock, "billing", "deposit", documented("billing", "deposit", 201))
    call(ROUTES[5])
    (deposit,) = [r for r in sent(wiremock, settings, "gateway") if r.service == "billing"]
    assert deposit.json()["amount"] == 10000 and deposit.json()["idempotency_key"]


ERROR_CASES = [
    (route, status)
    for route in ROUTES
    for status, _cls in next(op for op in openapi.SERVICES[route.service] if op.name == route.operation)
    .documented()
    .items()
    if status >= 400
]


@pytest.mark.parametrize(("route", "status"), ERROR_CASES, ids=[f"{r.id}-{s}" for r, s in ERROR_CASES])
def test_a_route_when_the_service_answers_a_documented_error(
    wiremock: WireMock, settings: Settings, call: Any, route: Route, status: int
) -> None:
    answer = documented(route.service, route.operation, status)
    stub(wiremock, route.service, route.operation, answer)
    result = call(route)
    own = next(op for op in openapi.SERVICES[route.service] if op.name == route.operation).responses
    if status in own:
        assert result.status_code == status, result.text
        assert result.json["code"] == answer["jsonBody"]["code"]
        attempts = 1
    else:
        # Only the service's plumbing answers it: the gateway's own call failed, and a
        # 503 is the service unavailable.
        reason = "unavailable" if status == 503 else "server_error" if status >= 500 else "bad_response"
        assert result.status_code == (503 if status == 503 else 502), result.text
        assert result.json["code"] == f"{route.service}_{reason}"
        attempts = ATTEMPTS if route.idempotent and status in (502, 503, 504) else 1
    if result.status_code == 503:
        assert result.headers["Retry-After"] == "1", "a 503 always says when to come back"
    assert calls(wiremock, settings) == [downstream_call(route)] * attempts


@pytest.mark.parametrize(
    ("route", "status", "code"),
    [(ROUTES[1], 429, "too_many_attempts"), (ROUTES[3], 503, "billing_unavailable")],
    ids=["throttled-login", "wallet-unavailable"],
)
def test_a_services_retry_after_is_passed_on(
    wiremock: WireMock, settings: Settings, call: Any, route: Route, status: int, code: str
) -> None:
    answer = documented(route.service, route.operation, status)
    answer["headers"] = {**answer["headers"], "Retry-After": "7"}
    stub(wiremock, route.service, route.operation, answer)
    result = call(route)
    assert result.status_code == status and result.json["code"] == code
    assert result.headers["Retry-After"] == "7"


MISBEHAVIOUR_CASES = [(route, how) for route in ROUTES for how in misbehaviours(route.ok)]


@pytest.mark.parametrize(("route", "how"), MISBEHAVIOUR_CASES, ids=[f"{r.id}-{h.name}" for r, h in MISBEHAVIOUR_CASES])
def test_a_route_when_the_service_misbehaves(
    wiremock: WireMock, settings: Settings, call: Any, route: Route, how: Misbehaviour
) -> None:
    misbehave(wiremock, route.service, route.operation, how)
    result = call(route)
    assert result.status_code == how.status, result.text
    assert result.json["code"] == f"{route.service}_{how.reason}" and result.json["service"] == route.service
    attempts = how.attempts if route.idempotent else 1
    assert calls(wiremock, settings) == [downstream_call(route)] * attempts


@pytest.mark.parametrize("how", misbehaviours(200), ids=lambda how: how.name)
def test_unreachable_signing_keys_make_a_token_invalid_and_call_nothing(
    tmp_path: Path, wiremock: WireMock, how: Misbehaviour
) -> None:
    settings = consumer_settings(tmp_path, wiremock)
    misbehave(wiremock, "auth", "jwks", how)
    token = ClientKeys().token(settings, examples.USER_ID)
    client = falcon.testing.TestClient(create_app(settings))
    result = client.simulate_get("/profile", headers={"Authorization": f"Bearer {token}", "X-Request-ID": REQUEST_ID})
    assert result.status_code == 401 and result.json["code"] == "invalid_token"
    received = sent(wiremock, settings, "gateway")
    assert [r.call for r in received] == [JWKS] * how.attempts
