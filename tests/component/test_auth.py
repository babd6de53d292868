"""Auth through its HTTP interface, with fake Profiles and Billing: the registration
chain, its repair after a failure, logging in, the throttle, the published keys."""

from __future__ import annotations

import uuid

import jwt
import pytest

from services.auth.app import create_app
from tests.fakes import FakeBilling, FakeProfiles


@pytest.fixture
def fakes() -> tuple[FakeProfiles, FakeBilling]:
    return FakeProfiles(), FakeBilling()


@pytest.fixture
def auth(make_caller, fakes):
    profiles, billing = fakes
    return make_caller(create_app, "auth", profiles=profiles, billing=billing)


def registration(login: str | None = None, **fields: str) -> dict:
    login = login or f"user-{uuid.uuid4().hex[:8]}"
    body = {"login": login, "password": "correct horse", "email": f"{login}@example.com"}
    return body | {"first_name": "Anna", "last_name": "K"} | fields


def test_registration_creates_the_user_its_profile_and_its_wallet(auth, fakes) -> None:
    profiles, billing = fakes
    body = registration()

    made = auth("POST", "/users", json=body)

    assert made.status_code == 201 and "password" not in made.text and "hash" not in made.text
    user = made.json["id"]
    assert profiles.profiles[user].email == body["email"]
    assert billing.wallets[user].currency == "RUB" and billing.wallets[user].balance == 0


def test_a_finished_registration_cannot_be_taken_over(auth, fakes) -> None:
    body = registration()
    assert auth("POST", "/users", json=body).status_code == 201
    for attempt in (body, body | {"password": "another one"}):
        taken = auth("POST", "/users", json=attempt)
        assert taken.status_code == 409 and taken.json["code"] == "login_taken"


@pytest.mark.parametrize(("broken", "operation"), [(0, "put_profile"), (1, "open_wallet")])
def test_a_registration_broken_halfway_is_finished_by_sending_it_again(auth, fakes, broken, operation) -> None:
    fakes[broken].fail(operation, "unavailable")
    body = registration()

    failed = auth("POST", "/users", json=body)

    service = ("profiles", "billing")[broken]
    assert failed.status_code == 503 and failed.json["code"] == f"{service}_unavailable"
    login = auth.calling_as("gateway")("POST", "/tokens", json={"login": body["login"], "password": body["password"]})
    assert login.status_code == 409 and login.json["code"] == "registration_incomplete"

    again = auth("POST", "/users", json=body)

    assert again.status_code == 201
    user = again.json["id"]
    assert user in fakes[0].profiles and user in fakes[1].wallets


def test_login_signs_a_token_the_published_keys_verify(auth) -> None:
    body = registration()
    user = auth("POST", "/users", json=body).json["id"]

    token = auth("POST", "/tokens", json={"login": body["login"], "password": body["password"]})
    keys = auth("GET", "/.well-known/jwks.json")

    assert token.status_code == 200 and token.headers["Cache-Control"] == "no-store"
    [published] = keys.json["keys"]
    header = jwt.get_unverified_header(token.json["access_token"])
    assert header["kid"] == published["kid"]
    key = jwt.PyJWK(published).key
    claims = jwt.decode(token.json["access_token"], key, algorithms=["EdDSA"], audience="syncorders")
    assert claims["sub"] == user


def test_wrong_passwords_are_throttled_per_login(auth, settings) -> None:
    body = registration()
    auth("POST", "/users", json=body)
    wrong = {"login": body["login"], "password": "not the password"}

    answers = [auth("POST", "/tokens", json=wrong).status_code for _ in range(settings.login_max_failures + 1)]

    assert answers == [401] * settings.login_max_failures + [429]
    refused = auth("POST", "/tokens", json={"login": body["login"], "password": body["password"]})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
