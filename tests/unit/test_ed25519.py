"""The gateway's Ed25519 check through the interpreter's OpenSSL: it agrees with
cryptography on signatures right and wrong, refuses what is not a key, and gives way
to cryptography where OpenSSL has no Ed25519."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm
from jwt.exceptions import InvalidKeyError

from orchestrator import ed25519


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_this_process_has_it() -> None:
    assert ed25519.available()


@pytest.mark.parametrize("message", [b"", b"header.payload", b"x" * 10_000])
def test_it_agrees_with_cryptography(message: bytes) -> None:
    key = Ed25519PrivateKey.generate()
    public = ed25519.PublicKey(_raw(key))
    signature = key.sign(message)
    assert public.verify(signature, message)
    assert not public.verify(signature, message + b"!")
    assert not public.verify(signature[:-1] + bytes([signature[-1] ^ 0x80]), message)
    assert not public.verify(signature[:63], message)
    other = ed25519.PublicKey(_raw(Ed25519PrivateKey.generate()))
    assert not other.verify(signature, message)


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "OKP", "crv": "Ed25519", "x": base64.urlsafe_b64encode(b"short").decode()},
        {"kty": "OKP", "crv": "Ed448", "x": "AAAA"},
        {"kty": "RSA", "n": "AQAB"},
        {"kty": "OKP", "crv": "Ed25519", "x": "***"},
        "not a key",
    ],
    ids=["short", "ed448", "rsa", "not_base64", "string"],
)
def test_what_is_not_an_ed25519_key_is_refused(jwk: object) -> None:
    with pytest.raises(InvalidKeyError):
        ed25519.algorithm().from_jwk(jwk)


def test_a_published_key_reads_back() -> None:
    key = Ed25519PrivateKey.generate()
    x = base64.urlsafe_b64encode(_raw(key)).rstrip(b"=").decode()
    public = ed25519.public_key(x)
    assert isinstance(public, ed25519.PublicKey)
    assert ed25519.algorithm().verify(b"m", public, key.sign(b"m"))


def test_without_ed25519_in_openssl_cryptography_verifies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ed25519, "available", lambda: False)
    key = Ed25519PrivateKey.generate()
    x = base64.urlsafe_b64encode(_raw(key)).rstrip(b"=").decode()
    algorithm = ed25519.algorithm()
    assert isinstance(algorithm, OKPAlgorithm)
    assert algorithm.verify(b"m", ed25519.public_key(x), key.sign(b"m"))
