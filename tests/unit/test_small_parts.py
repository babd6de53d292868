"""Money text, password hashes, request IDs."""

from __future__ import annotations

from services.auth.passwords import hash_password, verify_password
from services.common.logs import accept_request_id
from services.notifications.logic import money


def test_money_is_formatted_from_minor_units_without_floats() -> None:
    assert money(5, "RUB") == "0.05 RUB"
    assert money(123_456_789_012, "USD") == "1234567890.12 USD"


def test_password_hash_is_salted_scrypt_and_verifies() -> None:
    first, second = hash_password("secret words", 10), hash_password("secret words", 10)
    assert first.startswith("scrypt$10$") and first != second
    assert verify_password("secret words", first) and not verify_password("secret wordz", first)
    assert not verify_password("x", "garbage")


def test_request_id_is_kept_when_safe_and_replaced_when_not() -> None:
    assert accept_request_id("abc-123") == "abc-123"
    assert accept_request_id("bad id\r\nX: y") != "bad id\r\nX: y"
    assert len(accept_request_id(None)) == 32
    assert len(accept_request_id("x" * 65)) == 32


def test_no_more_than_a_few_hashes_run_at_once(monkeypatch) -> None:
    import hashlib
    import threading
    import time

    from services.auth import passwords

    running, peak, lock = 0, 0, threading.Lock()
    real = hashlib.scrypt

    def counting_scrypt(*args, **kwargs):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return real(*args, **kwargs)

    monkeypatch.setattr(passwords.hashlib, "scrypt", counting_scrypt)
    threads = [threading.Thread(target=hash_password, args=("pw", 4)) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak == passwords.MAX_PARALLEL_HASHES
