"""Consumer side for the services that call services: the real Auth app registering a
user against WireMock standing in for Profiles and Billing, and the real Notifications
app asking a Profiles stand-in for the customer's email.

Each test asserts what the app answers its own caller (the failed service named in the
error code) and, from WireMock's journal, exactly which requests went out and in which
order, each one its provider's document and trust check accept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from contracts import examples, openapi
from contracts.examples import wire
from services.auth.app import create_app as create_auth
from services.common.config import Settings
from services.common.trust import ServiceTokens
from services.notifications.app import create_app as create_notifications
from tests.contract.consumers import (
    ATTEMPTS,
    Misbehaviour,
    misbehave,
    misbehaviours,
    sent,
    service_client,
)
from tests.contract.stubs import WireMock, documented, java, request_problems, stub

REQUEST_ID = "contract-run-0002"


def errors_of(service: str, name: str) -> list[int]:
    op = next(op for op in openapi.SERVICES[service] if op.name == name)
    return [status for status in op.documented() if status >= 400]


def attempts_for(status: int) -> int:
    """A status the client was not told to expect: retried only when it is 502-504."""
    return ATTEMPTS if status in (502, 503, 504) else 1


def failure_for(status: int) -> tuple[str, int]:
    """(reason, status answered to the caller) for a status only the plumbing answers:
    a 503 is the service unavailable, another 5xx its failure, the rest a bad answer."""
    if status == 503:
        return "unavailable", 503
    return ("server_error" if status >= 500 else "bad_response"), 502


# Auth: register = create the user, PUT the profile, PUT the wallet.


@pytest.fixture
def register(settings: Settings) -> Any:
    client = service_client(create_auth(settings), settings, "auth", "gateway")

    def send() -> Any:
        return client.simulate_post("/users", json=wire(examples.REGISTRATION), headers={"X-Request-ID": REQUEST_ID})

    return send


def registration_calls(wiremock: WireMock, settings: Settings) -> list[tuple[str, str]]:
    received = sent(wiremock, settings, "auth")
    assert all(r.headers.get("X-Request-ID") == REQUEST_ID for r in received)
    user_ids = {r.path.rsplit("/", 1)[1] for r in received}
    assert len(user_ids) <= 1, "profile and wallet are for the same user"
    return [(r.service, r.method) for r in received]


PROFILE = ("profiles", "PUT")
WALLET = ("billing", "PUT")


def test_registration_creates_the_profile_then_the_wallet(
    wiremock: WireMock, settings: Settings, register: Any
) -> None:
    stub(wiremock, "profiles", "put_profile", documented("profiles", "put_profile", 201))
    stub(wiremock, "billing", "open_wallet", documented("billing", "open_wallet", 201, "new"))
    result = register()
    assert result.status_code == 201, result.text
    assert result.json["login"] == examples.REGISTRATION.login and "password" not in result.json
    assert registration_calls(wiremock, settings) == [PROFILE, WALLET]
    profile, wallet = sent(wiremock, settings, "auth")
    assert profile.path == f"/profiles/{result.json['id']}" and wallet.path == f"/wallets/{result.json['id']}"
    assert profile.json() == wire(examples.PROFILE_DATA)
    assert wallet.json() == {"currency": "RUB"}


@pytest.mark.parametrize("status", errors_of("profiles", "put_profile"))
def test_registration_when_profiles_answers_a_documented_error(
    wiremock: WireMock, settings: Settings, register: Any, status: int
) -> None:
    stub(wiremock, "profiles", "put_profile", documented("profiles", "put_profile", status))
    stub(wiremock, "billing", "open_wallet", documented("billing", "open_wallet", 201, "new"))
    result = register()
    reason, answered = failure_for(status)
    assert result.status_code == answered, result.text
    assert result.headers.get("Retry-After") == ("1" if answered == 503 else None)
    assert result.json["code"] == f"profiles_{reason}" and result.json["service"] == "profiles"
    assert registration_calls(wiremock, settings) == [PROFILE] * attempts_for(status)


@pytest.mark.parametrize("status", errors_of("billing", "open_wallet"))
def test_registration_when_billing_answers_a_documented_error(
    wiremock: WireMock, settings: Settings, register: Any, status: int
) -> None:
    stub(wiremock, "profiles", "put_profile", documented("profiles", "put_profile", 201))
    stub(wiremock, "billing", "open_wallet", documented("billing", "open_wallet", status))
    result = register()
    reason, answered = failure_for(status)
    assert result.status_code == answered, result.text
    assert result.headers.get("Retry-After") == ("1" if answered == 503 else None)
    assert result.json["code"] == f"billing_{reason}" and result.json["service"] == "billing"
    assert registration_calls(wiremock, settings) == [PROFILE] + [WALLET] * attempts_for(status)


@pytest.mark.parametrize("how", misbehaviours(201), ids=lambda how: how.name)
def test_registration_when_profiles_misbehaves(
    wiremock: WireMock, settings: Settings, register: Any, how: Misbehaviour
) -> None:
    misbehave(wiremock, "profiles", "put_profile", how)
    stub(wiremock, "billing", "open_wallet", documented("billing", "open_wallet", 201, "new"))
    result = register()
    assert result.status_code == how.status, result.text
    assert result.json["code"] == f"profiles_{how.reason}"
    assert registration_calls(wiremock, settings) == [PROFILE] * how.attempts


@pytest.mark.parametrize("how", misbehaviours(201), ids=lambda how: how.name)
def test_registration_when_billing_misbehaves(
    wiremock: WireMock, settings: Settings, register: Any, how: Misbehaviour
) -> None:
    stub(wiremock, "profiles", "put_profile", documented("profiles", "put_profile", 201))
    misbehave(wiremock, "billing", "open_wallet", how)
    result = register()
    assert result.status_code == how.status, result.text
    assert result.json["code"] == f"billing_{how.reason}"
    assert registration_calls(wiremock, settings) == [PROFILE] + [WALLET] * how.attempts


def test_a_broken_registration_sent_again_finishes_with_the_same_user(
    wiremock: WireMock, settings: Settings, register: Any
) -> None:
    stub(wiremock, "profiles", "put_profile", documented("profiles", "put_profile", 201))
    misbehave(wiremock, "billing", "open_wallet", misbehaviours(201)[0])
    assert register().status_code == 502
    wiremock.reset()
    stub(wiremock, "profiles", "put_profile", documented("profiles", "put_profile", 200))
    stub(wiremock, "billing", "open_wallet", documented("billing", "open_wallet", 201, "new"))
    finished = register()
    assert finished.status_code == 201, finished.text
    assert registration_calls(wiremock, settings) == [PROFILE, WALLET]
    assert sent(wiremock, settings, "auth")[0].path == f"/profiles/{finished.json['id']}"


# Notifications: send a letter = look up the customer's email, compose, store.


@pytest.fixture
def send_letter(settings: Settings) -> Any:
    client = service_client(create_notifications(settings), settings, "notifications", "gateway")

    def send(request: Any = examples.PAID_LETTER_REQUEST) -> Any:
        return client.simulate_post("/letters", json=wire(request), headers={"X-Request-ID": REQUEST_ID})

    return send


LOOKUP = ("profiles", "GET", f"/profiles/{examples.USER_ID}")


def lookups(wiremock: WireMock, settings: Settings) -> list[tuple[str, str, str]]:
    received = sent(wiremock, settings, "notifications")
    assert all(r.headers.get("X-Request-ID") == REQUEST_ID for r in received)
    return [r.call for r in received]


@pytest.mark.parametrize(
    ("request_body", "kind"),
    [(examples.PAID_LETTER_REQUEST, "happy"), (examples.CANCELLED_LETTER_REQUEST, "sad")],
    ids=["paid", "cancelled"],
)
def test_a_letter_goes_to_the_email_profiles_gives(
    wiremock: WireMock, settings: Settings, send_letter: Any, request_body: Any, kind: str
) -> None:
    stub(wiremock, "profiles", "get_profile", documented("profiles", "get_profile", 200))
    result = send_letter(request_body)
    assert result.status_code == 201, result.text
    assert result.json["kind"] == kind and result.json["recipient"] == examples.PROFILE.email
    assert f"Hello {examples.PROFILE.first_name}" in result.json["body"]
    assert lookups(wiremock, settings) == [LOOKUP]
    again = send_letter(request_body)
    assert again.status_code == 200 and again.json["id"] == result.json["id"]
    assert lookups(wiremock, settings) == [LOOKUP], "a letter already sent needs no second lookup"


def test_no_profile_is_the_documented_404(wiremock: WireMock, settings: Settings, send_letter: Any) -> None:
    stub(wiremock, "profiles", "get_profile", documented("profiles", "get_profile", 404))
    result = send_letter()
    assert result.status_code == 404 and result.json["code"] == "profile_not_found"
    assert lookups(wiremock, settings) == [LOOKUP]


@pytest.mark.parametrize("status", [s for s in errors_of("profiles", "get_profile") if s != 404])
def test_a_profiles_error_only_its_plumbing_answers_is_a_failed_lookup(
    wiremock: WireMock, settings: Settings, send_letter: Any, status: int
) -> None:
    stub(wiremock, "profiles", "get_profile", documented("profiles", "get_profile", status))
    result = send_letter()
    reason, answered = failure_for(status)
    assert result.status_code == answered, result.text
    assert result.headers.get("Retry-After") == ("1" if answered == 503 else None)
    assert result.json["code"] == f"profiles_{reason}"
    assert lookups(wiremock, settings) == [LOOKUP] * attempts_for(status)


@pytest.mark.parametrize("how", misbehaviours(200), ids=lambda how: how.name)
def test_a_letter_when_profiles_misbehaves(
    wiremock: WireMock, settings: Settings, send_letter: Any, how: Misbehaviour
) -> None:
    misbehave(wiremock, "profiles", "get_profile", how)
    result = send_letter()
    assert result.status_code == how.status, result.text
    assert result.json["code"] == f"profiles_{how.reason}" and result.json["service"] == "profiles"
    assert lookups(wiremock, settings) == [LOOKUP] * how.attempts


def test_a_request_its_provider_would_refuse_is_caught(wiremock: WireMock, settings: Settings) -> None:
    """The journal check is not vacuous: a renamed field, a wrong caller and a path
    parameter that is not a UUID are each reported."""
    stub(wiremock, "billing", "pay", documented("billing", "pay", 201))
    stub(wiremock, "profiles", "get_profile", documented("profiles", "get_profile", 200))
    session = requests.Session()
    session.trust_env = False
    body = {**wire(examples.PAYMENT_REQUEST), "sum": 5000}
    del body["amount"]
    gateway_token = ServiceTokens(settings.secret(), "gateway").header("billing")
    session.post(wiremock.base("billing") + "/payments", json=body, headers={"Authorization": gateway_token})
    auth_token = ServiceTokens(settings.secret(), "auth").header("profiles")
    session.get(wiremock.base("profiles") + "/profiles/anna", headers={"Authorization": auth_token})
    received = wiremock.received()
    problems = request_problems(received[:1], settings.secret(), "gateway")
    assert any("'amount' is a required property" in p for p in problems)
    assert any("Additional properties are not allowed ('sum'" in p for p in problems)
    problems = request_problems(received[1:], settings.secret(), "auth")
    assert any("auth may not call it" in p for p in problems)
    assert any("user_id" in p and "uuid" in p for p in problems)


def test_without_java_the_suite_says_to_install_java_17(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match="install Java 17"):
        java()
