"""Attacks on the public door and on the services behind it: one test per attack.

Each test makes its attack against the running stack and checks the exact status and
that nothing changed (no order, payment or letter appeared; balance and profile are as
they were). The attack tokens are made here with PyJWT and cryptography. The stack signs
with a key this module generates (``signing_key_file``), so a token with every claim
right can be made as well, and is accepted: the control that gives each refusal meaning.
The last tests use tiny local HTTP servers that play a hostile downstream service.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import hashlib
import hmac
import json
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs
import falcon.testing
import jwt
import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts import auth, billing, notifications, orders, profiles
from contracts.operations import Operation
from orchestrator.supervisor import Stack
from services.auth.keys import thumbprint
from services.common.clients import BillingClient, ProfilesClient, make_client
from services.common.config import Settings
from services.common.http import BAD_RESPONSE, TRANSPORTS, DownstreamError
from services.common.trust import ServiceTokens, audience
from services.notifications.app import create_app as notifications_app
from tests.e2e.conftest import log_text
from tests.harness import Customer, Gateway, Inbox, start_stack
from tests.unit.test_tokens import raw_token

MAX_FAILURES = 3


@attrs.frozen
class Door:
    stack: Stack
    gateway: Gateway
    key: Ed25519PrivateKey
    kid: str

    @property
    def settings(self) -> Settings:
        return self.stack.settings


@attrs.frozen
class Victim:
    """A customer with money, a paid order and its letter: what an intruder is after."""

    customer: Customer
    order_id: str
    total: int
    letter_id: str


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Door]:
    data = tmp_path_factory.mktemp("security")
    key = Ed25519PrivateKey.generate()
    pem = data / "signing-key.pem"
    pem.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    stack = start_stack(data, signing_key_file=str(pem), login_max_failures=MAX_FAILURES, login_window=120)
    yield Door(stack, Gateway(stack.urls["gateway"]), key, thumbprint(key.public_key()))
    stack.stop()


@pytest.fixture(scope="module")
def victim(door: Door) -> Victim:
    customer = door.gateway.customer(deposit=1_000)
    placed = door.gateway.order(customer, price=300)
    assert placed.status_code == 201, placed.text
    result = placed.json()
    assert result["order"]["status"] == "paid"
    return Victim(customer, result["order"]["id"], result["order"]["total"], result["letter_id"])


@pytest.fixture(scope="module")
def intruder(door: Door) -> Customer:
    return door.gateway.customer()


# ---------------------------------------------------------------- helpers


def state(gateway: Gateway, customer: Customer) -> dict[str, Any]:
    """Everything the customer owns, as the customer reads it."""
    seen = {}
    for path in ("/profile", "/wallet", "/wallet/operations?limit=100", "/orders?limit=100", "/letters?limit=100"):
        response = gateway.request("GET", path, customer.token)
        assert response.status_code == 200, (path, response.text)
        seen[path] = response.json()
    return seen


def refused(response: requests.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["code"] == code


def order_body(user_id: str, price: int = 100) -> dict[str, Any]:
    return {"user_id": user_id, "currency": "RUB", "items": [{"name": "Tea", "quantity": 1, "price": price}]}


def place_order(door: Door, token: str, victim: Victim) -> requests.Response:
    """The attack every forged token is tried on: spend the victim's money."""
    return door.gateway.request("POST", "/orders", token, json=order_body(victim.customer.user_id))


def claims(door: Door, subject: str, **changes: Any) -> dict[str, Any]:
    """Claims as Auth would sign them; a change to ``None`` drops the claim."""
    now = int(time.time())
    values = {
        "iss": door.settings.token_issuer,
        "aud": door.settings.token_audience,
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    }
    values.update(changes)
    return {name: value for name, value in values.items() if value is not None}


def signed(door: Door, body: dict[str, Any], key: Any = None, **header: Any) -> str:
    return jwt.encode(body, key or door.key, algorithm="EdDSA", headers={"kid": door.kid, **header})


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def public_forms(door: Door) -> dict[str, bytes]:
    """The public key as an attacker finds it: raw, PEM, the JWKS ``x``."""
    public = door.key.public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return {"raw": raw, "pem": pem, "jwk_x": b64url(raw).encode()}


def jwks_fetches(door: Door) -> int:
    return log_text(door.stack, "auth").count("GET /.well-known/jwks.json")


def hmac_signer(secret: bytes) -> Callable[[bytes], bytes]:
    return lambda data: hmac.new(secret, data, hashlib.sha256).digest()


class LocalServer:
    """A tiny HTTP server on 127.0.0.1 that plays a downstream service: ``answer`` maps
    a path to (status, headers, body). It records every request it gets."""

    def __init__(self, answer: Callable[[str], tuple[int, dict[str, str], bytes]]) -> None:
        self.hits: list[str] = []
        hits = self.hits

        class Handler(BaseHTTPRequestHandler):
            def handle_one(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                hits.append(f"{self.command} {self.path}")
                status, headers, body = answer(self.path)
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = handle_one

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LocalServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


# ---------------------------------------------------------------- forged client tokens

Forger = Callable[[Door, Victim, Customer], str]


def _alg_none(spelling: str) -> Forger:
    return lambda door, victim, _: raw_token(
        {"alg": spelling, "typ": "JWT", "kid": door.kid}, claims(door, victim.customer.user_id)
    )


def _hmac_with_public_key(form: str) -> Forger:
    return lambda door, victim, _: raw_token(
        {"alg": "HS256", "typ": "JWT", "kid": door.kid},
        claims(door, victim.customer.user_id),
        hmac_signer(public_forms(door)[form]),
    )


def _rs256(door: Door, victim: Victim, _: Customer) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims(door, victim.customer.user_id), key, algorithm="RS256", headers={"kid": door.kid})


def _es256(door: Door, victim: Victim, _: Customer) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(claims(door, victim.customer.user_id), key, algorithm="ES256", headers={"kid": door.kid})


def _ed25519_alg_name_on_the_real_key(door: Door, victim: Victim, _: Customer) -> str:
    # The right key and a good Ed25519 signature, under an algorithm name that is not pinned.
    return raw_token({"alg": "Ed25519", "kid": door.kid}, claims(door, victim.customer.user_id), door.key.sign)


def _rsa_pss(door: Door, victim: Victim, _: Customer) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    return raw_token(
        {"alg": "PS256", "kid": door.kid},
        claims(door, victim.customer.user_id),
        lambda data: key.sign(data, pss, hashes.SHA256()),
    )


def _without(claim: str) -> Forger:
    return lambda door, victim, _: signed(door, claims(door, victim.customer.user_id, **{claim: None}))


def _with(**changes: Any) -> Forger:
    def forge(door: Door, victim: Victim, _: Customer) -> str:
        now = int(time.time())
        values = {name: value(now) if callable(value) else value for name, value in changes.items()}
        return signed(door, claims(door, victim.customer.user_id, **values))

    return forge


def _tampered(door: Door, victim: Victim, intruder: Customer) -> str:
    # The intruder's own genuine token, its payload rewritten to name the victim.
    header, payload, signature = intruder.token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["sub"] = victim.customer.user_id
    return f"{header}.{b64url(json.dumps(body).encode())}.{signature}"


def _stranger_key(door: Door, victim: Victim, _: Customer) -> str:
    return signed(door, claims(door, victim.customer.user_id), key=Ed25519PrivateKey.generate())


def _embedded_jwk(door: Door, victim: Victim, _: Customer) -> str:
    # The token carries its own (the attacker's) public key and claims the real kid.
    stranger = Ed25519PrivateKey.generate()
    public = stranger.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url(public)}
    return signed(door, claims(door, victim.customer.user_id), key=stranger, jwk=jwk)


def _unknown_critical_header(door: Door, victim: Victim, _: Customer) -> str:
    return signed(door, claims(door, victim.customer.user_id), crit=["x-bypass"], **{"x-bypass": True})


def _segments(shape: str) -> Forger:
    def forge(door: Door, victim: Victim, _: Customer) -> str:
        header, payload, signature = signed(door, claims(door, victim.customer.user_id)).split(".")
        return {
            "two": f"{header}.{payload}",
            "empty_signature": f"{header}.{payload}.",
            "four": f"{header}.{payload}.{signature}.{signature}",
            "not_base64": "%%%.@@@.!!!",
            "header_not_json": f"{b64url(b'not json')}.{payload}.{signature}",
            "header_an_array": f"{b64url(b'[1, 2]')}.{payload}.{signature}",
        }[shape]

    return forge


TOKEN_ATTACKS: dict[str, Forger] = {
    **{f"alg_{spelling}": _alg_none(spelling) for spelling in ("none", "None", "NONE", "nOnE")},
    **{f"hs256_with_public_key_{form}": _hmac_with_public_key(form) for form in ("raw", "pem", "jwk_x")},
    "hs256_with_a_guessed_secret": lambda door, victim, _: raw_token(
        {"alg": "HS256", "kid": door.kid}, claims(door, victim.customer.user_id), hmac_signer(b"secret")
    ),
    "rs256": _rs256,
    "es256": _es256,
    "ps256": _rsa_pss,
    "ed25519_alg_name_with_the_real_key": _ed25519_alg_name_on_the_real_key,
    **{f"missing_{claim}": _without(claim) for claim in ("exp", "iat", "nbf", "sub", "iss", "aud")},
    "expired": _with(exp=lambda now: now - 60, iat=lambda now: now - 400, nbf=lambda now: now - 400),
    "not_yet_valid": _with(nbf=lambda now: now + 3600),
    "issued_in_the_future": _with(iat=lambda now: now + 3600),
    "wrong_issuer": _with(iss="someone-else"),
    "wrong_audience": _with(aud="another-api"),
    "audience_list_without_ours": _with(aud=["another-api", "yet-another"]),
    "exp_as_a_string": _with(exp="9999999999"),
    "subject_not_a_user_id": _with(sub="admin"),
    "subject_not_a_string": _with(sub=7),
    "tampered_payload_old_signature": _tampered,
    "right_kid_stranger_key": _stranger_key,
    "embedded_jwk": _embedded_jwk,
    "unknown_critical_header": _unknown_critical_header,
    **{
        f"segments_{shape}": _segments(shape)
        for shape in ("two", "empty_signature", "four", "not_base64", "header_not_json", "header_an_array")
    },
}


def test_a_token_made_with_the_signing_key_and_every_claim_right_is_accepted(door: Door, victim: Victim) -> None:
    """The control: the forging helpers make tokens the gateway would accept, so the
    refusals below are refusals of the one thing each attack changes."""
    response = door.gateway.request("GET", "/wallet", signed(door, claims(door, victim.customer.user_id)))
    assert response.status_code == 200
    assert response.json()["user_id"] == victim.customer.user_id


@pytest.mark.parametrize("attack", list(TOKEN_ATTACKS))
def test_forged_token_is_refused_and_spends_nothing(
    door: Door, victim: Victim, intruder: Customer, attack: str
) -> None:
    forged = TOKEN_ATTACKS[attack](door, victim, intruder)
    before = state(door.gateway, victim.customer)
    response = place_order(door, forged, victim)
    refused(response, 401, "invalid_token")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert state(door.gateway, victim.customer) == before


@pytest.mark.parametrize(
    "kid",
    ["k" * 10_000, "../../../../etc/passwd", "' OR '1'='1' --", "", 12345, ["a", "b"], {"$ne": None}, None],
    ids=["very_long", "path_traversal", "sql", "empty", "number", "list", "object", "null"],
)
def test_hostile_kid_is_refused_without_asking_auth(door: Door, victim: Victim, kid: Any) -> None:
    forged = raw_token({"alg": "EdDSA", "kid": kid}, claims(door, victim.customer.user_id), door.key.sign)
    before, fetches = state(door.gateway, victim.customer), jwks_fetches(door)
    refused(place_order(door, forged, victim), 401, "invalid_token")
    assert jwks_fetches(door) == fetches
    assert state(door.gateway, victim.customer) == before


def test_real_kid_with_a_trailing_newline_is_refused_without_asking_auth(door: Door, victim: Victim) -> None:
    forged = raw_token({"alg": "EdDSA", "kid": door.kid + "\n"}, claims(door, victim.customer.user_id), door.key.sign)
    fetches = jwks_fetches(door)
    refused(place_order(door, forged, victim), 401, "invalid_token")
    assert jwks_fetches(door) == fetches


def test_missing_kid_is_refused(door: Door, victim: Victim) -> None:
    forged = raw_token({"alg": "EdDSA"}, claims(door, victim.customer.user_id), door.key.sign)
    before = state(door.gateway, victim.customer)
    refused(place_order(door, forged, victim), 401, "invalid_token")
    assert state(door.gateway, victim.customer) == before


def test_a_jku_header_is_never_fetched(door: Door, victim: Victim) -> None:
    stranger = Ed25519PrivateKey.generate()
    with LocalServer(lambda path: (200, {"Content-Type": "application/json"}, b'{"keys": []}')) as lure:
        forged = raw_token(
            {"alg": "EdDSA", "kid": thumbprint(stranger.public_key()), "jku": lure.url + "/jwks.json"},
            claims(door, victim.customer.user_id),
            stranger.sign,
        )
        refused(place_order(door, forged, victim), 401, "invalid_token")
    assert lure.hits == []


def test_flood_of_unknown_kids_fetches_keys_a_bounded_number_of_times(door: Door, victim: Victim) -> None:
    stranger = Ed25519PrivateKey.generate()
    flood = [
        signed(door, claims(door, victim.customer.user_id), key=stranger, kid=b64url(uuid.uuid4().bytes))
        for _ in range(300)
    ]
    fetches, started = jwks_fetches(door), time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda forged: door.gateway.request("GET", "/wallet", forged).status_code, flood))
    elapsed = time.monotonic() - started
    assert statuses == [401] * len(flood)
    # One fetch per refresh interval at most, however many unknown kids arrive.
    assert jwks_fetches(door) - fetches <= 1 + int(elapsed // door.settings.jwks_refresh_interval)
    assert door.gateway.request("GET", "/wallet", victim.customer.token).status_code == 200


# ---------------------------------------------------------------- tokens in the wrong place


def test_token_in_the_query_string_is_refused_and_not_logged(door: Door, victim: Victim) -> None:
    token = victim.customer.token
    before = state(door.gateway, victim.customer)
    refused(door.gateway.request("GET", "/wallet", params={"access_token": token}), 401, "token_in_query")
    # Even alongside a good header: the token has already leaked into the URL.
    refused(door.gateway.request("GET", "/wallet", token, params={"access_token": token}), 401, "token_in_query")
    response = door.gateway.request(
        "POST", "/orders", params={"access_token": token}, json=order_body(victim.customer.user_id)
    )
    refused(response, 401, "token_in_query")
    assert state(door.gateway, victim.customer) == before
    for service in door.stack.processes:
        assert token not in log_text(door.stack, service)


# ---------------------------------------------------------------- ownership


def test_order_in_another_users_name_is_403_and_spends_nothing(door: Door, victim: Victim, intruder: Customer) -> None:
    before = state(door.gateway, victim.customer)
    mine = state(door.gateway, intruder)
    response = door.gateway.request("POST", "/orders", intruder.token, json=order_body(victim.customer.user_id))
    refused(response, 403, "forbidden")
    assert state(door.gateway, victim.customer) == before
    assert state(door.gateway, intruder) == mine


def test_another_users_order_and_letter_read_as_not_found(door: Door, victim: Victim, intruder: Customer) -> None:
    refused(door.gateway.request("GET", f"/orders/{victim.order_id}", intruder.token), 404, "not_found")
    refused(door.gateway.request("GET", f"/letters/{victim.letter_id}", intruder.token), 404, "not_found")
    assert door.gateway.request("GET", f"/orders/{victim.order_id}", victim.customer.token).status_code == 200


@pytest.mark.parametrize("path", ["/wallet", "/wallet/operations", "/orders", "/letters", "/profile"])
def test_naming_another_user_in_the_query_reads_only_ones_own_data(
    door: Door, victim: Victim, intruder: Customer, path: str
) -> None:
    own = door.gateway.request("GET", path, intruder.token).json()
    for name in ("user_id", "owner", "sub"):
        response = door.gateway.request("GET", path, intruder.token, params={name: victim.customer.user_id})
        assert response.status_code == 200
        assert response.json() == own
        assert victim.customer.user_id not in response.text


# ---------------------------------------------------------------- fields a client must not set


@pytest.mark.parametrize(
    "field",
    ["id", "user_id", "role", "is_admin", "complete", "password_hash", "balance", "created_at"],
)
def test_injected_field_on_register_is_422_and_creates_no_user(door: Door, field: str) -> None:
    login = f"inject-{uuid.uuid4().hex[:10]}"
    response = door.gateway.register(login, **{field: "admin"})
    refused(response, 422, "validation_failed")
    assert response.json()["errors"] == [{"path": f"$.{field}", "message": "unknown field"}]
    # The login is still free: registering it with another password succeeds.
    assert door.gateway.register(login, password="a different password").status_code == 201


@pytest.mark.parametrize("field", ["balance", "user_id", "currency", "kind", "idempotency_key", "order_id"])
def test_injected_field_on_deposit_is_422_and_moves_no_money(door: Door, victim: Victim, field: str) -> None:
    before = state(door.gateway, victim.customer)
    body = {"amount": 100, field: victim.customer.user_id if field == "user_id" else 10**9}
    response = door.gateway.request("POST", "/wallet/deposits", victim.customer.token, json=body)
    refused(response, 422, "validation_failed")
    assert response.json()["errors"] == [{"path": f"$.{field}", "message": "unknown field"}]
    assert state(door.gateway, victim.customer) == before


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"status": "paid"}, "$.status"),
        ({"id": str(uuid.uuid4())}, "$.id"),
        ({"total": 1}, "$.total"),
        ({"owner": "admin"}, "$.owner"),
        ({"payment_id": str(uuid.uuid4())}, "$.payment_id"),
        ({"amount": 1}, "$.amount"),
        ({"balance": 10**9}, "$.balance"),
        ({"role": "admin"}, "$.role"),
        ({"items": [{"name": "Tea", "quantity": 1, "price": 100, "total": 1}]}, "$.items[0].total"),
        ({"user_id": {"$ne": None}}, "$.user_id"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_injected_field_on_order_is_422_and_creates_no_order(
    door: Door, victim: Victim, change: dict[str, Any], path: str
) -> None:
    before = state(door.gateway, victim.customer)
    body = {**order_body(victim.customer.user_id), **change}
    response = door.gateway.request("POST", "/orders", victim.customer.token, json=body)
    refused(response, 422, "validation_failed")
    assert [problem["path"] for problem in response.json()["errors"]] == [path]
    assert state(door.gateway, victim.customer) == before


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


def auth_rows(stack: Stack, query: str) -> list[tuple[Any, ...]]:
    """Rows from Auth's own database, read behind its back."""
    url = stack.settings.database("auth")
    if url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(url.split(":///", 1)[1])) as conn:
            return list(conn.execute(query))
    import psycopg2

    with contextlib.closing(psycopg2.connect(url)) as conn, conn.cursor() as cursor:
        cursor.execute(query)
        return list(cursor.fetchall())


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


# ---------------------------------------------------------------- size and shape limits


def _chunks(total: int, size: int = 4096) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        sent += piece
        yield b" " * piece


def _oversized_order(user_id: str, size: int) -> bytes:
    body = json.dumps(order_body(user_id)).encode()
    return body[:-1] + b', "pad": "' + b"x" * size + b'"}'


def test_oversized_body_with_content_length_is_413_json(door: Door, victim: Victim) -> None:
    before = state(door.gateway, victim.customer)
    response = door.gateway.request(
        "POST",
        "/orders",
        victim.customer.token,
        data=_oversized_order(victim.customer.user_id, door.settings.max_body),
        headers={"Content-Type": "application/json"},
    )
    refused(response, 413, "payload_too_large")
    assert state(door.gateway, victim.customer) == before


def test_oversized_chunked_body_without_content_length_is_413_json(door: Door, victim: Victim) -> None:
    before = state(door.gateway, victim.customer)
    payload = _oversized_order(victim.customer.user_id, door.settings.max_body)
    response = door.gateway.request(
        "POST",
        "/orders",
        victim.customer.token,
        data=(payload[i : i + 4096] for i in range(0, len(payload), 4096)),
        headers={"Content-Type": "application/json"},
    )
    assert "Content-Length" not in response.request.headers
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    refused(response, 413, "payload_too_large")
    assert state(door.gateway, victim.customer) == before


def test_chunked_body_beyond_the_servers_ceiling_is_413_before_the_app_sees_it(door: Door, victim: Victim) -> None:
    """Past twice the limit waitress stops reading and answers by itself (plain text)."""
    before = state(door.gateway, victim.customer)
    response = door.gateway.request(
        "POST",
        "/orders",
        victim.customer.token,
        data=_chunks(3 * door.settings.max_body),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.headers["Connection"] == "close"
    assert state(door.gateway, victim.customer) == before


def test_oversized_headers_are_431(door: Door, victim: Victim) -> None:
    response = door.gateway.request("GET", "/wallet", headers={"Authorization": "Bearer " + "a" * 20_000})
    assert response.status_code == 431


@pytest.mark.parametrize("depth", [17, 30_000])
def test_deeply_nested_json_is_400(door: Door, victim: Victim, depth: int) -> None:
    before = state(door.gateway, victim.customer)
    nested = "[" * depth + "]" * depth
    body = f'{{"user_id": "{victim.customer.user_id}", "currency": "RUB", "items": {nested}}}'
    response = door.gateway.request(
        "POST", "/orders", victim.customer.token, data=body, headers={"Content-Type": "application/json"}
    )
    refused(response, 400, "malformed_json")
    assert state(door.gateway, victim.customer) == before


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("login", "l" * 65),
        ("password", "p" * 129),
        ("email", "e" * 250 + "@example.com"),
        ("first_name", "f" * 101),
        ("last_name", "l" * 101),
    ],
)
def test_overlong_registration_field_is_422_and_creates_no_user(door: Door, field: str, value: str) -> None:
    login = f"long-{uuid.uuid4().hex[:10]}"
    response = door.gateway.register(**{"login": login, field: value})
    refused(response, 422, "validation_failed")
    assert [problem["path"] for problem in response.json()["errors"]] == [f"$.{field}"]
    if field != "login":
        assert door.gateway.register(login).status_code == 201


@pytest.mark.parametrize(
    ("field", "value"),
    [("email", "anna@example.com\n"), ("login", "anna-newline\n"), ("email", "anna@example.com\r\nBcc: x@example.org")],
    ids=["email_trailing_newline", "login_trailing_newline", "email_header_injection"],
)
def test_line_breaks_in_registration_fields_are_422(door: Door, field: str, value: str) -> None:
    response = door.gateway.register(**{"login": f"crlf-{uuid.uuid4().hex[:10]}", field: value})
    refused(response, 422, "validation_failed")
    assert [problem["path"] for problem in response.json()["errors"]] == [f"$.{field}"]


def test_overlong_item_name_and_idempotency_key_are_422(door: Door, victim: Victim) -> None:
    before = state(door.gateway, victim.customer)
    body = order_body(victim.customer.user_id)
    body["items"][0]["name"] = "n" * 201
    response = door.gateway.request("POST", "/orders", victim.customer.token, json=body)
    refused(response, 422, "validation_failed")
    assert [problem["path"] for problem in response.json()["errors"]] == ["$.items[0].name"]
    response = door.gateway.request(
        "POST",
        "/orders",
        victim.customer.token,
        json=order_body(victim.customer.user_id),
        headers={"Idempotency-Key": "k" * 129},
    )
    refused(response, 422, "validation_failed")
    assert state(door.gateway, victim.customer) == before


@pytest.mark.parametrize("path", ["/orders", "/letters", "/wallet/operations"])
@pytest.mark.parametrize(
    "query",
    [{"limit": "101"}, {"limit": "1000000"}, {"limit": "99999999999"}, {"limit": "-1"}, {"offset": "-1"}],
    ids=["limit_101", "limit_million", "limit_eleven_digits", "limit_negative", "offset_negative"],
)
def test_page_over_the_cap_is_422(door: Door, victim: Victim, path: str, query: dict[str, str]) -> None:
    refused(door.gateway.request("GET", path, victim.customer.token, params=query), 422, "validation_failed")


# ---------------------------------------------------------------- login throttling


def _login(gateway: Gateway, login: str, password: str) -> requests.Response:
    return gateway.request("POST", "/auth/login", json={"login": login, "password": password})


def test_login_flood_is_throttled_with_retry_after_and_the_right_password_waits_too(door: Door) -> None:
    target, bystander = door.gateway.customer(), door.gateway.customer()
    for _ in range(MAX_FAILURES):
        refused(_login(door.gateway, target.login, "wrong password"), 401, "invalid_credentials")
    throttled = _login(door.gateway, target.login, "wrong password")
    refused(throttled, 429, "too_many_attempts")
    assert 1 <= int(throttled.headers["Retry-After"]) <= 120
    right = _login(door.gateway, target.login, target.password)
    refused(right, 429, "too_many_attempts")
    assert "access_token" not in right.text
    # The throttle is per login: someone else logs in as usual.
    assert _login(door.gateway, bystander.login, bystander.password).status_code == 200


def test_parallel_login_flood_gets_no_more_guesses_than_the_limit(door: Door) -> None:
    target = door.gateway.customer()
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(lambda _: _login(door.gateway, target.login, "wrong password").status_code, range(24)))
    assert sorted(statuses) == [401] * MAX_FAILURES + [429] * (24 - MAX_FAILURES)
    assert _login(door.gateway, target.login, target.password).status_code == 429


# ---------------------------------------------------------------- secrets at rest stay at rest


def test_password_hashes_appear_in_no_response_and_no_log_line(door: Door) -> None:
    gateway = door.gateway
    login = f"secret-{uuid.uuid4().hex[:10]}"
    password = "very secret passphrase"
    answers = [gateway.register(login, password=password)]
    answers.append(gateway.register(login, password=password))
    answers.append(_login(gateway, login, "not the passphrase"))
    token_answer = _login(gateway, login, password)
    answers.append(token_answer)
    token = token_answer.json()["access_token"]
    answers += [gateway.request("GET", path, token) for path in ("/profile", "/wallet", "/orders", "/letters")]
    hashes = [row[0] for row in auth_rows(door.stack, 'SELECT password_hash FROM "user"')]
    assert any(value.startswith("$argon2id$") for value in hashes)
    secrets_at_rest = {piece for value in hashes for piece in [value, *value.split("$")[4:]]} | {password}
    logs = "".join(log_text(door.stack, service) for service in door.stack.processes)
    assert logs
    for secret in secrets_at_rest:
        for answer in answers:
            assert secret not in answer.text
        assert secret not in logs
    assert "$argon2id$" not in logs


# ---------------------------------------------------------------- key rotation


def _header_and_claims(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


def test_rotation_keeps_old_tokens_until_they_expire_and_signs_new_ones_with_the_new_key(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    stack = start_stack(
        tmp_path_factory.mktemp("rotation"),
        services=("profiles", "billing", "auth", "gateway"),
        token_ttl=6,
        token_leeway=1,
        jwks_refresh_interval=0.5,
    )
    try:
        gateway = Gateway(stack.urls["gateway"])
        customer = gateway.customer()
        old_token = customer.token
        old_header, old_claims = _header_and_claims(old_token)
        rotated = subprocess.run(
            [sys.executable, "-m", "orchestrator.cli", "keys", "rotate"],
            env=stack.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        new_kid = rotated.stdout.split("new signing key ", 1)[1].split()[0]
        assert new_kid != old_header["kid"]

        # The new key is published at once, and the old one stays while its tokens live.
        header = ServiceTokens(stack.settings.service_secret or "", "gateway").header("auth")
        jwks = requests.get(
            stack.urls["auth"] + "/.well-known/jwks.json", headers={"Authorization": header}, timeout=10
        )
        assert {key["kid"] for key in jwks.json()["keys"]} == {old_header["kid"], new_kid}
        assert gateway.request("GET", "/wallet", old_token).status_code == 200

        # Once the new key is active, logins are signed with it and accepted.
        deadline, new_token = time.monotonic() + 15, None
        while time.monotonic() < deadline:
            answer = _login(gateway, customer.login, customer.password)
            assert answer.status_code == 200
            if _header_and_claims(answer.json()["access_token"])[0]["kid"] == new_kid:
                new_token = answer.json()["access_token"]
                break
            time.sleep(0.2)
        assert new_token is not None, "the rotated key never started signing"
        assert gateway.request("GET", "/wallet", new_token).status_code == 200

        # A token of the retired key is refused once it has expired (beyond the leeway).
        while time.time() <= old_claims["exp"] + stack.settings.token_leeway + 0.5:
            time.sleep(0.2)
        expired = gateway.request("GET", "/wallet", old_token)
        refused(expired, 401, "invalid_token")
        assert "expired" in expired.json()["description"]
        assert _login(gateway, customer.login, customer.password).status_code == 200
    finally:
        stack.stop()


# ---------------------------------------------------------------- hostile downstream answers


def _profile(user_id: str, email: str) -> bytes:
    return json.dumps(
        {
            "user_id": user_id,
            "email": email,
            "first_name": "Vic",
            "last_name": "Tim",
            "created_at": "2024-01-01T00:00:00.000000Z",
            "updated_at": "2024-01-01T00:00:00.000000Z",
        }
    ).encode()


def _letter_request(user_id: str) -> dict[str, Any]:
    return {"order_id": str(uuid.uuid4()), "user_id": user_id, "status": "paid", "total": 300, "currency": "RUB"}


def _send_letter(
    settings: Settings, smtp: tuple[int, Inbox], email: str
) -> tuple[falcon.testing.Result, falcon.testing.Result]:
    """Notifications, in process, asking a fake Profiles that answers with ``email``."""
    user_id = str(uuid.uuid4())
    profile = _profile(user_id, email)
    with LocalServer(lambda path: (200, {"Content-Type": "application/json"}, profile)) as fake_profiles:
        port, _inbox = smtp
        configured = attrs.evolve(
            settings, urls={"profiles": fake_profiles.url}, smtp_host="127.0.0.1", smtp_port=port, http_retries=0
        )
        client = falcon.testing.TestClient(notifications_app(configured))
        header = {"Authorization": ServiceTokens(configured.secret(), "gateway").header("notifications")}
        request = _letter_request(user_id)
        sent = client.simulate_post("/letters", json=request, headers=header)
        listed = client.simulate_get("/letters", params={"order_id": request["order_id"]}, headers=header)
    return sent, listed


def test_a_clean_profile_from_profiles_gets_its_letter(settings: Settings, smtp: tuple[int, Inbox]) -> None:
    """The control for the hostile profiles below."""
    address = f"clean-{uuid.uuid4().hex[:8]}@example.com"
    sent, listed = _send_letter(settings, smtp, address)
    assert sent.status_code == 201
    assert len(listed.json["items"]) == 1
    assert len(smtp[1].to(address)) == 1


@pytest.mark.parametrize(
    "email",
    [
        "victim@example.com\r\nBcc: evil@example.org",
        "victim@example.com\nBcc: evil@example.org",
        "victim@example.com\n",
    ],
    ids=["crlf_bcc", "lf_bcc", "trailing_lf"],
)
def test_an_email_with_line_breaks_from_profiles_is_refused(
    settings: Settings, smtp: tuple[int, Inbox], email: str
) -> None:
    inbox = smtp[1]
    delivered = len(inbox.messages)
    sent, listed = _send_letter(settings, smtp, email)
    assert sent.status_code == 502
    assert sent.json["code"] == "profiles_bad_response"
    assert listed.json["items"] == []
    assert len(inbox.messages) == delivered


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_from_a_downstream_is_not_followed(settings: Settings, transport: str, status: int) -> None:
    user_id = str(uuid.uuid4())
    profile = _profile(user_id, "lured@example.com")
    with (
        LocalServer(lambda path: (200, {"Content-Type": "application/json"}, profile)) as elsewhere,
        LocalServer(lambda path: (status, {"Location": f"{elsewhere.url}{path}"}, b"")) as redirecting,
    ):
        configured = attrs.evolve(
            settings, urls={"profiles": redirecting.url}, http_transport=transport, http_retries=0
        )
        client = make_client(ProfilesClient, "notifications", "profiles", configured)
        with pytest.raises(DownstreamError) as failure:
            client.get_profile(user_id)
    assert failure.value.reason == BAD_RESPONSE
    assert failure.value.status == status
    assert redirecting.hits == [f"GET /profiles/{user_id}"]
    assert elsewhere.hits == []


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
def test_a_307_from_billing_does_not_send_the_payment_elsewhere(settings: Settings, transport: str) -> None:
    with (
        LocalServer(lambda path: (201, {"Content-Type": "application/json"}, b"{}")) as elsewhere,
        LocalServer(lambda path: (307, {"Location": f"{elsewhere.url}{path}"}, b"")) as redirecting,
    ):
        configured = attrs.evolve(settings, urls={"billing": redirecting.url}, http_transport=transport, http_retries=0)
        client = make_client(BillingClient, "gateway", "billing", configured)
        payment = billing.PaymentRequest(
            order_id=str(uuid.uuid4()), user_id=str(uuid.uuid4()), amount=100, currency="RUB"
        )
        with pytest.raises(DownstreamError) as failure:
            client.pay(payment)
    assert (failure.value.reason, failure.value.status) == (BAD_RESPONSE, 307)
    assert redirecting.hits == ["POST /payments"]
    assert elsewhere.hits == []
