"""Auth's logins through its HTTP interface: a stored hash made with scrypt, or with
other Argon2 settings, is replaced by a fresh Argon2id hash on the next good login."""

from __future__ import annotations

import uuid

import pytest

from services.auth import logic
from services.auth.app import create_app
from services.auth.models import User
from services.auth.passwords import Cost, hash_password, verify_password
from services.common.config import Settings
from services.common.db import utcnow
from tests.fakes import scrypt_hash

PASSWORD = "correct horse battery"


@pytest.fixture
def auth(make_caller):
    return make_caller(create_app, "auth", caller="gateway")


def _user(stored_hash: str) -> str:
    login = f"user-{uuid.uuid4().hex[:10]}"
    with User._meta.database.connection_context():
        User.create(
            id=str(uuid.uuid4()),
            login=login,
            password_hash=stored_hash,
            email=f"{login}@example.com",
            first_name="Test",
            last_name="Customer",
            complete=True,
            created_at=utcnow(),
        )
    return login


def _stored(login: str) -> str:
    with User._meta.database.connection_context():
        return User.get(User.login == login).password_hash


def _configured(settings: Settings) -> str:
    return f"$argon2id$v=19$m={settings.password_hash_memory},t={settings.password_hash_time},p=1$"


def test_a_good_login_replaces_an_older_scrypt_hash_with_argon2id(auth, settings: Settings) -> None:
    login = _user(scrypt_hash(PASSWORD))
    assert auth("POST", "/tokens", json={"login": login, "password": PASSWORD}).status_code == 200
    replaced = _stored(login)
    assert replaced.startswith(_configured(settings)) and verify_password(PASSWORD, replaced)
    # The new hash lets the same password in, and is kept as it is.
    assert auth("POST", "/tokens", json={"login": login, "password": PASSWORD}).status_code == 200
    assert _stored(login) == replaced


def test_a_wrong_password_leaves_the_older_hash_alone(auth) -> None:
    stored = scrypt_hash(PASSWORD)
    login = _user(stored)
    assert auth("POST", "/tokens", json={"login": login, "password": "not the password"}).status_code == 401
    assert _stored(login) == stored


def test_a_hash_made_at_weaker_argon2_settings_is_replaced(auth, settings: Settings) -> None:
    login = _user(hash_password(PASSWORD, Cost(memory_kib=256, time_cost=1)))
    assert auth("POST", "/tokens", json={"login": login, "password": PASSWORD}).status_code == 200
    assert _stored(login).startswith(_configured(settings))


def test_of_two_logins_at_once_the_second_keeps_the_first_ones_new_hash(auth, settings: Settings) -> None:
    login = _user(scrypt_hash(PASSWORD))
    cost = Cost(settings.password_hash_memory, settings.password_hash_time)
    with User._meta.database.connection_context():
        # Both read the scrypt hash before either replaced it.
        first, second = User.get(User.login == login), User.get(User.login == login)
        logic._rehash(first, PASSWORD, cost)
        after_first = User.get(User.login == login).password_hash
        logic._rehash(second, PASSWORD, cost)
        assert User.get(User.login == login).password_hash == after_first
    assert after_first.startswith(_configured(settings))
