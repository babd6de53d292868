"""Ed25519 signatures checked by the OpenSSL library the interpreter has already loaded
for ``hashlib``, so that the gateway, which only verifies access tokens, does not load
cryptography (8 MB in each process that imports it) for that one operation.

Where that library has no Ed25519 (OpenSSL before 1.1.1) or cannot be found,
:func:`available` is false and :func:`algorithm` and :func:`public_key` fall back to
PyJWT's own EdDSA on cryptography. The binding checks itself against RFC 8032's test
vectors before it is used. Nothing here imports PyJWT (which would import cryptography)
until a token is to be checked, so :func:`available` can be asked first.
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import functools
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# OpenSSL's identifier of Ed25519 keys (EVP_PKEY_ED25519, NID_ED25519).
_ED25519 = 1087
KEY_BYTES = 32
SIGNATURE_BYTES = 64


def _libcrypto_path() -> str | None:
    """The libcrypto this process already maps (hashlib's), else the system's."""
    import _hashlib  # noqa: F401 - maps libcrypto, if the interpreter was built with OpenSSL

    try:
        for line in Path("/proc/self/maps").read_text().splitlines():
            path = line.rsplit(" ", 1)[-1]
            if "/libcrypto." in path:
                return path
    except OSError:
        pass
    return ctypes.util.find_library("crypto")


@functools.cache
def _library() -> Any | None:
    path = _libcrypto_path()
    if path is None:
        return None
    try:
        lib = ctypes.CDLL(path)
        c = ctypes
        lib.EVP_PKEY_new_raw_public_key.restype = c.c_void_p
        lib.EVP_PKEY_new_raw_public_key.argtypes = [c.c_int, c.c_void_p, c.c_char_p, c.c_size_t]
        lib.EVP_PKEY_free.argtypes = [c.c_void_p]
        lib.EVP_PKEY_free.restype = None
        lib.EVP_MD_CTX_new.restype = c.c_void_p
        lib.EVP_MD_CTX_free.argtypes = [c.c_void_p]
        lib.EVP_MD_CTX_free.restype = None
        lib.EVP_DigestVerifyInit.argtypes = [c.c_void_p, c.c_void_p, c.c_void_p, c.c_void_p, c.c_void_p]
        lib.EVP_DigestVerifyInit.restype = c.c_int
        lib.EVP_DigestVerify.argtypes = [c.c_void_p, c.c_char_p, c.c_size_t, c.c_char_p, c.c_size_t]
        lib.EVP_DigestVerify.restype = c.c_int
        lib.ERR_clear_error.argtypes = []
        lib.ERR_clear_error.restype = None
    except (OSError, AttributeError):
        return None
    return lib


class KeyRefused(ValueError):
    """Not an Ed25519 public key (PyJWT's algorithm turns it into ``InvalidKeyError``)."""


class PublicKey:
    """An Ed25519 public key held by OpenSSL."""

    def __init__(self, raw: bytes) -> None:
        lib = _library()
        if lib is None:
            raise KeyRefused("no Ed25519 in this process's OpenSSL")
        if len(raw) != KEY_BYTES:
            raise KeyRefused(f"an Ed25519 public key is {KEY_BYTES} bytes, not {len(raw)}")
        self._lib = lib
        self._key = lib.EVP_PKEY_new_raw_public_key(_ED25519, None, raw, len(raw))
        if not self._key:
            lib.ERR_clear_error()
            raise KeyRefused("OpenSSL refused the Ed25519 public key")

    def verify(self, signature: bytes, message: bytes) -> bool:
        if len(signature) != SIGNATURE_BYTES:
            return False
        lib = self._lib
        context = lib.EVP_MD_CTX_new()
        if not context:
            raise MemoryError("OpenSSL could not make a digest context")
        try:
            good = (
                lib.EVP_DigestVerifyInit(context, None, None, None, self._key) == 1
                and lib.EVP_DigestVerify(context, signature, len(signature), message, len(message)) == 1
            )
            if not good:
                # A refused signature leaves an error on this thread's queue.
                lib.ERR_clear_error()
            return good
        finally:
            lib.EVP_MD_CTX_free(context)

    def __del__(self) -> None:
        key = getattr(self, "_key", None)
        if key:
            self._lib.EVP_PKEY_free(key)
            self._key = None


def _raw_key(jwk: Any) -> bytes:
    if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise KeyRefused("not an Ed25519 key")
    text = str(jwk.get("x", ""))
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError as exc:
        raise KeyRefused("a key's x is not base64url") from exc


@functools.cache
def _eddsa() -> type:
    """PyJWT's ``EdDSA`` (Ed25519 only), verifying with :class:`PublicKey`; made on first
    use, since PyJWT is imported then."""
    from jwt.algorithms import Algorithm
    from jwt.exceptions import InvalidKeyError

    class EdDSA(Algorithm):
        def prepare_key(self, key: Any) -> PublicKey:
            if not isinstance(key, PublicKey):
                raise InvalidKeyError("expected an Ed25519 public key")
            return key

        def sign(self, msg: bytes, key: Any) -> bytes:
            raise NotImplementedError("the gateway verifies tokens; Auth signs them")

        def verify(self, msg: bytes, key: Any, sig: bytes) -> bool:
            return bool(key.verify(sig, msg))

        @staticmethod
        def to_jwk(key_obj: Any, as_dict: bool = False) -> Any:
            raise NotImplementedError("keys are published by Auth")

        @staticmethod
        def from_jwk(jwk: Any) -> PublicKey:
            try:
                return PublicKey(_raw_key(jwk))
            except KeyRefused as exc:
                raise InvalidKeyError(str(exc)) from exc

    return EdDSA


# RFC 8032, section 7.1, tests 1 and 2: (public key, message, signature).
_VECTORS = (
    (
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
)


@functools.cache
def available() -> bool:
    """This process's OpenSSL verifies Ed25519, right and wrong alike."""
    if _library() is None:
        return False
    try:
        for key, message, signature in _VECTORS:
            public = PublicKey(bytes.fromhex(key))
            good = bytes.fromhex(signature)
            bad = good[:-1] + bytes([good[-1] ^ 1])
            if not public.verify(good, bytes.fromhex(message)) or public.verify(bad, bytes.fromhex(message)):
                return False
    except KeyRefused:
        return False
    return True


def algorithm() -> Any:
    """The EdDSA algorithm (PyJWT's kind) to verify tokens with."""
    if available():
        return _eddsa()()
    from jwt.algorithms import OKPAlgorithm

    log.info("OpenSSL here has no Ed25519: verifying tokens with cryptography")
    return OKPAlgorithm()


def public_key(x: str) -> Any:
    """The key of a JWK ``{"kty": "OKP", "crv": "Ed25519", "x": x}``, for :func:`algorithm`."""
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": x}
    if available():
        return _eddsa().from_jwk(jwk)
    from jwt.algorithms import OKPAlgorithm

    return OKPAlgorithm.from_jwk(jwk)
