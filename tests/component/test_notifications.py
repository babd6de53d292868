"""Notifications through its HTTP interface, with a fake Profiles and a recording mailer:
one letter per order and status, the happy and the sad letter, delivery retried."""

from __future__ import annotations

import uuid

import pytest

from contracts import profiles
from services.notifications.app import create_app
from services.notifications.store import LetterStore
from tests.component.conftest import settings_file
from tests.fakes import FakeProfiles


class Outbox:
    """A mailer that keeps what it was asked to send; ``refuse`` plays a down SMTP."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.refuse = False

    def send(self, recipient: str, subject: str, body: str) -> bool:
        if self.refuse:
            return False
        self.sent.append((recipient, subject, body))
        return True


@pytest.fixture
def profiles_fake() -> FakeProfiles:
    return FakeProfiles()


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()


@pytest.fixture
def notifications(make_caller, profiles_fake, outbox):
    return make_caller(create_app, "notifications", profiles=profiles_fake, mailer=outbox)


def customer(profiles_fake: FakeProfiles, first_name: str = "Anna") -> str:
    user = str(uuid.uuid4())
    data = profiles.ProfileData(email=f"{first_name.lower()}@example.com", first_name=first_name, last_name="K")
    assert profiles_fake.put_profile(user, data).status == 201
    return user


def letter_request(user: str, status: str = "paid", reason: str | None = None) -> dict:
    body = {"order_id": str(uuid.uuid4()), "user_id": user, "status": status, "total": 250_050, "currency": "RUB"}
    return body | ({"reason": reason} if reason else {})


def test_a_paid_order_gets_the_happy_letter_once(notifications, profiles_fake, outbox) -> None:
    user = customer(profiles_fake)
    request = letter_request(user)

    first = notifications("POST", "/letters", json=request)
    again = notifications("POST", "/letters", json=request)

    assert first.status_code == 201 and again.status_code == 200
    assert again.json["id"] == first.json["id"]
    letter = first.json
    assert (letter["kind"], letter["recipient"], letter["delivery"]) == ("happy", "anna@example.com", "sent")
    assert "2500.50 RUB" in letter["body"] and letter["body"].startswith("Hello Anna")
    assert [recipient for recipient, _subject, _body in outbox.sent] == ["anna@example.com"]


def test_a_cancelled_order_gets_the_sad_letter_with_its_reason(notifications, profiles_fake, outbox) -> None:
    user = customer(profiles_fake)

    sad = notifications("POST", "/letters", json=letter_request(user, "cancelled", "Insufficient funds"))

    assert sad.status_code == 201 and sad.json["kind"] == "sad"
    assert "Insufficient funds" in sad.json["body"] and "No money was taken" in sad.json["body"]


def test_a_letter_smtp_refused_is_kept_and_delivered_on_the_next_request(notifications, profiles_fake, outbox) -> None:
    user = customer(profiles_fake)
    request = letter_request(user)
    outbox.refuse = True

    kept = notifications("POST", "/letters", json=request)
    outbox.refuse = False
    delivered = notifications("POST", "/letters", json=request)

    assert kept.status_code == 201 and kept.json["delivery"] == "failed"
    assert delivered.status_code == 200 and delivered.json["delivery"] == "sent"
    assert delivered.json["id"] == kept.json["id"] and len(outbox.sent) == 1


def test_a_customer_profiles_does_not_know_gets_no_letter(notifications) -> None:
    refused = notifications("POST", "/letters", json=letter_request(str(uuid.uuid4())))

    assert refused.status_code == 404 and refused.json["code"] == "profile_not_found"


@pytest.mark.parametrize(("reason", "status"), [("unavailable", 503), ("timeout", 504), ("server_error", 502)])
def test_profiles_failing_is_answered_as_its_reason_and_no_letter_is_made(
    notifications, profiles_fake, reason: str, status: int
) -> None:
    user = customer(profiles_fake)
    request = letter_request(user)
    profiles_fake.fail("get_profile", reason)

    failed = notifications("POST", "/letters", json=request)

    assert failed.status_code == status and failed.json["code"] == f"profiles_{reason}"
    listed = notifications("GET", "/letters", params={"user_id": user})
    assert listed.status_code == 200 and listed.json["items"] == []
    assert notifications("POST", "/letters", json=request).status_code == 201


def test_letters_are_listed_newest_first_and_read_one_by_one(notifications, profiles_fake) -> None:
    user = customer(profiles_fake)
    made = [notifications("POST", "/letters", json=letter_request(user)).json["id"] for _ in range(3)]

    listed = notifications("GET", "/letters", params={"user_id": user, "limit": 2})

    assert [letter["id"] for letter in listed.json["items"]] == made[::-1][:2]
    one = notifications("GET", f"/letters/{made[0]}")
    assert one.status_code == 200 and one.json["id"] == made[0]


def test_the_app_keeps_letters_in_the_store_it_is_given(
    make_caller, open_store, settings, profiles_fake, outbox
) -> None:
    store = open_store(LetterStore)
    notifications = make_caller(create_app, "notifications", store=store, profiles=profiles_fake, mailer=outbox)
    request = letter_request(customer(profiles_fake))
    sent = notifications("POST", "/letters", json=request)
    assert sent.status_code == 201
    with store.connection():
        row = store.for_order(request["order_id"], "paid")
    assert row is not None and (row.id, row.kind, row.delivery) == (sent.json["id"], "happy", "sent")
    assert not settings_file(settings, "notifications").exists()
