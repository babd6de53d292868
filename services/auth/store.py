"""Auth's store: its database and every statement Auth runs, for the users, the login
throttle and the token signing keys."""

from __future__ import annotations

import datetime

from services.auth.models import MODELS, LoginFailure, SigningKey, User
from services.common.db import Store


class AuthStore(Store):
    service = "auth"
    models = MODELS

    # Users.
    def user(self, login: str) -> User | None:
        return self.select(User).where(User.login == login).get_or_none()

    def complete(self, user_id: str) -> None:
        """The user's profile and wallet exist: the registration is finished."""
        self.update(User, complete=True).where(User.id == user_id).execute()

    def replace_hash(self, user_id: str, old: str, new: str) -> bool:
        """Store the password hash ``new`` if ``old`` is still the stored one."""
        replaced = self.update(User, password_hash=new).where((User.id == user_id) & (User.password_hash == old))
        return bool(replaced.execute())

    # The login throttle: failed attempts per login within a window.
    def count_attempt(self, login: str, max_failures: int, window_open: datetime.datetime) -> bool:
        """Count one more attempt in the login's open window, if it has room for one."""
        counted = (
            self.update(LoginFailure, failures=LoginFailure.failures + 1)
            .where(
                (LoginFailure.login == login)
                & (LoginFailure.failures < max_failures)
                & (LoginFailure.window_start > window_open)
            )
            .execute()
        )
        return bool(counted)

    def attempts(self, login: str) -> LoginFailure | None:
        return self.select(LoginFailure).where(LoginFailure.login == login).get_or_none()

    def first_attempt(self, login: str, now: datetime.datetime) -> None:
        """Open the login's first window with this attempt; a parallel first raises
        IntegrityError."""
        self.insert(LoginFailure, login=login, failures=1, window_start=now).execute()

    def restart_window(self, login: str, window_start: datetime.datetime, now: datetime.datetime) -> bool:
        """Open a new window with this attempt, if the one that started at
        ``window_start`` is still the login's (no parallel request restarted it)."""
        restarted = (
            self.update(LoginFailure, failures=1, window_start=now)
            .where((LoginFailure.login == login) & (LoginFailure.window_start == window_start))
            .execute()
        )
        return bool(restarted)

    def clear_attempts(self, login: str) -> None:
        self.delete(LoginFailure).where(LoginFailure.login == login).execute()

    # Token signing keys.
    def key(self, kid: str) -> SigningKey | None:
        return self.select(SigningKey).where(SigningKey.kid == kid).get_or_none()

    def current_keys(self) -> list[SigningKey]:
        """The keys no newer key has taken over from."""
        return list(self.select(SigningKey).where(SigningKey.superseded_at.is_null()))

    def supersede(self, at: datetime.datetime, kids: list[str] | None = None) -> None:
        """Mark the keys ``kids`` (every current key when None) taken over from ``at``."""
        query = self.update(SigningKey, superseded_at=at)
        current = SigningKey.superseded_at.is_null() if kids is None else SigningKey.kid.in_(kids)
        query.where(current).execute()

    def signing_key(self, now: datetime.datetime) -> SigningKey | None:
        """The newest key active at ``now``."""
        return (
            self.select(SigningKey)
            .where(SigningKey.activates_at <= now)
            .order_by(SigningKey.activates_at.desc(), SigningKey.created_at.desc())
            .first()
        )

    def published_keys(self, horizon: datetime.datetime) -> list[SigningKey]:
        """Current keys and those taken over from after ``horizon``, newest first."""
        query = self.select(SigningKey).where(SigningKey.superseded_at.is_null() | (SigningKey.superseded_at > horizon))
        return list(query.order_by(SigningKey.created_at.desc()))
