"""Provider side: the real services, as waitress processes, answer every documented
operation as their documents say — status, content type and body — for success and
for the errors a caller can provoke. Each test ends by checking that every operation of
its service answered with success at least once."""

from __future__ import annotations

import uuid

import pytest

from contracts import examples
from contracts.examples import wire
from tests.contract.providers import Provider, new_id

TEA = wire(examples.TEA)
SAMOVAR = wire(examples.SAMOVAR)


def registration(login: str) -> dict:
    return {**wire(examples.REGISTRATION), "login": login, "email": f"{login}@example.com"}


def test_gateway_answers_every_public_operation_as_documented(provider: Provider) -> None:
    p, gw = provider, "gateway"
    login = f"anna-{uuid.uuid4().hex[:8]}"
    user = p.expect(201, gw, "POST", "/auth/register", json=registration(login)).json()
    p.expect(409, gw, "POST", "/auth/register", json=registration(login))
    p.expect(422, gw, "POST", "/auth/register", json={"login": login})
    p.expect(400, gw, "POST", "/auth/register", data=b'{"login":', headers={"Content-Type": "application/json"})
    p.expect(415, gw, "POST", "/auth/register", data=b"login=anna", headers={"Content-Type": "text/plain"})
    credentials = {"login": login, "password": examples.CREDENTIALS.password}
    token = p.expect(200, gw, "POST", "/auth/login", json=credentials).json()["access_token"]
    p.expect(401, gw, "POST", "/auth/login", json={**credentials, "password": "wrong password"})
    p.expect(422, gw, "POST", "/auth/login", json={"login": login})

    p.expect(200, gw, "GET", "/profile", token=token)
    p.expect(401, gw, "GET", "/profile")
    p.expect(401, gw, "GET", "/wallet", token="not-a-token")
    p.expect(200, gw, "GET", "/wallet", token=token)
    deposit = {"json": {"amount": 10000}, "headers": {"Idempotency-Key": f"topup-{login}"}, "token": token}
    p.expect(201, gw, "POST", "/wallet/deposits", **deposit)
    p.expect(200, gw, "POST", "/wallet/deposits", **deposit)
    p.expect(422, gw, "POST", "/wallet/deposits", json={"amount": 0}, token=token)
    p.expect(413, gw, "POST", "/wallet/deposits", data=b" " * 70_000, token=token)
    p.expect(200, gw, "GET", "/wallet/operations", token=token)
    p.expect(422, gw, "GET", "/wallet/operations", params={"limit": 0}, token=token)

    order = {"user_id": user["id"], "currency": "RUB", "items": [TEA]}
    paid = p.expect(201, gw, "POST", "/orders", json=order, token=token).json()
    assert paid["order"]["status"] == "paid" and paid["payment"]["amount"] == 5000
    cancelled = p.expect(201, gw, "POST", "/orders", json={**order, "items": [SAMOVAR]}, token=token).json()
    assert cancelled["order"]["status"] == "cancelled" and cancelled["order"]["reason"] == "Insufficient funds"
    p.expect(403, gw, "POST", "/orders", json={**order, "user_id": new_id()}, token=token)
    p.expect(422, gw, "POST", "/orders", json={**order, "status": "paid"}, token=token)
    p.expect(200, gw, "GET", "/orders", token=token)
    p.expect(200, gw, "GET", f"/orders/{paid['order']['id']}", token=token)
    p.expect(404, gw, "GET", f"/orders/{new_id()}", token=token)
    p.expect(200, gw, "GET", "/letters", token=token)
    p.expect(200, gw, "GET", f"/letters/{paid['letter_id']}", token=token)
    p.expect(404, gw, "GET", f"/letters/{new_id()}", token=token)
    assert p.unanswered(gw) == []


def test_auth_answers_every_operation_as_documented(provider: Provider) -> None:
    p = provider
    login = f"boris-{uuid.uuid4().hex[:8]}"
    p.expect(201, "auth", "POST", "/users", json=registration(login))
    p.expect(409, "auth", "POST", "/users", json={**registration(login), "password": "another password"})
    p.expect(422, "auth", "POST", "/users", json={**registration(login), "email": "not an address"})
    credentials = {"login": login, "password": examples.CREDENTIALS.password}
    assert p.expect(200, "auth", "POST", "/tokens", json=credentials).json()["token_type"] == "Bearer"
    p.expect(401, "auth", "POST", "/tokens", json={**credentials, "password": "wrong password"})
    keys = p.expect(200, "auth", "GET", "/.well-known/jwks.json").json()["keys"]
    assert keys and keys[0]["alg"] == "EdDSA"
    p.expect(401, "auth", "GET", "/.well-known/jwks.json", anonymous=True)
    p.expect(403, "auth", "POST", "/tokens", json=credentials, caller="billing")
    assert p.unanswered("auth") == []


def test_profiles_answers_every_operation_as_documented(provider: Provider) -> None:
    p, user = provider, new_id()
    data = wire(examples.PROFILE_DATA)
    assert p.expect(201, "profiles", "PUT", f"/profiles/{user}", json=data).json()["user_id"] == user
    p.expect(200, "profiles", "PUT", f"/profiles/{user}", json=data)
    p.expect(422, "profiles", "PUT", f"/profiles/{user}", json={**data, "email": "anna"})
    p.expect(403, "profiles", "PUT", f"/profiles/{user}", json=data, caller="gateway")
    p.expect(200, "profiles", "GET", f"/profiles/{user}", caller="notifications")
    p.expect(404, "profiles", "GET", f"/profiles/{new_id()}")
    p.expect(401, "profiles", "GET", f"/profiles/{user}", anonymous=True)
    assert p.unanswered("profiles") == []


def test_orders_answers_every_operation_as_documented(provider: Provider) -> None:
    p, user = provider, new_id()
    new = {**wire(examples.NEW_ORDER), "user_id": user, "idempotency_key": f"key-{user}"}
    order = p.expect(201, "orders", "POST", "/orders", json=new).json()
    assert order["status"] == "pending" and order["total"] == 5000
    p.expect(200, "orders", "POST", "/orders", json=new)
    reused = p.expect(409, "orders", "POST", "/orders", json={**new, "items": [SAMOVAR]})
    assert reused.json()["code"] == "idempotency_key_reused"
    p.expect(200, "orders", "GET", "/orders", params={"user_id": user})
    p.expect(422, "orders", "GET", "/orders", params={"status": "lost"})
    p.expect(200, "orders", "GET", f"/orders/{order['id']}")
    p.expect(404, "orders", "GET", f"/orders/{new_id()}")
    p.expect(204, "orders", "DELETE", f"/orders/{order['id']}/run", params={"run_id": new["run_id"]})
    p.expect(400, "orders", "DELETE", f"/orders/{order['id']}/run")
    p.expect(404, "orders", "DELETE", f"/orders/{new_id()}/run", params={"run_id": "x"})
    paid = wire(examples.PAID)
    assert p.expect(200, "orders", "PUT", f"/orders/{order['id']}/status", json=paid).json()["status"] == "paid"
    p.expect(409, "orders", "PUT", f"/orders/{order['id']}/status", json=wire(examples.CANCELLED))
    p.expect(404, "orders", "PUT", f"/orders/{new_id()}/status", json=paid)
    p.expect(422, "orders", "PUT", f"/orders/{order['id']}/status", json={"status": "pending"})
    assert p.unanswered("orders") == []


def test_billing_answers_every_operation_as_documented(provider: Provider) -> None:
    p, user = provider, new_id()
    p.expect(201, "billing", "PUT", f"/wallets/{user}", json={"currency": "RUB"})
    p.expect(200, "billing", "PUT", f"/wallets/{user}", json={"currency": "RUB"})
    p.expect(409, "billing", "PUT", f"/wallets/{user}", json={"currency": "USD"})
    p.expect(422, "billing", "PUT", f"/wallets/{user}", json={"currency": "rub"})
    p.expect(200, "billing", "GET", f"/wallets/{user}")
    p.expect(404, "billing", "GET", f"/wallets/{new_id()}")
    deposit = {"amount": 10000, "idempotency_key": f"topup-{user}"}
    p.expect(201, "billing", "POST", f"/wallets/{user}/deposits", json=deposit)
    p.expect(200, "billing", "POST", f"/wallets/{user}/deposits", json=deposit)
    p.expect(404, "billing", "POST", f"/wallets/{new_id()}/deposits", json=deposit)
    p.expect(422, "billing", "POST", f"/wallets/{user}/deposits", json={"amount": 2.5})
    p.expect(200, "billing", "GET", f"/wallets/{user}/operations")
    p.expect(422, "billing", "GET", f"/wallets/{user}/operations", params={"offset": -1})

    payment = {"order_id": new_id(), "user_id": user, "amount": 5000, "currency": "RUB"}
    debited = p.expect(201, "billing", "POST", "/payments", json=payment).json()
    assert debited["outcome"] == "debited" and debited["operation"]["balance_after"] == 5000
    p.expect(200, "billing", "POST", "/payments", json=payment)
    p.expect(409, "billing", "POST", "/payments", json={**payment, "amount": 4000})
    declined = p.expect(406, "billing", "POST", "/payments", json={**payment, "order_id": new_id(), "amount": 900000})
    assert declined.json()["code"] == "insufficient_funds" and declined.json()["title"] == "Insufficient funds"
    p.expect(404, "billing", "POST", "/payments", json={**payment, "order_id": new_id(), "user_id": new_id()})
    p.expect(200, "billing", "GET", f"/payments/{payment['order_id']}")
    p.expect(404, "billing", "GET", f"/payments/{new_id()}")
    never_paid, terms = new_id(), {key: payment[key] for key in ("user_id", "amount", "currency")}
    assert (
        p.expect(201, "billing", "POST", f"/payments/{never_paid}/abandon", json=terms).json()["outcome"] == "declined"
    )
    p.expect(200, "billing", "POST", f"/payments/{never_paid}/abandon", json=terms)
    # The order is the path's alone: a body naming one is refused, not compared.
    p.expect(422, "billing", "POST", f"/payments/{new_id()}/abandon", json={**terms, "order_id": never_paid})
    p.expect(403, "billing", "POST", "/payments", json=payment, caller="auth")
    assert p.unanswered("billing") == []


def test_notifications_answers_every_operation_as_documented(provider: Provider) -> None:
    p, user = provider, new_id()
    p.expect(201, "profiles", "PUT", f"/profiles/{user}", json=wire(examples.PROFILE_DATA))
    request = {**wire(examples.PAID_LETTER_REQUEST), "user_id": user, "order_id": new_id()}
    letter = p.expect(201, "notifications", "POST", "/letters", json=request).json()
    assert letter["kind"] == "happy" and letter["recipient"] == "anna@example.com"
    assert p.expect(200, "notifications", "POST", "/letters", json=request).json()["id"] == letter["id"]
    p.expect(404, "notifications", "POST", "/letters", json={**request, "user_id": new_id(), "order_id": new_id()})
    p.expect(422, "notifications", "POST", "/letters", json={**request, "status": "pending"})
    p.expect(200, "notifications", "GET", "/letters", params={"user_id": user})
    p.expect(422, "notifications", "GET", "/letters", params={"limit": 1000})
    p.expect(200, "notifications", "GET", f"/letters/{letter['id']}")
    p.expect(404, "notifications", "GET", f"/letters/{new_id()}")
    assert p.unanswered("notifications") == []


@pytest.mark.parametrize("service", ["gateway", "auth", "profiles", "orders", "billing", "notifications"])
def test_an_answer_outside_the_document_is_caught(provider: Provider, service: str) -> None:
    """The check above is not vacuous: a renamed field, an undocumented status or a
    body that is not JSON each fail it."""
    contract = provider.contracts[service]
    method, path, _op = next((m, p, o) for m, p, o in contract.operations() if "200" in o["responses"])
    concrete = path.replace("{", "").replace("}", "")
    concrete = "/".join(new_id() if "_id" in part else part for part in concrete.split("/"))
    assert contract.response_problems(method, concrete, 299, "application/json", b"{}")
    assert contract.response_problems(method, concrete, 200, "text/html", b"<html>")
    assert contract.response_problems(method, concrete, 200, "application/json", b'{"unexpected": 1}')
