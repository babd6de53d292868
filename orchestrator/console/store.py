"""The recent runs, in memory: bounded (the oldest are dropped), numbered in the order
they were added, safe to add to and read from any thread."""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable

import attrs

from orchestrator.console.runs import ORDER, Run, StepStats, Summary, TotalStats
from orchestrator.stats import percentile

# A search shorter than this must match a whole ID, so two characters never find a run.
MIN_PREFIX = 8


class RunStore:
    def __init__(self, capacity: int = 1000) -> None:
        if capacity < 1:
            raise ValueError("a run store holds at least one run")
        self.capacity = capacity
        self._lock = threading.Lock()
        self._runs: collections.deque[Run] = collections.deque()
        self._by_id: dict[str, Run] = {}
        # Runs added without their drawing, and what completes each (the recorder's).
        self._drawings: dict[str, Callable[[Run], Run]] = {}
        # (user ID, Idempotency-Key) -> the runs still held that got an order under it,
        # oldest first: the first is the one a replay links to. Kept by key, so that
        # letting the oldest run go does not look through every run held.
        # (Lists: a key rarely has more than one run, and a deque costs ten times more.)
        self._with_key: dict[tuple[str, str], list[Run]] = {}
        self._seq = 0

    @property
    def last(self) -> int:
        """The ``seq`` of the newest run ever added (0 before the first)."""
        with self._lock:
            return self._seq

    def __len__(self) -> int:
        with self._lock:
            return len(self._runs)

    def add(self, run: Run, drawing: Callable[[Run], Run] | None = None) -> int:
        """Number the run, link a replay to its first run, and keep it; returns its ``seq``.
        ``drawing`` adds the run's calls the first time it is read whole (:meth:`get`)."""
        with self._lock:
            if run.id in self._by_id:
                raise ValueError(f"run {run.id} is already stored")
            self._seq += 1
            key = _key(run)
            held = self._with_key.get(key) if key else None
            replay_of = held[0].id if run.replayed and held else run.replay_of
            run = attrs.evolve(run, seq=self._seq, replay_of=replay_of)
            if key:
                self._with_key.setdefault(key, []).append(run)
            self._runs.append(run)
            self._by_id[run.id] = run
            if drawing is not None:
                self._drawings[run.id] = drawing
            while len(self._runs) > self.capacity:
                self._forget(self._runs.popleft())
            return run.seq

    def _forget(self, old: Run) -> None:
        del self._by_id[old.id]
        self._drawings.pop(old.id, None)
        key = _key(old)
        held = self._with_key.get(key) if key else None
        if held:
            # Runs leave oldest first, so this one is the oldest held with its key; the
            # next, if any, becomes the key's first.
            del held[0]
            if not held:
                del self._with_key[key]

    def get(self, run_id: str) -> Run | None:
        """The run whole: drawn now if it was added without its calls."""
        with self._lock:
            return self._whole(run_id)

    def _whole(self, run_id: str) -> Run | None:
        run = self._by_id.get(run_id)
        drawing = self._drawings.pop(run_id, None)
        if run is not None and drawing is not None:
            run = self._by_id[run_id] = drawing(run)
        return run

    def first_with_key(self, user_id: str, idempotency_key: str) -> Run | None:
        with self._lock:
            held = self._with_key.get((user_id, idempotency_key))
            return self._whole(held[0].id) if held else None

    def page(
        self,
        after: int | None = None,
        before: int | None = None,
        outcome: str | None = None,
        query: str | None = None,
        limit: int = 50,
    ) -> list[Run]:
        """Newest first: runs numbered above ``after`` and below ``before``, with this
        ``outcome``, that ``query`` finds (see :func:`matches`), at most ``limit``."""
        found: list[Run] = []
        with self._lock:
            for run in reversed(self._runs):
                if after is not None and run.seq <= after:
                    break
                if before is not None and run.seq >= before:
                    continue
                if outcome is not None and run.outcome != outcome:
                    continue
                if query is not None and not matches(run, query):
                    continue
                found.append(run)
                if len(found) >= limit:
                    break
        return found

    def summary(self, last: int) -> Summary:
        """p50 and p99 of each step's time and of the whole answer over the last
        ``last`` orders (registrations aside)."""
        with self._lock:
            orders = [run for run in reversed(self._runs) if run.kind == ORDER][:last]
        by_step: dict[int, list[float]] = {}
        names: dict[int, str] = {}
        for run in orders:
            for step in run.steps:
                by_step.setdefault(step.number, []).append(step.ms)
                names.setdefault(step.number, step.name)
        steps = [StepStats(number, names[number], *_stats(by_step[number])) for number in sorted(by_step)]
        return Summary(len(orders), steps, TotalStats(*_stats([run.duration_ms for run in orders])))


def _key(run: Run) -> tuple[str, str] | None:
    """A run that got an order under an Idempotency-Key is a replay's possible first run."""
    if run.kind != ORDER or run.order_id is None or run.user_id is None or run.idempotency_key is None:
        return None
    return (run.user_id, run.idempotency_key)


def _stats(values: list[float]) -> tuple[int, float | None, float | None]:
    if not values:
        return 0, None, None
    ordered = sorted(values)
    return len(ordered), percentile(ordered, 0.5), percentile(ordered, 0.99)


def matches(run: Run, query: str) -> bool:
    """``query`` is the run's ID, order ID, request ID, trace ID or Idempotency-Key, or
    the start of one (at least :data:`MIN_PREFIX` characters). IDs match in either
    case; a key is the client's own text and matches exactly."""
    query = query.strip()
    ids = [(value.lower(), query.lower()) for value in (run.id, run.order_id, run.request_id, run.trace_id) if value]
    keys = [(run.idempotency_key, query)] if run.idempotency_key is not None else []
    return any(
        value == wanted or (len(wanted) >= MIN_PREFIX and value.startswith(wanted)) for value, wanted in ids + keys
    )
