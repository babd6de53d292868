"""Consumer side: the real gateway app, in process, runs the order flow against WireMock
standing in for Orders, Billing and Notifications (and Auth's JWKS).

For each call of the flow: the success path, each documented error, a 500, a body that
is not JSON, JSON of the wrong shape, an answer slower than the read timeout, and
dropped connections. Each test asserts what the client of the gateway gets, and from
WireMock's journal exactly which requests went out, in which order, all carrying the
client's request ID, each one its provider's document accepts.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import attrs
import falcon.testing
import pytest

from contracts import examples, openapi
from contracts.examples import wire
from contracts.operations import Operation
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

REQUEST_ID = "contract-run-0001"
CREATE = ("orders", "POST", "/orders")
PAY = ("billing", "POST", "/payments")
STATUS = ("orders", "PUT", f"/orders/{examples.PAID_ORDER_ID}/status")
LETTER = ("notifications", "POST", "/letters")
RELEASE = ("orders", "DELETE", f"/orders/{examples.PAID_ORDER_ID}/run")
JWKS = frozenset({"/.well-known/jwks.json"})
# The flow's calls in DESIGN.md order: create order, pay, set status, send letter.
STEPS = {
    "create_order": (3, "orders", "create_order", 201, CREATE),
    "pay": (5, "billing", "pay", 201, PAY),
    "update_status": (7, "orders", "set_status", 200, STATUS),
    "notify": (9, "notifications", "send_letter", 201, LETTER),
}
FLOW = [CREATE, PAY, STATUS, LETTER]


@pytest.fixture
def gateway(settings: Settings, keys: ClientKeys) -> Any:
    token = keys.token(settings, examples.USER_ID)
    client = falcon.testing.TestClient(create_app(settings))

    def order(request: Any = examples.PAID_ORDER_REQUEST) -> falcon.testing.Result:
        headers = {"Authorization": f"Bearer {token}", "X-Request-ID": REQUEST_ID}
        return client.simulate_post("/orders", json=wire(request), headers=headers)

    return order


def stub_paid_flow(wiremock: WireMock, *, skip: str | None = None) -> None:
    """Every call of the flow answering as for a paid order, but ``skip``."""
    answers = {
        "create_order": documented("orders", "create_order", 201, "pending"),
        "pay": documented("billing", "pay", 201, "debited"),
        "update_status": documented("orders", "set_status", 200, "paid"),
        "notify": documented("notifications", "send_letter", 201, "happy"),
    }
    for step, answer in answers.items():
        if step != skip:
            _number, service, name, _ok, _call = STEPS[step]
            stub(wiremock, service, name, answer)
    stub(wiremock, "orders", "release_order", documented("orders", "release_order", 204))


def calls(wiremock: WireMock, settings: Settings) -> list[tuple[str, str, str]]:
    received = sent(wiremock, settings, "gateway", skip=JWKS)
    assert all(r.headers.get("X-Request-ID") == REQUEST_ID for r in received), "one request ID on every call"
    return [r.call for r in received]


def test_a_paid_order_calls_the_services_in_the_designed_order(
    wiremock: WireMock, settings: Settings, gateway: Any
) -> None:
    stub_paid_flow(wiremock)
    result = gateway()
    assert result.status_code == 201, result.text
    assert result.json == wire(examples.PAID_RESULT)
    assert result.headers["X-Request-ID"] == REQUEST_ID
    assert calls(wiremock, settings) == FLOW
    received = sent(wiremock, settings, "gateway", skip=JWKS)
    assert received[1].json() == wire(examples.PAYMENT_REQUEST)
    assert received[2].json() == {"status": "paid", "reason": None, "payment_id": examples.PAYMENT_ID}
    assert received[3].json() == wire(examples.PAID_LETTER_REQUEST)


def test_insufficient_funds_cancels_the_order_and_sends_the_sad_letter(
    wiremock: WireMock, settings: Settings, gateway: Any
) -> None:
    stub(wiremock, "orders", "create_order", documented("orders", "create_order", 201, "pending_samovar"))
    stub(wiremock, "billing", "pay", documented("billing", "pay", 406, "insufficient_funds"))
    stub(wiremock, "orders", "set_status", documented("orders", "set_status", 200, "cancelled"))
    stub(wiremock, "notifications", "send_letter", documented("notifications", "send_letter", 201, "sad"))
    result = gateway(examples.CANCELLED_ORDER_REQUEST)
    assert result.status_code == 201, result.text
    assert result.json == wire(examples.CANCELLED_RESULT)
    cancelled_status = ("orders", "PUT", f"/orders/{examples.CANCELLED_ORDER_ID}/status")
    assert calls(wiremock, settings) == [CREATE, PAY, cancelled_status, LETTER]
    received = sent(wiremock, settings, "gateway", skip=JWKS)
    assert received[2].json() == {"status": "cancelled", "reason": "Insufficient funds", "payment_id": None}
    assert received[3].json() == wire(examples.CANCELLED_LETTER_REQUEST)


def test_no_wallet_cancels_the_order(wiremock: WireMock, settings: Settings, gateway: Any) -> None:
    stub_paid_flow(wiremock, skip="pay")
    stub(wiremock, "billing", "pay", documented("billing", "pay", 404, "no_wallet"))
    result = gateway()
    assert result.status_code == 201, result.text
    assert result.json["payment"] is None
    assert calls(wiremock, settings) == FLOW
    change = sent(wiremock, settings, "gateway", skip=JWKS)[2].json()
    assert change == {"status": "cancelled", "reason": "No wallet for this customer", "payment_id": None}


def operation(service: str, name: str) -> Operation:
    return next(op for op in openapi.SERVICES[service] if op.name == name)


def documented_errors(service: str, name: str) -> list[int]:
    return [status for status in operation(service, name).documented() if status >= 400]


def expected_for_error(step: str, status: int) -> tuple[int, str | None, str | None, int]:
    """(gateway status, flow reason or None, error code or None, attempts) for a
    documented error answered at ``step``."""
    _number, service, name, _ok, _call = STEPS[step]
    own = operation(service, name).responses
    if status in own:
        if step == "create_order":
            return status, None, None, 1  # 409, 422: the client's to fix, passed on
        return 502, "refused", None, 1
    # A status only the plumbing answers is not an answer this client knows; a 503 says
    # the service cannot serve now (its database is down or busy).
    if status == 503:
        return 503, "unavailable", None, ATTEMPTS
    retried = status in (502, 504)
    return 502, "server_error" if status >= 500 else "bad_response", None, ATTEMPTS if retried else 1


ERROR_CASES = [
    (step, status)
    for step, (_n, service, name, _ok, _call) in STEPS.items()
    for status in documented_errors(service, name)
    if not (step == "pay" and status in (404, 406))  # decisions, not failures: tested above
]


def journal_after(step: str, attempts: int, order_kept: bool) -> list[tuple[str, str, str]]:
    position = list(STEPS).index(step)
    before = FLOW[:position]
    failing = [FLOW[position]] * attempts
    if step == "notify":
        return before + failing
    return before + failing + ([RELEASE] if order_kept else [])


@pytest.mark.parametrize(("step", "status"), ERROR_CASES, ids=[f"{s}-{c}" for s, c in ERROR_CASES])
def test_a_documented_error_at_a_step(
    wiremock: WireMock, settings: Settings, gateway: Any, step: str, status: int
) -> None:
    number, service, name, _ok, _call = STEPS[step]
    stub_paid_flow(wiremock, skip=step)
    stub(wiremock, service, name, documented(service, name, status))
    result = gateway()
    answered, reason, _code, attempts = expected_for_error(step, status)
    if step == "notify":
        # A failed notification does not undo a finished order: the letter is pending.
        assert result.status_code == 201, result.text
        assert result.json["letter_pending"] is True and result.json["letter_id"] is None
        assert result.json["order"] == wire(examples.PAID_ORDER)
    elif reason is None:
        assert result.status_code == status, result.text
        assert result.json["code"] == documented(service, name, status)["jsonBody"]["code"]
    else:
        assert result.status_code == answered, result.text
        assert result.json["code"] == f"{step}_failed"
        assert (result.json["step"], result.json["step_name"], result.json["reason"]) == (number, step, reason)
        assert result.json.get("order_id") == (None if step == "create_order" else examples.PAID_ORDER_ID)
        # The stub names no time: the client is told the default.
        assert result.headers.get("Retry-After") == ("1" if answered == 503 else None)
    order_kept = step != "create_order"
    assert calls(wiremock, settings) == journal_after(step, attempts, order_kept)


MISBEHAVIOUR_CASES = [(step, how) for step in STEPS for how in misbehaviours(STEPS[step][3])]


@pytest.mark.parametrize(("step", "how"), MISBEHAVIOUR_CASES, ids=[f"{s}-{h.name}" for s, h in MISBEHAVIOUR_CASES])
def test_a_misbehaving_service_at_a_step(
    wiremock: WireMock, settings: Settings, gateway: Any, step: str, how: Misbehaviour
) -> None:
    number, service, name, _ok, _call = STEPS[step]
    stub_paid_flow(wiremock, skip=step)
    misbehave(wiremock, service, name, how)
    result = gateway()
    if step == "notify":
        assert result.status_code == 201, result.text
        assert result.json["letter_pending"] is True and result.json["order"]["status"] == "paid"
    else:
        assert result.status_code == how.status, result.text
        body = result.json
        assert body["code"] == f"{step}_failed" and body["service"] == service
        assert (body["step"], body["step_name"], body["reason"]) == (number, step, how.reason)
    assert calls(wiremock, settings) == journal_after(step, how.attempts, step != "create_order")


@pytest.mark.parametrize("step", ["create_order", "pay", "update_status"])
def test_a_503_with_retry_after_is_retried_after_it_and_the_client_is_told(
    wiremock: WireMock, tmp_path: Path, keys: ClientKeys, step: str
) -> None:
    number, service, name, _ok, _call = STEPS[step]
    stub_paid_flow(wiremock, skip=step)
    answer = documented(service, name, 503)
    answer["headers"] = {**answer["headers"], "Retry-After": "30"}
    stub(wiremock, service, name, answer)
    # 30 s asked, 0.15 s allowed per wait: two waits fit the 0.4 s read timeout.
    settings = attrs.evolve(consumer_settings(tmp_path, wiremock), http_retry_after_max=0.15)
    token = keys.token(settings, examples.USER_ID)
    client = falcon.testing.TestClient(create_app(settings))
    started = time.monotonic()
    result = client.simulate_post(
        "/orders",
        json=wire(examples.PAID_ORDER_REQUEST),
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": REQUEST_ID},
    )
    assert time.monotonic() - started >= 2 * 0.15
    assert result.status_code == 503, result.text
    body = result.json
    assert (body["step"], body["reason"], body["code"]) == (number, "unavailable", f"{step}_failed")
    assert result.headers["Retry-After"] == "30"
    assert calls(wiremock, settings) == journal_after(step, ATTEMPTS, step != "create_order")


def test_an_order_the_token_owner_does_not_own_sends_nothing(
    wiremock: WireMock, settings: Settings, gateway: Any
) -> None:
    stub_paid_flow(wiremock)
    other = examples.PAID_ORDER_REQUEST.__class__(user_id=examples.PAYMENT_ID, items=[examples.TEA], currency="RUB")
    result = gateway(other)
    assert result.status_code == 403 and result.json["code"] == "forbidden"
    assert calls(wiremock, settings) == []


def test_release_is_sent_only_with_the_run_that_holds_the_order(
    wiremock: WireMock, settings: Settings, gateway: Any
) -> None:
    stub_paid_flow(wiremock, skip="pay")
    stub(wiremock, "billing", "pay", documented("billing", "pay", 409))
    gateway()
    received = sent(wiremock, settings, "gateway", skip=JWKS)
    release = received[-1]
    assert release.call == RELEASE
    assert release.query["run_id"] == received[0].json()["run_id"]
