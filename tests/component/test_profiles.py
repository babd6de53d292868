"""Profiles through its HTTP interface."""

from __future__ import annotations

import uuid

import pytest

from services.profiles.app import create_app
from services.profiles.store import ProfileStore
from tests.component.conftest import settings_file

DATA = {"email": "anna@example.com", "first_name": "Anna", "last_name": "K"}


@pytest.fixture
def profiles(make_caller):
    return make_caller(create_app, "profiles", caller="auth")


def test_put_creates_then_is_idempotent_then_replaces(profiles) -> None:
    user = str(uuid.uuid4())
    assert profiles("PUT", f"/profiles/{user}", json=DATA).status_code == 201
    assert profiles("PUT", f"/profiles/{user}", json=DATA).status_code == 200
    changed = profiles("PUT", f"/profiles/{user}", json={**DATA, "email": "anna@example.org"})
    assert changed.status_code == 200 and changed.json["email"] == "anna@example.org"


def test_email_with_a_line_break_is_refused(profiles) -> None:
    response = profiles("PUT", f"/profiles/{uuid.uuid4()}", json={**DATA, "email": "a@example.com\r\nBcc: x@y.z"})
    assert response.status_code == 422 and response.json["errors"][0]["path"] == "$.email"


def test_notifications_and_gateway_may_read_but_not_write(profiles) -> None:
    user = str(uuid.uuid4())
    profiles("PUT", f"/profiles/{user}", json=DATA)
    for caller in ("notifications", "gateway"):
        reader = profiles.calling_as(caller)
        assert reader("GET", f"/profiles/{user}").json["email"] == DATA["email"]
        assert reader("PUT", f"/profiles/{user}", json=DATA).status_code == 403


def test_the_app_keeps_profiles_in_the_store_it_is_given(make_caller, open_store, settings) -> None:
    store = open_store(ProfileStore)
    profiles = make_caller(create_app, "profiles", caller="auth", store=store)
    user = str(uuid.uuid4())
    assert profiles("PUT", f"/profiles/{user}", json=DATA).status_code == 201
    changed = profiles("PUT", f"/profiles/{user}", json={**DATA, "last_name": "Karenina"})
    assert changed.status_code == 200
    with store.connection():
        row = store.profile(user)
    assert row is not None and (row.email, row.last_name) == (DATA["email"], "Karenina")
    assert not settings_file(settings, "profiles").exists()
