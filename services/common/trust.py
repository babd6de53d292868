"""Trust between services: a short-lived token per caller and target, signed with the
shared service credential, checked on every internal route against the contract's list
of who may call it. A client's access token is never enough to call a service.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

import falcon
import jwt

from contracts.operations import Operation
from services.common.errors import ApiError
from services.common.routes import plain_template

ALGORITHM = "HS256"
TOKEN_LIFETIME = 300
VERIFIED_CACHE_SIZE = 1024
OPEN_ROUTES = frozenset({"/health", "/ready", "/metrics"})
# HS256 is only as strong as its key: at least as long as the hash (RFC 7518 §3.2).
MIN_SECRET_BYTES = 32


def audience(service: str) -> str:
    return f"syncorders-service:{service}"


def checked_secret(secret: str) -> str:
    """The service secret, or a refusal to start with one short enough to guess."""
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise SystemExit(f"configuration: the service secret must be at least {MIN_SECRET_BYTES} bytes")
    return secret


class ServiceTokens:
    """Mints the caller's tokens, reusing each until a minute before it expires."""

    def __init__(self, secret: str, caller: str) -> None:
        self.secret = checked_secret(secret)
        self.caller = caller
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[str, float]] = {}

    def header(self, target: str) -> str:
        now = time.time()
        cached = self._cache.get(target)
        if cached and cached[1] - now > 60:
            return cached[0]
        with self._lock:
            expires = now + TOKEN_LIFETIME
            claims = {
                "iss": self.caller,
                "sub": self.caller,
                "aud": audience(target),
                "iat": int(now),
                "exp": int(expires),
            }
            value = "Bearer " + jwt.encode(claims, self.secret, algorithm=ALGORITHM)
            self._cache[target] = (value, expires)
            return value


class TrustMiddleware:
    """Lets a request through only when its service token names a caller that the
    contract allows on that route."""

    def __init__(self, service: str, secret: str, operations: Iterable[Operation], leeway: float = 5) -> None:
        self.service = service
        self.secret = checked_secret(secret)
        self.leeway = leeway
        self.callers = {(op.method, op.path): op.callers for op in operations}
        # Callers reuse a token for minutes: verify it once, then only its expiry.
        self._verified: dict[str, tuple[str, float]] = {}

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any, params: Any) -> None:
        template = plain_template(req.uri_template)
        if resource is None or template in OPEN_ROUTES:
            return
        allowed = self.callers.get((req.method, template))
        if allowed is None:
            # A route the contract does not list is nobody's to call.
            raise ApiError(403, "forbidden", "Not an allowed call")
        caller = self._caller(req)
        if caller not in allowed:
            raise ApiError(403, "forbidden", "Not an allowed call", f"{caller} may not call {req.method} {template}.")
        req.context.caller = caller

    def _caller(self, req: falcon.Request) -> str:
        header = req.get_header("Authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "unauthorized", "Service credential required", headers={"WWW-Authenticate": "Bearer"})
        known = self._verified.get(token)
        if known is not None and known[1] > time.time():
            return known[0]
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=[ALGORITHM],
                audience=audience(self.service),
                options={"require": ["exp", "iat", "sub", "aud"]},
                leeway=self.leeway,
            )
        except jwt.PyJWTError as exc:
            raise ApiError(
                401, "unauthorized", "Invalid service credential", str(exc), headers={"WWW-Authenticate": "Bearer"}
            ) from exc
        caller = str(claims["sub"])
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = (caller, float(claims["exp"]) + self.leeway)
        return caller
