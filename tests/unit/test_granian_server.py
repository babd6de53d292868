"""What granian's worker calls for each request (``Glue``): bodies read whole before
the app runs and bounded, the drain shown to the app and the client, requests counted.
A recording protocol object stands in for granian's."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from services.common.config import Settings
from services.common.granian_server import Glue
from services.common.readiness import DRAINING
from services.common.server import serve

MAX_BODY = 100


class Proto:
    """Records the answer the way granian's protocol object takes it."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.body = b""
        self.streamed = False

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def response_iter(self, status: int, headers: list[tuple[str, str]], body: Any) -> None:
        self.status, self.headers, self.streamed = status, headers, True
        self.body = b"".join(_drain(body))
        body.close()


def _drain(body: Any) -> Iterator[bytes]:
    while True:
        try:
            yield body.__next__()
        except StopIteration:
            return


class Echo:
    """A WSGI app that answers what it saw."""

    def __init__(self) -> None:
        self.calls = 0
        self.in_flight_seen = -1
        self.glue: Glue | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.calls += 1
        if self.glue is not None:
            self.in_flight_seen = self.glue.in_flight
        length = environ.get("CONTENT_LENGTH")
        body = environ["wsgi.input"].read(int(length)) if length and int(length) <= MAX_BODY else b""
        seen = {"length": length, "body": body.decode(), "draining": environ[DRAINING]}
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(seen).encode()]


class Chunks:
    """granian's ``wsgi.input``: ``read(n)`` waits for ``n`` bytes or the body's end."""

    def __init__(self, data: bytes, delay: float = 0.0) -> None:
        self.data = io.BytesIO(data)
        self.delay = delay
        self.asked: list[int | None] = []

    def read(self, size: int | None = None) -> bytes:
        self.asked.append(size)
        time.sleep(self.delay)
        return self.data.read(size)


def environ(method: str = "POST", body: bytes = b"", declared: int | None = None, **extra: Any) -> dict[str, Any]:
    env: dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": "/x", "QUERY_STRING": "", "wsgi.input": Chunks(body)}
    if declared is not None:
        env["CONTENT_LENGTH"] = str(declared)
    env.update(extra)
    return env


@pytest.fixture
def app() -> Echo:
    return Echo()


@pytest.fixture
def glue(app: Echo) -> Glue:
    made = Glue(app, MAX_BODY, body_timeout=5.0)
    app.glue = made
    return made


def answer(glue: Glue, env: dict[str, Any]) -> Proto:
    proto = Proto()
    glue(proto, env)
    return proto


def test_a_declared_body_is_read_whole_before_the_app_runs(glue: Glue, app: Echo) -> None:
    env = environ(body=b'{"a": 1}', declared=8)
    proto = answer(glue, env)
    assert proto.status == 200 and json.loads(proto.body)["body"] == '{"a": 1}'
    assert env["wsgi.input"].read() == b""  # the app read a buffer, not the socket
    assert app.in_flight_seen == 1 and glue.in_flight == 0


def test_a_chunked_body_within_the_limit_is_given_its_length(glue: Glue) -> None:
    env = environ(body=b"x" * 40, HTTP_TRANSFER_ENCODING="chunked")
    reader = env["wsgi.input"]
    proto = answer(glue, env)
    assert json.loads(proto.body) == {"length": "40", "body": "x" * 40, "draining": False}
    assert reader.asked == [MAX_BODY + 1]


def test_a_chunked_body_past_the_limit_is_413_in_the_error_shape_and_never_served(glue: Glue, app: Echo) -> None:
    proto = answer(glue, environ(body=b"x" * (MAX_BODY + 50), HTTP_TRANSFER_ENCODING="chunked"))
    assert proto.status == 413 and json.loads(proto.body)["code"] == "payload_too_large"
    assert ("Connection", "close") in proto.headers
    assert app.calls == 0


def test_a_declared_length_over_the_limit_is_left_unread_for_the_app_to_refuse(glue: Glue, app: Echo) -> None:
    env = environ(body=b"x" * 500, declared=500)
    reader = env["wsgi.input"]
    answer(glue, env)
    assert app.calls == 1 and reader.asked == [] and env["wsgi.input"] is reader


def test_a_body_shorter_than_declared_is_400_and_never_served(glue: Glue, app: Echo) -> None:
    proto = answer(glue, environ(body=b'{"a"', declared=8))
    assert proto.status == 400 and json.loads(proto.body)["code"] == "bad_request"
    assert app.calls == 0


def test_a_body_that_arrives_after_its_deadline_is_408_and_never_served(app: Echo) -> None:
    glue = Glue(app, MAX_BODY, body_timeout=0.05)
    env = environ(declared=8)
    env["wsgi.input"] = Chunks(b'{"a": 1}', delay=0.1)
    proto = answer(glue, env)
    assert proto.status == 408 and ("Connection", "close") in proto.headers
    error = json.loads(proto.body)
    assert error["code"] == "request_timeout" and "body" in error["description"]
    assert app.calls == 0 and glue.in_flight == 0


def test_a_request_without_a_body_reads_nothing(glue: Glue) -> None:
    env = environ(method="GET")
    reader = env["wsgi.input"]
    assert answer(glue, env).status == 200 and reader.asked == []


def test_while_draining_the_app_is_told_and_every_answer_closes_its_connection(glue: Glue) -> None:
    assert ("Connection", "close") not in answer(glue, environ(method="GET")).headers
    glue.draining = True
    proto = answer(glue, environ(method="GET"))
    assert json.loads(proto.body)["draining"] is True
    assert ("Connection", "close") in proto.headers


def test_an_iterable_body_is_streamed_and_closed() -> None:
    closed = []

    class Streamed:
        def __iter__(self) -> Iterator[bytes]:
            yield b"one,"
            yield b"two"

        def close(self) -> None:
            closed.append(True)

    def app(environ: dict[str, Any], start_response: Any) -> Streamed:
        start_response("200 OK", [])
        return Streamed()

    proto = Proto()
    Glue(app, MAX_BODY, 5.0)(proto, environ(method="GET"))
    assert proto.streamed and proto.body == b"one,two" and closed == [True]


def test_an_unknown_server_stops_the_service_with_a_message() -> None:
    with pytest.raises(SystemExit, match="SYNCORDERS_SERVER='gunicorn' is none of waitress, granian"):
        serve(lambda environ, start: [], "profiles", Settings(server="gunicorn"))
