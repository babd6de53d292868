"""Password hashing with scrypt (memory-hard, salted), from the standard library."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import threading

R, P = 8, 1
# Each hash holds 2**cost * 128 * R bytes (16 MiB at cost 14) while it runs. Bounding how
# many run at once bounds Auth's memory and CPU, whatever a login flood sends.
MAX_PARALLEL_HASHES = 4
_slots = threading.BoundedSemaphore(MAX_PARALLEL_HASHES)


def hash_password(password: str, cost: int) -> str:
    salt = secrets.token_bytes(16)
    with _slots:
        digest = hashlib.scrypt(password.encode(), salt=salt, n=2**cost, r=R, p=P, dklen=32)
    return f"scrypt${cost}${R}${P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, cost, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        with _slots:
            actual = hashlib.scrypt(
                password.encode(),
                salt=base64.b64decode(salt),
                n=2 ** int(cost),
                r=int(r),
                p=int(p),
                dklen=len(expected),
                maxmem=2**26,
            )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@functools.cache
def dummy_hash(cost: int) -> str:
    """Checked when the login is unknown, at the configured cost, so a miss takes as
    long as a wrong password and timing does not tell which logins exist."""
    return hash_password(secrets.token_hex(16), cost)
