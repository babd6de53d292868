"""Token signing keys: Ed25519 (EdDSA), published as a JWKS with ``kid``s.

Keys are generated on first start and kept in Auth's database, or loaded from a PEM
file named in configuration. Rotation publishes the new key at once and signs with it
only after verifiers have had time to fetch it; the old key stays published until the
last token it signed has expired.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import time
import uuid
from pathlib import Path

import jwt
import peewee
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from contracts import auth as wire
from services.auth.models import SigningKey
from services.auth.store import AuthStore
from services.common.db import utcnow

ALGORITHM = "EdDSA"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def thumbprint(public: Ed25519PublicKey) -> str:
    """RFC 7638 thumbprint: a kid that names the key itself."""
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": _b64url(_public_bytes(public))}, separators=(",", ":"))
    return _b64url(hashlib.sha256(canonical.encode()).digest())


def _pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _load(pem: str) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SystemExit("configuration: the signing key must be an Ed25519 private key")
    return key


def _keep(store: AuthStore, key: Ed25519PrivateKey, activates_at: datetime.datetime) -> SigningKey:
    row = SigningKey(
        kid=thumbprint(key.public_key()), private_pem=_pem(key), created_at=utcnow(), activates_at=activates_at
    )
    try:
        with store.transaction():
            store.add(row)
        return row
    except peewee.IntegrityError:
        kept = store.key(row.kid)
        assert kept is not None, "the insert clashed with this key"
        return kept


def ensure_key(store: AuthStore, key_file: str | None) -> None:
    """At start: the configured key, or the kept one, or a new one."""
    with store.connection():
        if key_file:
            key = _load(Path(key_file).read_text())
            if store.key(thumbprint(key.public_key())) is None:
                with store.transaction():
                    store.supersede(utcnow())
                    _keep(store, key, utcnow())
            return
        if store.current_keys():
            return
        _keep(store, Ed25519PrivateKey.generate(), utcnow())


def rotate(store: AuthStore, publish_ahead: float) -> str:
    """Publish a new key now, sign with it ``publish_ahead`` seconds from now."""
    now = utcnow()
    with store.transaction():
        current = store.current_keys()
        row = _keep(store, Ed25519PrivateKey.generate(), now + datetime.timedelta(seconds=publish_ahead))
        kids = [key.kid for key in current if key.kid != row.kid]
        if kids:
            store.supersede(row.activates_at, kids)
    return row.kid


class Signer:
    """Signs access tokens with the newest active key (read per login, so a rotation
    reaches every replica), keeping parsed keys in memory."""

    def __init__(self, store: AuthStore, issuer: str, audience: str, ttl: int) -> None:
        self.store = store
        self.issuer = issuer
        self.audience = audience
        self.ttl = ttl
        self._parsed: dict[str, Ed25519PrivateKey] = {}

    def sign(self, user_id: str, login: str) -> wire.AccessToken:
        row = self.store.signing_key(utcnow())
        if row is None:
            raise RuntimeError("no signing key")
        key = self._parsed.get(row.kid)
        if key is None:
            key = self._parsed[row.kid] = _load(row.private_pem)
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": user_id,
            "login": login,
            "iat": now,
            "nbf": now,
            "exp": now + self.ttl,
            "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": row.kid})
        return wire.AccessToken(access_token=token, token_type="Bearer", expires_in=self.ttl)


def published(store: AuthStore, token_ttl: int) -> wire.Jwks:
    """Every key that signs now, will sign soon, or signed a token still valid."""
    horizon = utcnow() - datetime.timedelta(seconds=token_ttl + 60)
    keys = []
    for row in store.published_keys(horizon):
        public = _load(row.private_pem).public_key()
        keys.append(
            wire.Jwk(kty="OKP", crv="Ed25519", x=_b64url(_public_bytes(public)), kid=row.kid, alg=ALGORITHM, use="sig")
        )
    return wire.Jwks(keys=keys)
