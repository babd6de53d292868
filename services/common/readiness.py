"""Readiness: ``/ready`` says whether this process can do useful work now: its own
database answers and it is not draining. ``/health`` (alive) is separate.

The services behind this one are not asked: with Profiles down the gateway still takes
orders (their letters go pending), so taking it out of its load balancer as well would
turn one service's outage into the whole system's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import falcon

Check = Callable[[], str]

# Set in each request's WSGI environment by the server (services.common.server): true
# once the process has been asked to stop.
DRAINING = "syncorders.draining"


class Readiness:
    """Ready: every check answers ``ok`` and the server is not draining."""

    def __init__(self, service: str, checks: Mapping[str, Check]) -> None:
        self.service = service
        self.checks = checks

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        results = {name: check() for name, check in self.checks.items()}
        if req.env.get(DRAINING):
            status = "draining"
        elif all(value == "ok" for value in results.values()):
            status = "ready"
        else:
            status = "not_ready"
        resp.status = falcon.HTTP_200 if status == "ready" else falcon.HTTP_503
        resp.media = {"status": status, "service": self.service, "checks": results}


def add_readiness(app: falcon.App, service: str, checks: Mapping[str, Check]) -> None:
    app.add_route("/ready", Readiness(service, checks))
