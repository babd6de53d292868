"""Password hashing with Argon2id (argon2-cffi), salted, in the PHC string format.

Hashes made earlier with scrypt (``scrypt$<log2 N>$<r>$<p>$<salt>$<digest>``) still
verify; :func:`needs_rehash` tells the login to replace them, and Argon2 hashes made
at other settings, with a fresh hash.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import threading

import attrs
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP Password Storage Cheat Sheet: "Use Argon2id with a minimum configuration of
# 19 MiB of memory, an iteration count of 2, and 1 degree of parallelism" (its scrypt
# minimum, N=2^17, is eight times the 2^14 hashes here used to have).
OWASP_MEMORY_KIB = 19 * 1024
OWASP_TIME_COST = 2
PARALLELISM = 1
ARGON2_MIN_MEMORY_KIB = 8 * PARALLELISM

# Each hash holds its memory (19 MiB by default) while it runs. Bounding how many run at
# once bounds Auth's memory and CPU, whatever a login flood sends.
MAX_PARALLEL_HASHES = 4
_slots = threading.BoundedSemaphore(MAX_PARALLEL_HASHES)


@attrs.frozen
class Cost:
    """What one hash costs: Argon2id's memory in KiB and its passes over it."""

    memory_kib: int = OWASP_MEMORY_KIB
    time_cost: int = OWASP_TIME_COST

    def check(self) -> Cost:
        if self.memory_kib < ARGON2_MIN_MEMORY_KIB:
            raise SystemExit(
                f"configuration: SYNCORDERS_PASSWORD_HASH_MEMORY must be at least {ARGON2_MIN_MEMORY_KIB} (KiB)"
            )
        if self.time_cost < 1:
            raise SystemExit("configuration: SYNCORDERS_PASSWORD_HASH_TIME must be at least 1")
        return self


@functools.cache
def _hasher(cost: Cost) -> PasswordHasher:
    return PasswordHasher(
        time_cost=cost.time_cost,
        memory_cost=cost.memory_kib,
        parallelism=PARALLELISM,
        hash_len=32,
        salt_len=16,
        type=Type.ID,
    )


def hash_password(password: str, cost: Cost) -> str:
    with _slots:
        return _hasher(cost).hash(password)


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored``, an Argon2 or an older scrypt hash; the
    cost is the one written in the hash."""
    if stored.startswith("$argon2"):
        try:
            with _slots:
                return _hasher(Cost()).verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False
    return _verify_scrypt(password, stored)


def needs_rehash(stored: str, cost: Cost) -> bool:
    """True for a scrypt hash and for an Argon2 one made at other settings."""
    if not stored.startswith("$argon2id$"):
        return True
    try:
        return _hasher(cost).check_needs_rehash(stored)
    except InvalidHashError:
        return True


def _verify_scrypt(password: str, stored: str) -> bool:
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


@functools.cache
def dummy_hash(cost: Cost) -> str:
    """Checked when the login is unknown, at the configured cost, so a miss takes as
    long as a wrong password and timing does not tell which logins exist."""
    return hash_password(secrets.token_hex(16), cost)
