"""Auth's logins through its HTTP interface: a stored hash made with scrypt, or with
other Argon2 settings, is replaced by a fresh Argon2id hash on the next good login.

The app is given a store of the test's own, through which the older hashes are planted
and the new ones read."""

from __future__ import annotations

import uuid

import pytest

from services.auth import logic
from services.auth.app import create_app
from services.auth.models import User
from services.auth.passwords import Cost, hash_password, verify_password
from services.auth.store import AuthStore
from services.common.config import Settings
from services.common.db import utcnow
from tests.component.conftest import settings_file
from tests.fakes import scrypt_hash

PASSWORD = "correct horse battery"


@pytest.fixture
def store(open_store) -> AuthStore:
    return open_store(AuthStore)


@pytest.fixture
def auth(make_caller, store: AuthStore):
    return make_caller(create_app, "auth", caller="gateway", store=store)


def _user(store: AuthStore, stored_hash: str) -> str:
    login = f"user-{uuid.uuid4().hex[:10]}"
    row = User(
        id=str(uuid.uuid4()),
        login=login,
        password_hash=stored_hash,
        email=f"{login}@example.com",
        first_name="Test",
        last_name="Customer",
        complete=True,
        created_at=utcnow(),
    )
    with store.connection():
        store.add(row)
    return login


def _stored(store: AuthStore, login: str) -> str:
    with store.connection():
        row = store.user(login)
    assert row is not None
    return row.password_hash


def _configured(settings: Settings) -> str:
    return f"$argon2id$v=19$m={settings.password_hash_memory},t={settings.password_hash_time},p=1$"


def test_a_good_login_replaces_an_older_scrypt_hash_with_argon2id(auth, store, settings: Settings) -> None:
    login = _user(store, scrypt_hash(PASSWORD))
    assert auth("POST", "/tokens", json={"login": login, "password": PASSWORD}).status_code == 200
    replaced = _stored(store, login)
    assert replaced.startswith(_configured(settings)) and verify_password(PASSWORD, replaced)
    # The new hash lets the same password in, and is kept as it is.
    assert auth("POST", "/tokens", json={"login": login, "password": PASSWORD}).status_code == 200
    assert _stored(store, login) == replaced
    # The app kept everything in the store it was given.
    assert not settings_file(settings, "auth").exists()


def test_a_wrong_password_leaves_the_older_hash_alone(auth, store) -> None:
    stored = scrypt_hash(PASSWORD)
    login = _user(store, stored)
    assert auth("POST", "/tokens", json={"login": login, "password": "not the password"}).status_code == 401
    assert _stored(store, login) == stored


def test_a_hash_made_at_weaker_argon2_settings_is_replaced(auth, store, settings: Settings) -> None:
    login = _user(store, hash_password(PASSWORD, Cost(memory_kib=256, time_cost=1)))
    assert auth("POST", "/tokens", json={"login": login, "password": PASSWORD}).status_code == 200
    assert _stored(store, login).startswith(_configured(settings))


def test_of_two_logins_at_once_the_second_keeps_the_first_ones_new_hash(store, settings: Settings) -> None:
    login = _user(store, scrypt_hash(PASSWORD))
    cost = Cost(settings.password_hash_memory, settings.password_hash_time)
    with store.connection():
        # Both read the scrypt hash before either replaced it.
        first, second = store.user(login), store.user(login)
        assert first is not None and second is not None
        logic._rehash(store, first, PASSWORD, cost)
        after_first = _stored(store, login)
        logic._rehash(store, second, PASSWORD, cost)
        assert _stored(store, login) == after_first
    assert after_first.startswith(_configured(settings))
