"""A run as the operator console shows it: one answer of the gateway, the calls made
while answering it, and where it stopped, if it did.

Frozen attrs classes, served as JSON through the project's one cattrs converter. A run
is built once, when the gateway has answered, and never changes after the store has
numbered it.
"""

from __future__ import annotations

from typing import Any

import attrs

from contracts.converter import unstructure

ORDER = "order"
REGISTRATION = "registration"
KINDS = (ORDER, REGISTRATION)

# What became of a run, one word each; the console colours them apart.
PAID = "paid"
CANCELLED = "cancelled"
STOPPED = "stopped"
LETTER_PENDING = "letter_pending"
REPLAYED = "replayed"
REFUSED = "refused"
REGISTERED = "registered"
REGISTRATION_FAILED = "registration_failed"
OUTCOMES = (PAID, CANCELLED, STOPPED, LETTER_PENDING, REPLAYED, REFUSED, REGISTERED, REGISTRATION_FAILED)

# Everyone a run may touch, in the order the console draws their lifelines.
PARTICIPANTS = ("client", "gateway", "auth", "orders", "billing", "notifications", "profiles")

# The list of runs leaves out what only the drawing of one run needs.
DETAIL_FIELDS = ("participants", "calls", "steps")


@attrs.frozen
class Stop:
    """Where the flow stopped: ``{5, "pay", "pay_failed", "unavailable"}``."""

    step: int
    step_name: str
    code: str
    reason: str


@attrs.frozen
class StepTime:
    """One step's own time, as the gateway's ``Server-Timing`` gives it; ``outcome`` is
    ``ok`` or the reason the step failed."""

    number: int
    name: str
    ms: float
    outcome: str = "ok"


@attrs.frozen(kw_only=True)
class Call:
    """One HTTP call made while answering: an arrow on the sequence diagram and a bar on
    the time axis. The client's call to the gateway is the root (``parent`` is None).

    ``duration_ms`` is what the caller measured, ``server_ms`` what the callee says it
    spent (its ``Server-Timing: app``); the rest was on the wire and in queues."""

    id: str
    parent: str | None
    source: str
    target: str
    method: str
    route: str
    step: int | None = None
    step_name: str | None = None
    start_ms: float
    duration_ms: float
    server_ms: float | None = None
    # None when no answer came; status_text then says why (``timeout``).
    status: int | None
    status_text: str
    code: str | None = None
    failed: bool = False
    reason: str | None = None

    @property
    def wire_ms(self) -> float | None:
        return None if self.server_ms is None else max(0.0, self.duration_ms - self.server_ms)


@attrs.frozen(kw_only=True)
class Run:
    """One answer of the gateway: an order's eleven steps, or a registration."""

    # Set by the store when the run is added.
    seq: int = 0
    id: str
    kind: str = attrs.field(validator=attrs.validators.in_(KINDS))
    started_at: str
    duration_ms: float
    status: int
    request_id: str
    trace_id: str
    idempotency_key: str | None = None
    order_id: str | None = None
    user_id: str | None = None
    # Integer minor units, as everywhere.
    total: int | None = None
    currency: str | None = None
    outcome: str = attrs.field(validator=attrs.validators.in_(OUTCOMES))
    outcome_text: str
    stopped: Stop | None = None
    letter_pending: bool = False
    replayed: bool = False
    # The first run with the same Idempotency-Key; set by the store.
    replay_of: str | None = None
    participants: list[str] = attrs.field(factory=lambda: ["client", "gateway"])
    calls: list[Call] = attrs.Factory(list)
    steps: list[StepTime] = attrs.Factory(list)


def brief(run: Run) -> dict[str, Any]:
    """A row of the list: the run without its calls and step times."""
    whole = unstructure(run)
    for name in DETAIL_FIELDS:
        del whole[name]
    return whole


@attrs.frozen
class StepStats:
    number: int
    name: str
    count: int
    p50_ms: float | None
    p99_ms: float | None


@attrs.frozen
class TotalStats:
    count: int
    p50_ms: float | None
    p99_ms: float | None


@attrs.frozen
class Summary:
    """Percentiles per step and of the whole answer over the last ``runs`` orders."""

    runs: int
    steps: list[StepStats]
    total: TotalStats
