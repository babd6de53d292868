"""Readiness: ``/ready`` is 200 while every check of this process answers ``ok`` and the
server is not draining; 503 otherwise, with the reason in ``status``."""

from __future__ import annotations

import falcon
import falcon.testing

from services.common.readiness import DRAINING, add_readiness


def _ready(checks: dict[str, str], draining: bool | None = None) -> falcon.testing.Result:
    app = falcon.App()
    add_readiness(app, "orders", {name: (lambda value=value: value) for name, value in checks.items()})
    extras = {} if draining is None else {DRAINING: draining}
    return falcon.testing.TestClient(app).simulate_get("/ready", extras=extras)


def test_ready_while_every_check_answers_ok() -> None:
    result = _ready({"database": "ok"}, draining=False)
    assert result.status_code == 200
    assert result.json == {"status": "ready", "service": "orders", "checks": {"database": "ok"}}


def test_a_failing_check_makes_it_not_ready_and_is_named() -> None:
    result = _ready({"database": "failed: OperationalError"})
    assert result.status_code == 503
    assert result.json["status"] == "not_ready"
    assert result.json["checks"] == {"database": "failed: OperationalError"}


def test_a_draining_server_is_not_ready_whatever_its_checks_say() -> None:
    result = _ready({"database": "ok"}, draining=True)
    assert result.status_code == 503
    assert result.json == {"status": "draining", "service": "orders", "checks": {"database": "ok"}}


def test_a_process_without_checks_is_ready_until_it_drains() -> None:
    assert _ready({}).status_code == 200
    assert _ready({}, draining=True).json["status"] == "draining"
