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
from services.auth.models import LoginFailure, User
from services.auth.passwords import Cost, dummy_hash, hash_password, needs_rehash, verify_password
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


def _claim_user(data: wire.Registration, hash_cost: Cost) -> User:
    """Step 1 of registration: the user row, new or left by an unfinished attempt."""
    row = User.get_or_none(User.login == data.login)
    if row is None:
        try:
            with User._meta.database.atomic():
                return User.create(
                    id=new_id(),
                    login=data.login,
                    password_hash=hash_password(data.password, hash_cost),
                    email=data.email,
                    first_name=data.first_name,
                    last_name=data.last_name,
                    created_at=utcnow(),
                )
        except peewee.IntegrityError:
            row = User.get(User.login == data.login)
    # Only the person who started the registration may finish it.
    if row.complete or not verify_password(data.password, row.password_hash):
        raise LoginTaken("This login is taken.")
    if (row.email, row.first_name, row.last_name) != (data.email, data.first_name, data.last_name):
        row.email, row.first_name, row.last_name = data.email, data.first_name, data.last_name
        row.save()
    return row


def register(
    data: wire.Registration, profiles_client: ProfilesClient, billing: BillingClient, currency: str, hash_cost: Cost
) -> wire.User:
    """Create the user, then synchronously its profile and its wallet. Each step is
    idempotent, so sending the same registration again finishes a broken one."""
    row = _claim_user(data, hash_cost)
    reply = profiles_client.put_profile(
        row.id, profiles.ProfileData(email=data.email, first_name=data.first_name, last_name=data.last_name)
    )
    if reply.error is not None:
        raise DownstreamError("profiles", BAD_RESPONSE, f"profile refused: {reply.error.code}", reply.status)
    reply = billing.open_wallet(row.id, currency)
    if reply.error is not None:
        raise DownstreamError("billing", BAD_RESPONSE, f"wallet refused: {reply.error.code}", reply.status)
    User.update(complete=True).where(User.id == row.id).execute()
    return to_wire(row)


def login(data: wire.Credentials, signer: Signer, max_failures: int, window: int, hash_cost: Cost) -> wire.AccessToken:
    _take_attempt(data.login, max_failures, window)
    row = User.get_or_none(User.login == data.login)
    ok = verify_password(data.password, row.password_hash if row else dummy_hash(hash_cost))
    if row is None or not ok:
        raise InvalidCredentials("Wrong login or password.")
    LoginFailure.delete().where(LoginFailure.login == data.login).execute()
    if needs_rehash(row.password_hash, hash_cost):
        _rehash(row, data.password, hash_cost)
    if not row.complete:
        raise RegistrationIncomplete("Registration is not finished: send the same registration again.")
    return signer.sign(row.id, row.login)


def _rehash(row: User, password: str, hash_cost: Cost) -> None:
    """Replace a hash made with scrypt or other settings, now that the password is known.
    Only the hash just checked is replaced: of two logins at once, the second finds it
    gone and leaves the first one's in place."""
    User.update(password_hash=hash_password(password, hash_cost)).where(
        (User.id == row.id) & (User.password_hash == row.password_hash)
    ).execute()


def _take_attempt(login_name: str, max_failures: int, window: int) -> None:
    """Count this attempt before the password is checked, or refuse it.

    Counting first means parallel guesses cannot all pass a check made before any of
    them was counted: at most ``max_failures`` passwords are tried per login and window,
    however many requests arrive at once. A right password clears the count. The count
    lives in the database, so every Auth replica sees the same one.
    """
    db = LoginFailure._meta.database
    for _attempt in range(5):
        now = utcnow()
        window_open = now - datetime.timedelta(seconds=window)
        # One conditional update: two requests cannot both take the last free attempt.
        counted = (
            LoginFailure.update(failures=LoginFailure.failures + 1)
            .where(
                (LoginFailure.login == login_name)
                & (LoginFailure.failures < max_failures)
                & (LoginFailure.window_start > window_open)
            )
            .execute()
        )
        if counted:
            return
        row = LoginFailure.get_or_none(LoginFailure.login == login_name)
        if row is None:
            try:
                with db.atomic():
                    LoginFailure.create(login=login_name, failures=1, window_start=now)
                return
            except peewee.IntegrityError:
                continue
        if row.window_start <= window_open:
            # The window is over: the first request to notice starts a new one.
            restarted = (
                LoginFailure.update(failures=1, window_start=now)
                .where((LoginFailure.login == login_name) & (LoginFailure.window_start == row.window_start))
                .execute()
            )
            if restarted:
                return
            continue
        if row.failures < max_failures:
            continue
        remaining = (row.window_start + datetime.timedelta(seconds=window) - now).total_seconds()
        raise TooManyAttempts(max(1, math.ceil(remaining)))
    raise TooManyAttempts(1)
