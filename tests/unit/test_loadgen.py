"""The load generator's open loop: requests planned at a fixed rate, latency counted
from each one's planned start, so a service that falls behind shows its queue."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from orchestrator.tools.loadgen import run

SERVICE_TIME = 0.05


class Slow(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        time.sleep(SERVICE_TIME)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def slow() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


def test_the_open_loop_sends_the_planned_number_of_requests(slow: str) -> None:
    result = run(slow, "ping", concurrency=4, duration=0.5, users=[], rate=20)
    assert result["ok"] == 10 and not result["errors"]
    # Room to spare: every request left on time and took about the service's time.
    assert result["late"] == 0
    assert max(result["latencies_ms"]) < SERVICE_TIME * 1000 * 4


def test_an_open_loop_faster_than_the_service_counts_the_wait_in_the_latency(slow: str) -> None:
    # One connection, 40 requests a second planned, 20 a second served: each request
    # waits for the one before, and its latency says so.
    result = run(slow, "ping", concurrency=1, duration=0.5, users=[], rate=40)
    latencies = result["latencies_ms"]
    assert result["ok"] == 20 and result["late"] >= 15
    # The last one was planned at 0.475 s and could start only at about 20 x 0.05 s.
    assert latencies[-1] > 400, latencies
    assert result["latest_ms"] > 400


def test_the_closed_loop_measures_from_each_send(slow: str) -> None:
    result = run(slow, "ping", concurrency=1, duration=0.3, users=[])
    assert result["ok"] >= 3 and max(result["latencies_ms"]) < SERVICE_TIME * 1000 * 4
