"""What the attack tests share: the stack they attack, its victim, and the helpers that
forge, send and check."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs
import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orchestrator.tools.supervisor import Stack
from services.common.config import Settings
from tests.e2e.conftest import log_text
from tests.harness import Customer, Gateway

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
