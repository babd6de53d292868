"""Registration when Profiles or Billing is down: a clear 503, a half-made user who
cannot log in yet, and the same registration sent again finishing it exactly once."""

from __future__ import annotations

import uuid

import pytest

from orchestrator.tools.supervisor import Stack
from tests.harness import Gateway
from tests.invariants import Snapshot, snapshot

PASSWORD = "correct horse battery"


def _complete(state: Snapshot) -> set[str]:
    """Users whose registration finished: each has exactly its profile and wallet."""
    return {user_id for user_id, complete in state.users.items() if complete}


@pytest.mark.parametrize("down", ["profiles", "billing"])
def test_registration_with_a_service_down_is_503_and_finishes_when_sent_again(
    gateway: Gateway, stack: Stack, down: str
) -> None:
    login = f"user-{uuid.uuid4().hex[:10]}"
    stack.kill(down)
    try:
        refused = gateway.register(login)
        assert refused.status_code == 503, refused.text
        assert refused.json()["code"] == f"{down}_unavailable"

        too_early = gateway.request("POST", "/auth/login", json={"login": login, "password": PASSWORD})
        assert too_early.status_code == 409
        assert too_early.json()["code"] == "registration_incomplete"
        assert "send the same registration again" in too_early.json()["description"]
        assert "access_token" not in too_early.text

        # Someone else cannot take over the half-made login with another password.
        hijack = gateway.register(login, password="another password entirely")
        assert hijack.status_code == 409 and hijack.json()["code"] == "login_taken"

        still_down = gateway.register(login)
        assert still_down.status_code == 503
    finally:
        stack.start_one(down)

    finished = gateway.register(login)

    assert finished.status_code == 201, finished.text
    user_id = finished.json()["id"]
    token = gateway.request("POST", "/auth/login", json={"login": login, "password": PASSWORD})
    assert token.status_code == 200
    access = token.json()["access_token"]
    assert gateway.request("GET", "/profile", access).json()["email"] == f"{login}@example.com"
    assert gateway.request("GET", "/wallet", access).json()["balance"] == 0
    state = snapshot(stack.settings)
    assert state.users[user_id] is True
    assert user_id in state.profiles and user_id in state.wallets
    assert _complete(state) == state.profiles == set(state.wallets)


def test_registration_sent_again_after_it_finished_is_refused_not_duplicated(gateway: Gateway, stack: Stack) -> None:
    login = f"user-{uuid.uuid4().hex[:10]}"
    assert gateway.register(login).status_code == 201

    again = gateway.register(login)

    assert again.status_code == 409 and again.json()["code"] == "login_taken"
    state = snapshot(stack.settings)
    assert _complete(state) == state.profiles == set(state.wallets)
