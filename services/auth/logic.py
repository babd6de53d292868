"""What Auth does, apart from HTTP: the registration chain and logging in."""

from __future__ import annotations

import datetime
import math

import peewee

from contracts import auth as wire
from contracts import profiles
from contracts.types import new_id
from contracts.vocabulary import BAD_RESPONSE
from services.auth.keys import Signer
from services.auth.models import User
from services.auth.passwords import Cost, dummy_hash, hash_password, needs_rehash, verify_password
from services.auth.store import AuthStore
from services.common.clients import BillingClient, ProfilesClient
from services.common.db import iso, utcnow
from services.common.http import DownstreamError

# The registration chain as the design gives it: (step, who, whom, message).
REGISTRATION_CHAIN = (
    (1, "auth", "auth", "create the user (password as an Argon2id hash)"),
    (2, "auth", "profiles", "PUT /profiles/{user_id}"),
    (3, "auth", "billing", "PUT /wallets/{user_id}"),
)


class LoginTaken(Exception):
    """The login belongs to another (or a finished) registration."""


class InvalidCredentials(Exception):
    """Wrong login or password: deliberately not saying which."""


class RegistrationIncomplete(Exception):
    """The user exists but its profile or wallet does not yet."""


class TooManyAttempts(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many failed logins; try again in {retry_after} s.")
        self.retry_after = retry_after


def to_wire(row: User) -> wire.User:
    return wire.User(
        id=row.id,
        login=row.login,
        email=row.email,
        first_name=row.first_name,
        last_name=row.last_name,
        created_at=iso(row.created_at),
    )


def _claim_user(store: AuthStore, data: wire.Registration, hash_cost: Cost) -> User:
    """Step 1 of registration: the user row, new or left by an unfinished attempt."""
    row = store.user(data.login)
    if row is None:
        row = User(
            id=new_id(),
            login=data.login,
            password_hash=hash_password(data.password, hash_cost),
            email=data.email,
            first_name=data.first_name,
            last_name=data.last_name,
            created_at=utcnow(),
        )
        try:
            with store.transaction():
                store.add(row)
            return row
        except peewee.IntegrityError:
            row = store.user(data.login)
            assert row is not None, "the insert clashed with this login"
    # Only the person who started the registration may finish it.
    if row.complete or not verify_password(data.password, row.password_hash):
        raise LoginTaken("This login is taken.")
    if (row.email, row.first_name, row.last_name) != (data.email, data.first_name, data.last_name):
        row.email, row.first_name, row.last_name = data.email, data.first_name, data.last_name
        store.save(row)
    return row


def register(
    store: AuthStore,
    data: wire.Registration,
    profiles_client: ProfilesClient,
    billing: BillingClient,
    currency: str,
    hash_cost: Cost,
) -> wire.User:
    """Create the user, then synchronously its profile and its wallet. Each step is
    idempotent, so sending the same registration again finishes a broken one."""
    row = _claim_user(store, data, hash_cost)
    reply = profiles_client.put_profile(
        row.id, profiles.ProfileData(email=data.email, first_name=data.first_name, last_name=data.last_name)
    )
    if reply.error is not None:
        raise DownstreamError("profiles", BAD_RESPONSE, f"profile refused: {reply.error.code}", reply.status)
    reply = billing.open_wallet(row.id, currency)
    if reply.error is not None:
        raise DownstreamError("billing", BAD_RESPONSE, f"wallet refused: {reply.error.code}", reply.status)
    store.complete(row.id)
    return to_wire(row)


def login(
    store: AuthStore, data: wire.Credentials, signer: Signer, max_failures: int, window: int, hash_cost: Cost
) -> wire.AccessToken:
    _take_attempt(store, data.login, max_failures, window)
    row = store.user(data.login)
    ok = verify_password(data.password, row.password_hash if row else dummy_hash(hash_cost))
    if row is None or not ok:
        raise InvalidCredentials("Wrong login or password.")
    store.clear_attempts(data.login)
    if needs_rehash(row.password_hash, hash_cost):
        _rehash(store, row, data.password, hash_cost)
    if not row.complete:
        raise RegistrationIncomplete("Registration is not finished: send the same registration again.")
    return signer.sign(row.id, row.login)


def _rehash(store: AuthStore, row: User, password: str, hash_cost: Cost) -> None:
    """Replace a hash made with scrypt or other settings, now that the password is known.
    Only the hash just checked is replaced: of two logins at once, the second finds it
    gone and leaves the first one's in place."""
    store.replace_hash(row.id, row.password_hash, hash_password(password, hash_cost))


def _take_attempt(store: AuthStore, login_name: str, max_failures: int, window: int) -> None:
    """Count this attempt before the password is checked, or refuse it.

    Counting first means parallel guesses cannot all pass a check made before any of
    them was counted: at most ``max_failures`` passwords are tried per login and window,
    however many requests arrive at once. A right password clears the count. The count
    lives in the database, so every Auth replica sees the same one.
    """
    for _attempt in range(5):
        now = utcnow()
        window_open = now - datetime.timedelta(seconds=window)
        # One conditional update: two requests cannot both take the last free attempt.
        if store.count_attempt(login_name, max_failures, window_open):
            return
        row = store.attempts(login_name)
        if row is None:
            try:
                with store.transaction():
                    store.first_attempt(login_name, now)
                return
            except peewee.IntegrityError:
                continue
        if row.window_start <= window_open:
            # The window is over: the first request to notice starts a new one.
            if store.restart_window(login_name, row.window_start, now):
                return
            continue
        if row.failures < max_failures:
            continue
        remaining = (row.window_start + datetime.timedelta(seconds=window) - now).total_seconds()
        raise TooManyAttempts(max(1, math.ceil(remaining)))
    raise TooManyAttempts(1)
