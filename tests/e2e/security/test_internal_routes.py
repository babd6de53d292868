"""The services behind the gateway: only the callers their contracts list, with a valid service credential."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest
import requests

from contracts import auth, billing, notifications, orders, profiles
from contracts.operations import Operation
from services.common.trust import ServiceTokens, audience
from tests.e2e.security.common import Door, Victim, auth_rows, order_body, refused, state
from tests.unit.test_tokens import raw_token

# ---------------------------------------------------------------- internal routes


def _internal_operations() -> list[tuple[str, Operation]]:
    tables = {
        "auth": auth.OPERATIONS,
        "profiles": profiles.OPERATIONS,
        "orders": orders.OPERATIONS,
        "billing": billing.OPERATIONS,
        "notifications": notifications.OPERATIONS,
    }
    return [(service, op) for service, ops in tables.items() for op in ops]


INTERNAL = _internal_operations()
NOT_YET_PAID = str(uuid.uuid4())
NEW_USER = str(uuid.uuid4())
INTRUDER_LOGIN = f"intruder-{uuid.uuid4().hex[:8]}"


def intrusion_body(service: str, name: str, victim: Victim) -> dict[str, Any] | None:
    """A well-formed body for each internal route: only the credential is wrong."""
    user = victim.customer.user_id
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("auth", "register"): {
            "login": INTRUDER_LOGIN,
            "password": "intruder password",
            "email": "intruder@example.org",
            "first_name": "Mallory",
            "last_name": "Intruder",
        },
        ("auth", "login"): {"login": victim.customer.login, "password": victim.customer.password},
        ("profiles", "put_profile"): {"email": "intruder@example.org", "first_name": "Mallory", "last_name": "X"},
        ("billing", "open_wallet"): {"currency": "RUB"},
        ("billing", "deposit"): {"amount": 500_000, "idempotency_key": "intruder"},
        ("billing", "pay"): {"order_id": NOT_YET_PAID, "user_id": user, "amount": 100, "currency": "RUB"},
        ("billing", "abandon_payment"): {
            "user_id": user,
            "amount": victim.total,
            "currency": "RUB",
        },
        ("orders", "create_order"): {
            **order_body(user),
            "idempotency_key": "intruder",
            "run_id": "intruder",
        },
        ("orders", "set_status"): {"status": "cancelled", "reason": "intruder"},
        ("notifications", "send_letter"): {
            "order_id": victim.order_id,
            "user_id": user,
            "status": "cancelled",
            "total": victim.total,
            "currency": "RUB",
            "reason": "intruder",
        },
    }
    return bodies.get((service, name))


def intrusion_path(op: Operation, victim: Victim) -> str:
    user = NEW_USER if op.name == "open_wallet" else victim.customer.user_id
    path = op.path.format(user_id=user, order_id=victim.order_id, letter_id=victim.letter_id)
    if op.name == "release_order":
        return path + "?run_id=intruder"
    if op.method == "GET" and "{" not in op.path and op.path != "/.well-known/jwks.json":
        return path + "?user_id=" + victim.customer.user_id
    return path


def unlisted_caller(service: str, op: Operation) -> str:
    callers = ("notifications", "orders", "billing", "profiles", "auth", "gateway")
    return next(caller for caller in callers if caller not in op.callers and caller != service)


def assert_no_side_effects(door: Door, victim: Victim) -> None:
    """Beyond the victim's own view: nothing was made for anyone else either."""
    gateway_to = ServiceTokens(door.settings.service_secret or "", "gateway")
    wallet = requests.get(
        f"{door.stack.urls['billing']}/wallets/{NEW_USER}",
        headers={"Authorization": gateway_to.header("billing")},
        timeout=10,
    )
    assert wallet.status_code == 404
    payment = requests.get(
        f"{door.stack.urls['billing']}/payments/{NOT_YET_PAID}",
        headers={"Authorization": gateway_to.header("billing")},
        timeout=10,
    )
    assert payment.status_code == 404
    assert auth_rows(door.stack, f"SELECT id FROM \"user\" WHERE login = '{INTRUDER_LOGIN}'") == []


@pytest.mark.parametrize(("service", "op"), INTERNAL, ids=[f"{s}-{op.name}" for s, op in INTERNAL])
@pytest.mark.parametrize(
    ("credential", "status", "code"),
    [("none", 401, "unauthorized"), ("client_token", 401, "unauthorized"), ("unlisted_caller", 403, "forbidden")],
)
def test_internal_route_refuses_a_caller_without_the_right_credential(
    door: Door, victim: Victim, service: str, op: Operation, credential: str, status: int, code: str
) -> None:
    headers = {
        "none": {},
        "client_token": {"Authorization": f"Bearer {victim.customer.token}"},
        "unlisted_caller": {
            "Authorization": ServiceTokens(door.settings.service_secret or "", unlisted_caller(service, op)).header(
                service
            )
        },
    }[credential]
    before = state(door.gateway, victim.customer)
    response = requests.request(
        op.method,
        door.stack.urls[service] + intrusion_path(op, victim),
        json=intrusion_body(service, op.name, victim),
        headers=headers,
        timeout=10,
    )
    refused(response, status, code)
    assert "access_token" not in response.text and "keys" not in response.json()
    assert state(door.gateway, victim.customer) == before
    assert_no_side_effects(door, victim)


def test_every_internal_route_has_an_intrusion_body_when_it_takes_one(victim: Victim) -> None:
    for service, op in INTERNAL:
        assert (op.request is None) == (intrusion_body(service, op.name, victim) is None), op.name


def _service_token(secret: str, caller: str, target: str, **changes: Any) -> str:
    now = int(time.time())
    body = {"iss": caller, "sub": caller, "aud": audience(target), "iat": now, "exp": now + 60, **changes}
    return "Bearer " + jwt.encode(body, secret, algorithm="HS256")


PAY_CREDENTIALS: dict[str, tuple[Callable[[Door, Victim], dict[str, str]], int]] = {
    "no_token": (lambda door, victim: {}, 401),
    "client_token": (lambda door, victim: {"Authorization": f"Bearer {victim.customer.token}"}, 401),
    **{
        f"{caller}_service_token": (
            lambda door, victim, caller=caller: {
                "Authorization": ServiceTokens(door.settings.service_secret or "", caller).header("billing")
            },
            403,
        )
        for caller in ("notifications", "orders", "profiles", "auth")
    },
    "gateway_token_signed_with_another_secret": (
        lambda door, victim: {"Authorization": _service_token("x" * 64, "gateway", "billing")},
        401,
    ),
    "gateway_token_meant_for_orders": (
        lambda door, victim: {"Authorization": _service_token(door.settings.service_secret or "", "gateway", "orders")},
        401,
    ),
    "expired_gateway_token": (
        lambda door, victim: {
            "Authorization": _service_token(
                door.settings.service_secret or "", "gateway", "billing", iat=int(time.time()) - 900, exp=1
            )
        },
        401,
    ),
    "gateway_token_alg_none": (
        lambda door, victim: {
            "Authorization": "Bearer "
            + raw_token(
                {"alg": "none", "typ": "JWT"},
                {"sub": "gateway", "aud": audience("billing"), "iat": int(time.time()), "exp": int(time.time()) + 60},
            )
        },
        401,
    ),
}


@pytest.mark.parametrize("credential", list(PAY_CREDENTIALS))
def test_a_process_that_reaches_billing_directly_cannot_debit_a_wallet(
    door: Door, victim: Victim, credential: str
) -> None:
    make_headers, status = PAY_CREDENTIALS[credential]
    before = state(door.gateway, victim.customer)
    order_id = str(uuid.uuid4())
    body = {"order_id": order_id, "user_id": victim.customer.user_id, "amount": 100, "currency": "RUB"}
    response = requests.post(
        door.stack.urls["billing"] + "/payments", json=body, headers=make_headers(door, victim), timeout=10
    )
    refused(response, status, "unauthorized" if status == 401 else "forbidden")
    assert state(door.gateway, victim.customer) == before
    gateway_to = ServiceTokens(door.settings.service_secret or "", "gateway").header("billing")
    decision = requests.get(
        f"{door.stack.urls['billing']}/payments/{order_id}", headers={"Authorization": gateway_to}, timeout=10
    )
    assert decision.status_code == 404


def test_a_method_the_contract_does_not_list_is_refused_even_for_an_allowed_caller(door: Door, victim: Victim) -> None:
    before = state(door.gateway, victim.customer)
    header = ServiceTokens(door.settings.service_secret or "", "gateway").header("billing")
    response = requests.delete(
        f"{door.stack.urls['billing']}/wallets/{victim.customer.user_id}", headers={"Authorization": header}, timeout=10
    )
    refused(response, 403, "forbidden")
    assert state(door.gateway, victim.customer) == before
