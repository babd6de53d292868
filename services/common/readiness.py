"""Readiness: ``/ready`` answers 200 only when the database and the services this one
calls answer; ``/health`` (alive) is separate."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import falcon

Check = Callable[[], str]


class Readiness:
    """Ready: the database answers and so do the services this one calls."""

    def __init__(self, service: str, checks: Mapping[str, Check]) -> None:
        self.service = service
        self.checks = checks

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        results = {name: check() for name, check in self.checks.items()}
        ready = all(value == "ok" for value in results.values())
        resp.status = falcon.HTTP_200 if ready else falcon.HTTP_503
        resp.media = {"status": "ready" if ready else "not_ready", "service": self.service, "checks": results}


def add_readiness(app: falcon.App, service: str, checks: Mapping[str, Check]) -> None:
    app.add_route("/ready", Readiness(service, checks))


def downstream_check(client: Any) -> Check:
    """A caller is ready when the service it calls answers its health route."""

    def check() -> str:
        try:
            client.health()
        except Exception as exc:  # any failure means not ready; the reason is reported
            return f"failed: {type(exc).__name__}"
        return "ok"

    return check
