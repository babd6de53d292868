"""Password guessing, secrets at rest, and signing key rotation."""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
import time
import uuid
from typing import Any

import jwt
import pytest
import requests

from services.common.trust import ServiceTokens
from tests.e2e.conftest import log_text
from tests.e2e.security.common import MAX_FAILURES, Door, auth_rows, refused
from tests.harness import Gateway, start_stack

# ---------------------------------------------------------------- login throttling


def _login(gateway: Gateway, login: str, password: str) -> requests.Response:
    return gateway.request("POST", "/auth/login", json={"login": login, "password": password})


def test_login_flood_is_throttled_with_retry_after_and_the_right_password_waits_too(door: Door) -> None:
    target, bystander = door.gateway.customer(), door.gateway.customer()
    for _ in range(MAX_FAILURES):
        refused(_login(door.gateway, target.login, "wrong password"), 401, "invalid_credentials")
    throttled = _login(door.gateway, target.login, "wrong password")
    refused(throttled, 429, "too_many_attempts")
    assert 1 <= int(throttled.headers["Retry-After"]) <= 120
    right = _login(door.gateway, target.login, target.password)
    refused(right, 429, "too_many_attempts")
    assert "access_token" not in right.text
    # The throttle is per login: someone else logs in as usual.
    assert _login(door.gateway, bystander.login, bystander.password).status_code == 200


def test_parallel_login_flood_gets_no_more_guesses_than_the_limit(door: Door) -> None:
    target = door.gateway.customer()
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(lambda _: _login(door.gateway, target.login, "wrong password").status_code, range(24)))
    assert sorted(statuses) == [401] * MAX_FAILURES + [429] * (24 - MAX_FAILURES)
    assert _login(door.gateway, target.login, target.password).status_code == 429


# ---------------------------------------------------------------- secrets at rest stay at rest


def test_password_hashes_appear_in_no_response_and_no_log_line(door: Door) -> None:
    gateway = door.gateway
    login = f"secret-{uuid.uuid4().hex[:10]}"
    password = "very secret passphrase"
    answers = [gateway.register(login, password=password)]
    answers.append(gateway.register(login, password=password))
    answers.append(_login(gateway, login, "not the passphrase"))
    token_answer = _login(gateway, login, password)
    answers.append(token_answer)
    token = token_answer.json()["access_token"]
    answers += [gateway.request("GET", path, token) for path in ("/profile", "/wallet", "/orders", "/letters")]
    hashes = [row[0] for row in auth_rows(door.stack, 'SELECT password_hash FROM "user"')]
    assert any(value.startswith("$argon2id$") for value in hashes)
    secrets_at_rest = {piece for value in hashes for piece in [value, *value.split("$")[4:]]} | {password}
    logs = "".join(log_text(door.stack, service) for service in door.stack.processes)
    assert logs
    for secret in secrets_at_rest:
        for answer in answers:
            assert secret not in answer.text
        assert secret not in logs
    assert "$argon2id$" not in logs


# ---------------------------------------------------------------- key rotation


def _header_and_claims(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


def test_rotation_keeps_old_tokens_until_they_expire_and_signs_new_ones_with_the_new_key(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    stack = start_stack(
        tmp_path_factory.mktemp("rotation"),
        services=("profiles", "billing", "auth", "gateway"),
        token_ttl=6,
        token_leeway=1,
        jwks_refresh_interval=0.5,
    )
    try:
        gateway = Gateway(stack.urls["gateway"])
        customer = gateway.customer()
        old_token = customer.token
        old_header, old_claims = _header_and_claims(old_token)
        rotated = subprocess.run(
            [sys.executable, "-m", "orchestrator.tools.cli", "keys", "rotate"],
            env=stack.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        new_kid = rotated.stdout.split("new signing key ", 1)[1].split()[0]
        assert new_kid != old_header["kid"]

        # The new key is published at once, and the old one stays while its tokens live.
        header = ServiceTokens(stack.settings.service_secret or "", "gateway").header("auth")
        jwks = requests.get(
            stack.urls["auth"] + "/.well-known/jwks.json", headers={"Authorization": header}, timeout=10
        )
        assert {key["kid"] for key in jwks.json()["keys"]} == {old_header["kid"], new_kid}
        assert gateway.request("GET", "/wallet", old_token).status_code == 200

        # Once the new key is active, logins are signed with it and accepted.
        deadline, new_token = time.monotonic() + 15, None
        while time.monotonic() < deadline:
            answer = _login(gateway, customer.login, customer.password)
            assert answer.status_code == 200
            if _header_and_claims(answer.json()["access_token"])[0]["kid"] == new_kid:
                new_token = answer.json()["access_token"]
                break
            time.sleep(0.2)
        assert new_token is not None, "the rotated key never started signing"
        assert gateway.request("GET", "/wallet", new_token).status_code == 200

        # A token of the retired key is refused once it has expired (beyond the leeway).
        while time.time() <= old_claims["exp"] + stack.settings.token_leeway + 0.5:
            time.sleep(0.2)
        expired = gateway.request("GET", "/wallet", old_token)
        refused(expired, 401, "invalid_token")
        assert "expired" in expired.json()["description"]
        assert _login(gateway, customer.login, customer.password).status_code == 200
    finally:
        stack.stop()
