"""Verifying clients' access tokens with Auth's published keys.

The algorithm is pinned here, never read from the token. Keys are fetched from Auth's
JWKS and cached for one refresh interval: an unknown ``kid`` triggers at most one fetch
per interval, however many such tokens arrive, and a key Auth stops publishing (retired
or withdrawn) stops being trusted within an interval of the next token that needs keys.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from typing import Any

import jwt

from orchestrator import ed25519
from services.common.clients import AuthClient

log = logging.getLogger(__name__)
ALGORITHMS = ["EdDSA"]
REQUIRED_CLAIMS = ["exp", "iat", "nbf", "sub", "iss", "aud"]
# The claims are checked once the signature is (by PyJWT, on the token's payload).
CLAIM_CHECKS: Any = {
    "verify_signature": False,
    "verify_exp": True,
    "verify_nbf": True,
    "verify_iat": True,
    "verify_aud": True,
    "verify_iss": True,
    "require": REQUIRED_CLAIMS,
}
TIME_CLAIMS = ("exp", "iat", "nbf")
VERIFIED_CACHE_SIZE = 10_000
_KID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class InvalidToken(Exception):
    pass


class TokenVerifier:
    def __init__(self, auth: AuthClient, issuer: str, audience: str, leeway: int, refresh_interval: float) -> None:
        self.auth = auth
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.refresh_interval = refresh_interval
        self._keys: dict[str, Any] = {}
        self._fetched_at = float("-inf")
        self._lock = threading.Lock()
        self.fetches = 0
        # A client sends the same token with every request: the signature is checked
        # once; later uses check only its expiry and that its key is still published.
        self._verified: dict[str, tuple[str, float, str]] = {}
        # Signatures: EdDSA alone, checked by this process's OpenSSL where it can
        # (orchestrator.ed25519), so the gateway need not load cryptography.
        self._signatures = jwt.PyJWS(algorithms=[])
        self._signatures.register_algorithm("EdDSA", ed25519.algorithm())

    def verify(self, token: str) -> str:
        """The user ID the token was issued to, or :class:`InvalidToken`."""
        known = self._verified.get(token)
        if known is not None:
            subject, usable_until, kid = known
            self._key(kid)
            if time.time() < usable_until:
                return subject
            self._verified.pop(token, None)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("malformed token") from exc
        kid = header.get("kid")
        if header.get("alg") not in ALGORITHMS:
            raise InvalidToken("algorithm not allowed")
        if not isinstance(kid, str) or not _KID.fullmatch(kid):
            raise InvalidToken("missing or malformed key ID")
        key = self._key(kid)
        try:
            self._signatures.decode_complete(token, key, algorithms=ALGORITHMS)
            claims = jwt.decode(
                token, audience=self.audience, issuer=self.issuer, leeway=self.leeway, options=CLAIM_CHECKS
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        # PyJWT reads "9999999999" (a string) as a time; a NumericDate is a JSON number.
        if any(type(claims[name]) not in (int, float) for name in TIME_CLAIMS):
            raise InvalidToken("time claims must be numbers")
        subject = claims["sub"]
        try:
            if not isinstance(subject, str) or str(uuid.UUID(subject)) != subject:
                raise ValueError
        except ValueError as exc:
            raise InvalidToken("subject is not a user ID") from exc
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = (subject, float(claims["exp"]) + self.leeway, kid)
        return subject

    def _key(self, kid: str) -> Any:
        key = None if self._stale() else self._keys.get(kid)
        if key is None:
            # Under the lock: wait for a refresh another thread has begun, then look again.
            with self._lock:
                if self._stale():
                    self._refresh()
                key = self._keys.get(kid)
        if key is None:
            raise InvalidToken("unknown key ID")
        return key

    def _stale(self) -> bool:
        return time.monotonic() - self._fetched_at >= self.refresh_interval

    def _refresh(self) -> None:
        self._fetched_at = time.monotonic()
        self.fetches += 1
        try:
            reply = self.auth.jwks()
        except Exception as exc:  # Auth down: keep the keys we have
            log.warning("could not fetch signing keys: %s", exc)
            return
        keys = {}
        for jwk in reply.data.keys:
            if jwk.kty == "OKP" and jwk.crv == "Ed25519" and jwk.alg in ALGORITHMS:
                try:
                    keys[jwk.kid] = ed25519.public_key(jwk.x)
                except jwt.PyJWTError as exc:
                    log.warning("Auth published a key that is not one: %s: %s", jwk.kid, exc)
        self._keys = keys
