"""The consumer side's shared pieces: settings that point a real app at WireMock, the
ways a stand-in misbehaves, access tokens signed with a key the test holds, and the
journal check every consumer test ends with."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import attrs
import falcon.testing
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts import auth
from contracts.examples import wire
from services.auth.keys import thumbprint
from services.common.config import INTERNAL_SERVICES, Settings
from services.common.trust import ServiceTokens
from tests.contract.stubs import Received, WireMock, fault, raw, request_problems, stub

# Set explicitly: the journal counts below depend on them.
RETRIES = 2
ATTEMPTS = 1 + RETRIES
READ_TIMEOUT = 0.4
SLOW_MS = 1500


def consumer_settings(data_dir: Path, wiremock: WireMock) -> Settings:
    return Settings(
        data_dir=str(data_dir),
        service_secret=secrets.token_hex(32),
        urls={service: wiremock.base(service) for service in INTERNAL_SERVICES},
        http_retries=RETRIES,
        http_backoff=0.01,
        http_read_timeout=READ_TIMEOUT,
        http_connect_timeout=1.0,
        password_hash_memory=1024,
        password_hash_time=1,
    )


@attrs.frozen
class Misbehaviour:
    """A way a stand-in fails, and what the calling client makes of it."""

    name: str
    response: dict[str, Any]
    reason: str
    status: int  # what a service answers its own caller when this call fails
    attempts: int  # how many times an idempotent call is sent
    delay_ms: int | None = None


def misbehaviours(success_status: int) -> list[Misbehaviour]:
    """The failures every client is held to: a 500, a body that is not JSON, JSON of
    the wrong shape, an answer slower than the read timeout, and dropped connections."""
    return [
        Misbehaviour("server_error_500", raw(500, '{"oops": true}'), "server_error", 502, 1),
        Misbehaviour("not_json", raw(success_status, "<html>busy</html>", "text/html"), "bad_response", 502, 1),
        Misbehaviour("wrong_shape", raw(success_status, '{"identifier": 1}'), "bad_response", 502, 1),
        Misbehaviour("slower_than_timeout", raw(success_status, "{}"), "timeout", 504, ATTEMPTS, SLOW_MS),
        Misbehaviour("connection_reset", fault("CONNECTION_RESET_BY_PEER"), "unavailable", 503, ATTEMPTS),
        Misbehaviour("empty_response", fault("EMPTY_RESPONSE"), "unavailable", 503, ATTEMPTS),
    ]


def misbehave(wiremock: WireMock, service: str, operation: str, how: Misbehaviour) -> None:
    stub(wiremock, service, operation, how.response, delay_ms=how.delay_ms)


class ClientKeys:
    """Stands in for Auth's signing key: publishes its JWKS, signs access tokens."""

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        public = self.key.public_key()
        self.kid = thumbprint(public)
        raw_public = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        x = jwt.utils.base64url_encode(raw_public).decode()
        self.jwks = auth.Jwks(keys=[auth.Jwk(kty="OKP", crv="Ed25519", x=x, kid=self.kid, alg="EdDSA", use="sig")])

    def publish(self, wiremock: WireMock) -> None:
        answer = {"status": 200, "jsonBody": wire(self.jwks), "headers": {"Content-Type": "application/json"}}
        stub(wiremock, "auth", "jwks", answer)

    def token(self, settings: Settings, user_id: str) -> str:
        now = int(time.time())
        claims = {
            "iss": settings.token_issuer,
            "aud": settings.token_audience,
            "sub": user_id,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
        }
        return jwt.encode(claims, self.key, algorithm="EdDSA", headers={"kid": self.kid})


def service_client(app: falcon.App, settings: Settings, service: str, caller: str) -> Any:
    """Calls ``app`` as ``caller`` would: its service token on every request."""
    header = ServiceTokens(settings.secret(), caller).header(service)
    return falcon.testing.TestClient(app, headers={"Authorization": header})


def sent(wiremock: WireMock, settings: Settings, caller: str, *, skip: frozenset[str] = frozenset()) -> list[Received]:
    """What the stand-ins received, oldest first, after checking that each request is
    one its provider's document and trust check accept. ``skip`` drops paths (such as
    the gateway's JWKS fetch) from the returned list."""
    received = wiremock.received()
    problems = request_problems(received, settings.secret(), caller)
    assert problems == [], "\n".join(problems)
    return [r for r in received if r.path not in skip]
