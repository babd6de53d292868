"""Calling the real services as their callers do, and holding every answer to the
service's document."""

from __future__ import annotations

import uuid
from typing import Any

import requests

from contracts import openapi
from orchestrator.tools.supervisor import Stack
from services.common.trust import ServiceTokens
from tests.contract.documents import Contract


def caller_of(service: str, method: str, path: str) -> str:
    """A service the contract allows on this route."""
    op = next(op for op in openapi.SERVICES[service] if (op.method, op.path) == (method, path))
    return sorted(op.callers)[0]


class Provider:
    """Sends requests to the running stack; every answer must conform to its document,
    and each (service, method, path, status) answered is remembered."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.contracts = {service: Contract(service) for service in openapi.SERVICES}
        self.http = requests.Session()
        self.http.trust_env = False
        self.answered: set[tuple[str, str, str, int]] = set()

    def service_header(self, service: str, caller: str) -> str:
        return ServiceTokens(self.stack.settings.secret(), caller).header(service)

    def call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        caller: str | None = None,
        token: str | None = None,
        anonymous: bool = False,
        **kwargs: Any,
    ) -> requests.Response:
        """``caller`` picks the service token (default: one the contract allows);
        ``token`` is a client's access token; ``anonymous`` sends no credential."""
        contract = self.contracts[service]
        found = contract.find(method, path)
        assert found is not None, f"{service} {method} {path} is not in the contract"
        headers = dict(kwargs.pop("headers", {}))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif service != "gateway" and not anonymous:
            headers["Authorization"] = self.service_header(service, caller or caller_of(service, method, found.path))
        resp = self.http.request(method, self.stack.urls[service] + path, headers=headers, timeout=30, **kwargs)
        problems = contract.response_problems(
            method, path, resp.status_code, resp.headers.get("Content-Type"), resp.content
        )
        assert problems == [], "\n".join(problems)
        assert resp.headers.get("X-Request-ID"), "every answer names its request ID"
        self.answered.add((service, method, found.path, resp.status_code))
        return resp

    def expect(self, status: int, service: str, method: str, path: str, **kwargs: Any) -> requests.Response:
        resp = self.call(service, method, path, **kwargs)
        assert resp.status_code == status, f"{service} {method} {path}: {resp.status_code} {resp.text[:300]}"
        return resp

    def unanswered(self, service: str) -> list[str]:
        """Operations of ``service`` that never answered with success."""
        ok = {(m, p) for s, m, p, status in self.answered if s == service and status < 300}
        return [f"{m} {p}" for m, p, _op in self.contracts[service].operations() if (m, p) not in ok]


def new_id() -> str:
    return str(uuid.uuid4())
