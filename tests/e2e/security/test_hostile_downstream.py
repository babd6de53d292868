"""A downstream service that answers with hostile content or a redirect: refused, never followed."""

from __future__ import annotations

import json
import uuid
from typing import Any

import attrs
import falcon.testing
import pytest

from contracts import billing
from contracts.vocabulary import BAD_RESPONSE
from services.common.clients import BillingClient, ProfilesClient, make_client
from services.common.config import Settings
from services.common.http import DownstreamError
from services.common.transports import TRANSPORTS
from services.common.trust import ServiceTokens
from services.notifications.app import create_app as notifications_app
from tests.e2e.security.common import LocalServer
from tests.harness import Inbox

# ---------------------------------------------------------------- hostile downstream answers


def _profile(user_id: str, email: str) -> bytes:
    return json.dumps(
        {
            "user_id": user_id,
            "email": email,
            "first_name": "Vic",
            "last_name": "Tim",
            "created_at": "2024-01-01T00:00:00.000000Z",
            "updated_at": "2024-01-01T00:00:00.000000Z",
        }
    ).encode()


def _letter_request(user_id: str) -> dict[str, Any]:
    return {"order_id": str(uuid.uuid4()), "user_id": user_id, "status": "paid", "total": 300, "currency": "RUB"}


def _send_letter(
    settings: Settings, smtp: tuple[int, Inbox], email: str
) -> tuple[falcon.testing.Result, falcon.testing.Result]:
    """Notifications, in process, asking a fake Profiles that answers with ``email``."""
    user_id = str(uuid.uuid4())
    profile = _profile(user_id, email)
    with LocalServer(lambda path: (200, {"Content-Type": "application/json"}, profile)) as fake_profiles:
        port, _inbox = smtp
        configured = attrs.evolve(
            settings, urls={"profiles": fake_profiles.url}, smtp_host="127.0.0.1", smtp_port=port, http_retries=0
        )
        client = falcon.testing.TestClient(notifications_app(configured))
        header = {"Authorization": ServiceTokens(configured.secret(), "gateway").header("notifications")}
        request = _letter_request(user_id)
        sent = client.simulate_post("/letters", json=request, headers=header)
        listed = client.simulate_get("/letters", params={"order_id": request["order_id"]}, headers=header)
    return sent, listed


def test_a_clean_profile_from_profiles_gets_its_letter(settings: Settings, smtp: tuple[int, Inbox]) -> None:
    """The control for the hostile profiles below."""
    address = f"clean-{uuid.uuid4().hex[:8]}@example.com"
    sent, listed = _send_letter(settings, smtp, address)
    assert sent.status_code == 201
    assert len(listed.json["items"]) == 1
    assert len(smtp[1].to(address)) == 1


@pytest.mark.parametrize(
    "email",
    [
        "victim@example.com\r\nBcc: evil@example.org",
        "victim@example.com\nBcc: evil@example.org",
        "victim@example.com\n",
    ],
    ids=["crlf_bcc", "lf_bcc", "trailing_lf"],
)
def test_an_email_with_line_breaks_from_profiles_is_refused(
    settings: Settings, smtp: tuple[int, Inbox], email: str
) -> None:
    inbox = smtp[1]
    delivered = len(inbox.messages)
    sent, listed = _send_letter(settings, smtp, email)
    assert sent.status_code == 502
    assert sent.json["code"] == "profiles_bad_response"
    assert listed.json["items"] == []
    assert len(inbox.messages) == delivered


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_from_a_downstream_is_not_followed(settings: Settings, transport: str, status: int) -> None:
    user_id = str(uuid.uuid4())
    profile = _profile(user_id, "lured@example.com")
    with (
        LocalServer(lambda path: (200, {"Content-Type": "application/json"}, profile)) as elsewhere,
        LocalServer(lambda path: (status, {"Location": f"{elsewhere.url}{path}"}, b"")) as redirecting,
    ):
        configured = attrs.evolve(
            settings, urls={"profiles": redirecting.url}, http_transport=transport, http_retries=0
        )
        client = make_client(ProfilesClient, "notifications", "profiles", configured)
        with pytest.raises(DownstreamError) as failure:
            client.get_profile(user_id)
    assert failure.value.reason == BAD_RESPONSE
    assert failure.value.status == status
    assert redirecting.hits == [f"GET /profiles/{user_id}"]
    assert elsewhere.hits == []


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
def test_a_307_from_billing_does_not_send_the_payment_elsewhere(settings: Settings, transport: str) -> None:
    with (
        LocalServer(lambda path: (201, {"Content-Type": "application/json"}, b"{}")) as elsewhere,
        LocalServer(lambda path: (307, {"Location": f"{elsewhere.url}{path}"}, b"")) as redirecting,
    ):
        configured = attrs.evolve(settings, urls={"billing": redirecting.url}, http_transport=transport, http_retries=0)
        client = make_client(BillingClient, "gateway", "billing", configured)
        payment = billing.PaymentRequest(
            order_id=str(uuid.uuid4()), user_id=str(uuid.uuid4()), amount=100, currency="RUB"
        )
        with pytest.raises(DownstreamError) as failure:
            client.pay(payment)
    assert (failure.value.reason, failure.value.status) == (BAD_RESPONSE, 307)
    assert redirecting.hits == ["POST /payments"]
    assert elsewhere.hits == []
