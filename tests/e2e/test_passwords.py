"""Password hashes on a real Auth at the shipped cost (Argon2id, OWASP's minimum): a user
whose stored hash is an older scrypt one logs in and gets a fresh Argon2id hash, and a
burst of parallel logins keeps Auth inside its Kubernetes memory limit."""

from __future__ import annotations

import concurrent.futures
import contextlib
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.tools.supervisor import Stack
from services.auth.passwords import MAX_PARALLEL_HASHES, Cost, verify_password
from tests.fakes import scrypt_hash
from tests.harness import Gateway

PASSWORD = "correct horse battery"
SHIPPED = Cost()
CONFIGURED_PREFIX = f"$argon2id$v=19$m={SHIPPED.memory_kib},t={SHIPPED.time_cost},p=1$"
MANIFEST = Path(__file__).parents[2] / "deploy" / "k8s" / "base" / "auth.yaml"


@pytest.fixture(scope="module")
def stack_options() -> dict[str, Any]:
    # The shipped cost and Auth's thread count in the Kubernetes base; SQLite, so the
    # test can plant an old hash in Auth's file.
    return {
        "services": ("profiles", "billing", "auth", "gateway"),
        "databases": {},
        "password_hash_memory": SHIPPED.memory_kib,
        "password_hash_time": SHIPPED.time_cost,
        "service_threads": {"auth": 32},
    }


def _auth_db(stack: Stack) -> contextlib.closing[sqlite3.Connection]:
    return contextlib.closing(sqlite3.connect(stack.settings.database("auth").split(":///", 1)[1]))


def _stored_hash(stack: Stack, login: str) -> str:
    with _auth_db(stack) as conn:
        return conn.execute('SELECT password_hash FROM "user" WHERE login = ?', (login,)).fetchone()[0]


def _plant_hash(stack: Stack, login: str, stored: str) -> None:
    with _auth_db(stack) as conn, conn:
        conn.execute('UPDATE "user" SET password_hash = ? WHERE login = ?', (stored, login))


def _login(login: str, password: str, gateway_url: str) -> int:
    body = {"login": login, "password": password}
    return Gateway(gateway_url).request("POST", "/auth/login", json=body).status_code


def _registered(gateway: Gateway) -> str:
    login = f"user-{uuid.uuid4().hex[:10]}"
    assert gateway.register(login, password=PASSWORD).status_code == 201
    return login


def test_registration_stores_an_argon2id_hash_at_the_shipped_cost(stack: Stack, gateway: Gateway) -> None:
    login = _registered(gateway)
    assert _stored_hash(stack, login).startswith(CONFIGURED_PREFIX)


def test_a_user_with_an_older_scrypt_hash_logs_in_and_gets_argon2id(stack: Stack, gateway: Gateway) -> None:
    login = _registered(gateway)
    old = scrypt_hash(PASSWORD, 14)
    _plant_hash(stack, login, old)
    assert _login(login, "not the password", gateway.base) == 401
    assert _stored_hash(stack, login) == old
    # Two logins at once: both succeed, and one fresh hash stays.
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        assert list(pool.map(_login, [login] * 2, [PASSWORD] * 2, [gateway.base] * 2)) == [200, 200]
    fresh = _stored_hash(stack, login)
    assert fresh.startswith(CONFIGURED_PREFIX) and verify_password(PASSWORD, fresh)
    assert _login(login, PASSWORD, gateway.base) == 200
    assert _stored_hash(stack, login) == fresh


def _memory_limit_mib() -> float:
    (deployment,) = (doc for doc in yaml.safe_load_all(MANIFEST.read_text()) if doc and doc["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    limit = container["resources"]["limits"]["memory"]
    assert limit.endswith("Mi"), limit
    return float(limit[:-2])


def _status_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


def test_twenty_parallel_logins_keep_auth_well_inside_its_memory_limit(stack: Stack, gateway: Gateway) -> None:
    logins = [_registered(gateway) for _ in range(20)]
    pid = stack.processes["auth"].popen.pid
    idle = _status_mib(pid, "VmRSS")
    with concurrent.futures.ThreadPoolExecutor(len(logins)) as pool:
        codes = list(pool.map(_login, logins, [PASSWORD] * len(logins), [gateway.base] * len(logins)))
    assert codes == [200] * len(logins)
    # The highest resident memory Auth ever had, registrations and logins included.
    peak = _status_mib(pid, "VmHWM")
    hash_mib = SHIPPED.memory_kib / 1024
    assert peak >= idle + 2 * hash_mib, "the logins did not hash in parallel"
    assert peak <= idle + MAX_PARALLEL_HASHES * hash_mib + 16, (idle, peak)
    assert peak <= _memory_limit_mib() - 16, (idle, peak)
