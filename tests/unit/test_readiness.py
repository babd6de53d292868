"""Readiness of a caller: ``/ready`` asks the services it calls for ``/health`` through the
same typed clients the app uses, so a probe reflects whether those services answer."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import falcon
import falcon.testing
import pytest

from services.common.clients import ProfilesClient, make_client
from services.common.config import Settings
from services.common.readiness import add_readiness, downstream_check


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _health_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    if environ["PATH_INFO"] == "/health":
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"status":"ok"}']
    start_response("404 Not Found", [("Content-Type", "application/json")])
    return [b"{}"]


@pytest.fixture
def profiles_url() -> Iterator[str]:
    server: WSGIServer = make_server("127.0.0.1", 0, _health_app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _client(url: str) -> ProfilesClient:
    settings = Settings(service_secret="s" * 64, urls={"profiles": url}, http_retries=0)
    return make_client(ProfilesClient, "auth", "profiles", settings, pool_size=1)


def test_a_downstream_that_answers_its_health_route_is_ok(profiles_url: str) -> None:
    assert downstream_check(_client(profiles_url))() == "ok"


def test_a_downstream_that_is_down_is_reported_as_unavailable() -> None:
    assert downstream_check(_client(f"http://127.0.0.1:{_closed_port()}"))() == "failed: DownstreamError"


def test_ready_is_200_only_while_every_downstream_answers(profiles_url: str) -> None:
    app = falcon.App()
    add_readiness(app, "auth", {"profiles": downstream_check(_client(profiles_url))})
    result = falcon.testing.TestClient(app).simulate_get("/ready")
    assert result.status_code == 200
    assert result.json == {"status": "ready", "service": "auth", "checks": {"profiles": "ok"}}

    app = falcon.App()
    add_readiness(app, "auth", {"profiles": downstream_check(_client(f"http://127.0.0.1:{_closed_port()}"))})
    result = falcon.testing.TestClient(app).simulate_get("/ready")
    assert result.status_code == 503
    assert result.json["checks"] == {"profiles": "failed: DownstreamError"}
