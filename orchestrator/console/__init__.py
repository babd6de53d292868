"""The operator console: a live page on the gateway's port that lists the most recent
runs (each order's eleven steps, each registration) as they happen, draws one run as a
sequence diagram with a time axis, and gives p50/p99 per step.

The gateway's recorder turns each answer into a :class:`~orchestrator.console.runs.Run`
and adds it to a :class:`~orchestrator.console.store.RunStore`; :func:`add_console`
serves that store, to operators only.
"""

from __future__ import annotations

import falcon

from orchestrator.console.resources import OneRun, Operators, Page, Runs, RunSummary, StaticFile
from orchestrator.console.runs import Call, Run, StepTime, Stop, Summary
from orchestrator.console.store import RunStore

__all__ = ["ROUTES", "Call", "Run", "RunStore", "StepTime", "Stop", "Summary", "add_console"]

# The console's routes; it checks its operators itself, not the customers' tokens.
ROUTES = frozenset(
    {
        "/console",
        "/console/static/{name}",
        "/console/api/runs",
        "/console/api/runs/{run_id}",
        "/console/api/summary",
    }
)


def add_console(app: falcon.App, store: RunStore, secret: str) -> None:
    """Serve the console of ``store`` on ``app``, to the operator with ``secret``."""
    operators = Operators(secret)
    app.add_route("/console", Page(operators))
    app.add_route("/console/static/{name}", StaticFile(operators))
    app.add_route("/console/api/runs", Runs(operators, store))
    app.add_route("/console/api/runs/{run_id}", OneRun(operators, store))
    app.add_route("/console/api/summary", RunSummary(operators, store))
