"""Password hashes: Argon2id at the configured cost, older scrypt hashes still accepted
and marked for replacement, a bounded number of hashes at once."""

from __future__ import annotations

import threading
import time

import pytest

from services.auth import passwords
from services.auth.passwords import Cost, dummy_hash, hash_password, needs_rehash, verify_password
from services.common.config import Settings
from tests.fakes import scrypt_hash

CHEAP = Cost(memory_kib=1024, time_cost=1)


def test_a_hash_is_salted_argon2id_at_the_configured_cost_and_verifies() -> None:
    first, second = hash_password("secret words", CHEAP), hash_password("secret words", CHEAP)
    assert first.startswith("$argon2id$v=19$m=1024,t=1,p=1$") and first != second
    assert verify_password("secret words", first) and not verify_password("secret wordz", first)
    assert not needs_rehash(first, CHEAP)


def test_the_default_cost_is_owasps_recommended_minimum() -> None:
    assert Cost() == Cost(memory_kib=19 * 1024, time_cost=2)
    settings = Settings()
    assert Cost(settings.password_hash_memory, settings.password_hash_time) == Cost()
    assert hash_password("secret words", Cost()).startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_an_older_scrypt_hash_still_verifies_and_is_to_be_replaced() -> None:
    stored = scrypt_hash("secret words")
    assert verify_password("secret words", stored)
    assert not verify_password("secret wordz", stored)
    assert needs_rehash(stored, CHEAP)


@pytest.mark.parametrize(
    "stored_cost", [Cost(memory_kib=512, time_cost=1), Cost(memory_kib=1024, time_cost=2), Cost(2048, 1)]
)
def test_an_argon2_hash_made_at_other_settings_is_to_be_replaced(stored_cost: Cost) -> None:
    stored = hash_password("secret words", stored_cost)
    assert verify_password("secret words", stored)
    assert needs_rehash(stored, CHEAP)


def test_garbage_never_verifies_and_is_to_be_replaced() -> None:
    for stored in ("garbage", "", "$argon2id$v=19$m=1024,t=1,p=1$bad", "scrypt$x$8$1$a$b"):
        assert not verify_password("secret words", stored)
        assert needs_rehash(stored, CHEAP)


def test_the_unknown_login_check_is_a_hash_at_the_configured_cost() -> None:
    """So checking it costs what checking a real user's hash costs."""
    cost = Cost(memory_kib=2048, time_cost=2)
    assert dummy_hash(cost).startswith("$argon2id$v=19$m=2048,t=2,p=1$")
    assert not needs_rehash(dummy_hash(cost), cost)


def test_a_cost_below_argon2s_minimum_stops_the_start_with_a_clear_message() -> None:
    with pytest.raises(SystemExit, match="SYNCORDERS_PASSWORD_HASH_MEMORY"):
        Cost(memory_kib=4, time_cost=1).check()
    with pytest.raises(SystemExit, match="SYNCORDERS_PASSWORD_HASH_TIME"):
        Cost(memory_kib=1024, time_cost=0).check()
    assert CHEAP.check() == CHEAP


def test_no_more_than_a_few_hashes_run_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    running, peak, lock = 0, 0, threading.Lock()

    class Counting:
        def hash(self, password: str) -> str:
            nonlocal running, peak
            with lock:
                running += 1
                peak = max(peak, running)
            time.sleep(0.02)
            with lock:
                running -= 1
            return "$argon2id$counted"

    monkeypatch.setattr(passwords, "_hasher", lambda cost: Counting())
    threads = [threading.Thread(target=hash_password, args=("pw", CHEAP)) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak == passwords.MAX_PARALLEL_HASHES
