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


def _store(key: Ed25519PrivateKey, activates_at: datetime.datetime) -> SigningKey:
    kid = thumbprint(key.public_key())
    try:
        return SigningKey.create(kid=kid, private_pem=_pem(key), created_at=utcnow(), activates_at=activates_at)
    except peewee.IntegrityError:
        return SigningKey.get_by_id(kid)


def ensure_key(db: peewee.Database, key_file: str | None) -> None:
    """At start: the configured key, or the kept one, or a new one."""
    with db.connection_context():
        if key_file:
            key = _load(Path(key_file).read_text())
            if SigningKey.get_or_none(SigningKey.kid == thumbprint(key.public_key())) is None:
                with db.atomic():
                    SigningKey.update(superseded_at=utcnow()).where(SigningKey.superseded_at.is_null()).execute()
                    _store(key, utcnow())
            return
        if SigningKey.select().where(SigningKey.superseded_at.is_null()).exists():
            return
        _store(Ed25519PrivateKey.generate(), utcnow())


def rotate(db: peewee.Database, publish_ahead: float) -> str:
    """Publish a new key now, sign with it ``publish_ahead`` seconds from now."""
    now = utcnow()
    with db.atomic():
        current = list(SigningKey.select().where(SigningKey.superseded_at.is_null()))
        row = _store(Ed25519PrivateKey.generate(), now + datetime.timedelta(seconds=publish_ahead))
        ids = [key.kid for key in current if key.kid != row.kid]
        if ids:
            SigningKey.update(superseded_at=row.activates_at).where(SigningKey.kid.in_(ids)).execute()
    return row.kid


def _signing_row() -> SigningKey:
    now = utcnow()
    row = (
        SigningKey.select()
        .where(SigningKey.activates_at <= now)
        .order_by(SigningKey.activates_at.desc(), SigningKey.created_at.desc())
        .first()
    )
    if row is None:
        raise RuntimeError("no signing key")
    return row


class Signer:
    """Signs access tokens with the newest active key (read per login, so a rotation
    reaches every replica), keeping parsed keys in memory."""

    def __init__(self, issuer: str, audience: str, ttl: int) -> None:
        self.issuer = issuer
        self.audience = audience
        self.ttl = ttl
        self._parsed: dict[str, Ed25519PrivateKey] = {}

    def sign(self, user_id: str, login: str) -> wire.AccessToken:
        row = _signing_row()
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


def published(token_ttl: int) -> wire.Jwks:
    """Every key that signs now, will sign soon, or signed a token still valid."""
    horizon = utcnow() - datetime.timedelta(seconds=token_ttl + 60)
    rows = SigningKey.select().where(SigningKey.superseded_at.is_null() | (SigningKey.superseded_at > horizon))
    keys = []
    for row in rows.order_by(SigningKey.created_at.desc()):
        public = _load(row.private_pem).public_key()
        keys.append(
            wire.Jwk(kty="OKP", crv="Ed25519", x=_b64url(_public_bytes(public)), kid=row.kid, alg=ALGORITHM, use="sig")
        )
    return wire.Jwks(keys=keys)
