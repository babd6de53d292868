"""WireMock standing in for the services, with stubs taken from the OpenAPI documents.

One JVM (the standalone jar the ``wiremock`` package ships) serves every service under
its own prefix: the Orders stand-in is ``<wiremock>/orders``, so the request journal
says which service each call went to. A stub's body is an example from the provider's
generated document, never a second hand-written copy; faults, delays and wrong bodies
are the only things a test writes itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import attrs
import jwt
import pytest
import requests
from wiremock.server.server import WireMockServer

from contracts import openapi
from services.common.trust import audience
from tests.contract.documents import Contract

JAVA_MISSING = (
    "The contract tests need Java 17 to run WireMock: install Java 17 (for example "
    "`apt-get install openjdk-17-jre-headless`) and put `java` on PATH or set JAVA_HOME."
)
START_TIMEOUT = 60.0


def java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        pytest.fail(JAVA_MISSING, pytrace=False)
    return found


@attrs.frozen
class Received:
    """One request from the journal, with the service it was meant for."""

    service: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def call(self) -> tuple[str, str, str]:
        return (self.service, self.method, self.path)

    def json(self) -> Any:
        return json.loads(self.body)


class WireMock:
    def __init__(self, popen: subprocess.Popen[bytes], port: int) -> None:
        self.popen = popen
        self.url = f"http://127.0.0.1:{port}"
        self.admin = requests.Session()
        self.admin.trust_env = False

    def stop(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.popen.kill()

    def base(self, service: str) -> str:
        """Where the stand-in for ``service`` answers."""
        return f"{self.url}/{service}"

    def reset(self) -> None:
        self.admin.post(f"{self.url}/__admin/reset", timeout=10).raise_for_status()

    def add(self, mapping: dict[str, Any]) -> None:
        self.admin.post(f"{self.url}/__admin/mappings", json=mapping, timeout=10).raise_for_status()

    def received(self, settle: float = 0.0) -> list[Received]:
        """The journal, oldest first. ``settle`` waits (bounded) until it stops growing,
        for requests whose stubs are still delaying their answer."""
        entries = self._journal()
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            time.sleep(0.1)
            again = self._journal()
            if len(again) == len(entries):
                break
            entries = again
        out = []
        # The journal lists the newest first; its timestamps tie within a millisecond.
        for entry in reversed(entries):
            request = entry["request"]
            parts = urlsplit(request["url"])
            service, _, rest = parts.path.lstrip("/").partition("/")
            body = request.get("body") or ""
            out.append(
                Received(
                    service=service,
                    method=request["method"],
                    path="/" + rest,
                    query=dict(parse_qsl(parts.query)),
                    headers={k: v if isinstance(v, str) else ", ".join(v) for k, v in request["headers"].items()},
                    body=body.encode(),
                )
            )
        return out

    def _journal(self) -> list[dict[str, Any]]:
        resp = self.admin.get(f"{self.url}/__admin/requests", timeout=10)
        resp.raise_for_status()
        return resp.json()["requests"]


def start_wiremock(root: Path) -> WireMock:
    """The jar from the ``wiremock`` package, on a free loopback port."""
    log = open(root / "wiremock.log", "wb")  # noqa: SIM115 - the child writes to it
    popen = subprocess.Popen(
        [
            java(),
            "-Xmx256m",
            "-jar",
            str(WireMockServer.DEFAULT_JAR),
            "--port",
            "0",
            "--bind-address",
            "127.0.0.1",
            "--root-dir",
            str(root),
            "--container-threads",
            "40",
        ],
        stdout=subprocess.PIPE,
        stderr=log,
    )
    log.close()
    assert popen.stdout is not None
    os.set_blocking(popen.stdout.fileno(), False)
    deadline = time.monotonic() + START_TIMEOUT
    seen = b""
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            pytest.fail(f"WireMock exited with {popen.returncode}. {JAVA_MISSING}\n{seen.decode()[-2000:]}")
        seen += popen.stdout.read() or b""
        found = re.search(rb"^port:\s+(\d+)", seen, re.MULTILINE)
        if found:
            server = WireMock(popen, int(found.group(1)))
            if _answers(server):
                return server
        time.sleep(0.1)
    popen.kill()
    pytest.fail(f"WireMock did not start within {START_TIMEOUT} s")


def _answers(server: WireMock) -> bool:
    try:
        return server.admin.get(f"{server.url}/__admin/mappings", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


# What a stub answers, apart from a documented example.
def fault(name: str) -> dict[str, Any]:
    """A dropped connection: ``CONNECTION_RESET_BY_PEER`` or ``EMPTY_RESPONSE``."""
    return {"fault": name}


def raw(status: int, body: str, content_type: str = "application/json") -> dict[str, Any]:
    return {"status": status, "body": body, "headers": {"Content-Type": content_type}}


def template_pattern(path: str) -> str:
    return "^" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(path)) + "$"


def operation(service: str, name: str) -> tuple[str, str, dict[str, Any]]:
    """(METHOD, path template, document operation) of a named operation."""
    for method, path, op in Contract(service).operations():
        if op["operationId"] == name:
            return method, path, op
    raise KeyError(f"{service} has no operation {name}")


def documented(service: str, name: str, status: int, example: str | None = None) -> dict[str, Any]:
    """A WireMock response: the status and an example body from the provider's document."""
    _method, _path, op = operation(service, name)
    answer = op["responses"][str(status)]
    response: dict[str, Any] = {"status": status}
    content = answer.get("content")
    if content is not None:
        named = content[openapi.JSON]["examples"]
        value = named[example or next(iter(named))]["value"]
        response["jsonBody"] = value
        response["headers"] = {"Content-Type": "application/json"}
    return response


def stub(
    wiremock: WireMock,
    service: str,
    name: str,
    response: dict[str, Any],
    *,
    delay_ms: int | None = None,
    scenario: tuple[str, str, str | None] | None = None,
) -> None:
    """Stand in for one operation of ``service``. ``scenario`` is WireMock's
    (name, required state, next state), for answers that change between attempts."""
    method, path, _op = operation(service, name)
    answer = dict(response)
    if delay_ms is not None:
        answer["fixedDelayMilliseconds"] = delay_ms
    mapping: dict[str, Any] = {
        "request": {"method": method, "urlPathPattern": template_pattern(f"/{service}{path}")},
        "response": answer,
    }
    if scenario is not None:
        mapping["scenarioName"], mapping["requiredScenarioState"], next_state = scenario
        if next_state is not None:
            mapping["newScenarioState"] = next_state
    wiremock.add(mapping)


def request_problems(received: list[Received], secret: str, caller: str) -> list[str]:
    """What each provider's document, and its trust check, would refuse in what the
    stand-ins received."""
    problems = []
    for request in received:
        contract = Contract(request.service)
        problems += contract.request_problems(
            request.method, request.path, request.query, request.headers, request.body
        )
        found = contract.find(request.method, request.path)
        credential = request.headers.get("Authorization", "").removeprefix("Bearer ")
        try:
            claims = jwt.decode(credential, secret, algorithms=["HS256"], audience=audience(request.service))
        except jwt.PyJWTError as exc:
            problems.append(f"{request.method} {request.path}: service token refused: {exc}")
            continue
        if claims["sub"] != caller or (found and caller not in found.operation["x-callers"]):
            problems.append(f"{request.method} {request.path}: {claims['sub']} may not call it")
    return problems
