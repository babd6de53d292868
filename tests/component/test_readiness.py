"""Each app's ``/ready`` asks about this process alone: with every service it calls
unreachable, the gateway, Auth and Notifications stay ready (the gateway still takes
orders; their letters go pending)."""

from __future__ import annotations

import socket
from collections.abc import Callable

import attrs
import falcon
import falcon.testing
import pytest

from orchestrator.app import create_app as gateway_app
from services.auth.app import create_app as auth_app
from services.common.config import INTERNAL_SERVICES, Settings
from services.notifications.app import create_app as notifications_app


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("create_app", "checks"),
    [(gateway_app, {}), (auth_app, {"database": "ok"}), (notifications_app, {"database": "ok"})],
    ids=["gateway", "auth", "notifications"],
)
def test_ready_with_every_service_it_calls_down(
    settings: Settings, create_app: Callable[[Settings], falcon.App], checks: dict[str, str]
) -> None:
    nowhere = {service: f"http://127.0.0.1:{_closed_port()}" for service in INTERNAL_SERVICES}
    app = create_app(attrs.evolve(settings, urls=nowhere, http_retries=0))

    result = falcon.testing.TestClient(app).simulate_get("/ready")

    assert result.status_code == 200, result.text
    assert result.json["status"] == "ready" and result.json["checks"] == checks
