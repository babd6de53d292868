"""Runs built to the console's model, as the gateway's recorder would build them: one of
each outcome, with timings that add up (a call inside its parent, the callee's own time
inside the call)."""

from __future__ import annotations

import datetime
import secrets
import uuid
from typing import Any

from orchestrator.console.runs import Call, Run, StepTime, Stop

STEP_NAMES = {
    2: "authorize",
    3: "create_order",
    4: "order_created",
    5: "pay",
    6: "payment_decided",
    7: "update_status",
    8: "status_updated",
    9: "notify",
    10: "letter_sent",
    11: "respond",
}
REASONS = {200: "OK", 201: "Created", 406: "Not Acceptable", 503: "Service Unavailable"}


def now_iso(offset_s: float = 0.0) -> str:
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=offset_s)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ids() -> dict[str, str]:
    return {"id": uuid.uuid4().hex, "request_id": uuid.uuid4().hex, "trace_id": secrets.token_hex(16)}


class Calls:
    """Calls laid out one after another from the gateway, each inside the root."""

    def __init__(self, speed: float = 1.0) -> None:
        self.calls: list[Call] = []
        self.clock = 0.6
        # Every duration is multiplied by ``speed``: runs that differ, for percentiles.
        self.speed = speed

    def add(
        self,
        source: str,
        target: str,
        method: str,
        route: str,
        step: int | None,
        duration: float,
        server: float | None,
        status: int | None,
        status_text: str | None = None,
        *,
        parent: str = "c0",
        start: float | None = None,
        **extra: Any,
    ) -> Call:
        duration, server = duration * self.speed, server * self.speed if server is not None else None
        call = Call(
            id=f"c{len(self.calls) + 1}",
            parent=parent,
            source=source,
            target=target,
            method=method,
            route=route,
            step=step,
            step_name=STEP_NAMES.get(step) if step else None,
            start_ms=round(self.clock if start is None else start, 2),
            duration_ms=round(duration, 2),
            server_ms=None if server is None else round(server, 2),
            status=status,
            status_text=status_text or REASONS.get(status or 0, "timeout"),
            **extra,
        )
        self.calls.append(call)
        if start is None:
            self.clock += duration + 0.3
        return call

    def rooted(self, route: str, status: int, total: float, status_text: str | None = None) -> list[Call]:
        root = Call(
            id="c0",
            parent=None,
            source="client",
            target="gateway",
            method="POST",
            route=route,
            step=1 if route == "/orders" else None,
            step_name="receive" if route == "/orders" else None,
            start_ms=0.0,
            duration_ms=total,
            server_ms=total,
            status=status,
            status_text=status_text or REASONS[status],
        )
        return [root, *self.calls]


def _steps(times: dict[int, float], failed: dict[int, str] | None = None) -> list[StepTime]:
    failed = failed or {}
    return [StepTime(number, STEP_NAMES[number], ms, failed.get(number, "ok")) for number, ms in sorted(times.items())]


def order_run(
    outcome: str = "paid",
    *,
    key: str | None = None,
    user_id: str | None = None,
    order_id: str | None = None,
    total: int = 12_345,
    started_at: str | None = None,
    replayed: bool = False,
    speed: float = 1.0,
) -> Run:
    """An order that ends ``outcome``: paid, cancelled, stopped (at step 5, Billing
    unavailable), timeout (stopped at step 3, no answer from Orders), letter_pending,
    or refused (403)."""
    user_id = user_id or str(uuid.uuid4())
    order_id = order_id or str(uuid.uuid4())
    key = key or f"order-{secrets.token_hex(4)}"
    calls = Calls(speed)
    stop, letter_pending, participants = None, False, ["client", "gateway", "orders", "billing"]
    failed: dict[int, str] = {}
    times = {2: 0.05}
    ok = 200 if replayed else 201
    if outcome == "refused":
        return Run(
            **_ids(),
            kind="order",
            started_at=started_at or now_iso(),
            duration_ms=0.9,
            status=403,
            idempotency_key=key,
            user_id=user_id,
            outcome="refused",
            outcome_text="refused (forbidden)",
            calls=calls.rooted("/orders", 403, 0.9, "Forbidden"),
            steps=_steps(times, {2: "forbidden"}),
        )
    if outcome == "timeout":
        calls.add(
            "gateway", "orders", "POST", "/orders", 3, 2000.4, None, None, "timeout", failed=True, reason="timeout"
        )
        times |= {3: 2000.4}
        stop, failed, order_id = ("create_order", "timeout"), {3: "timeout"}, None
        participants = ["client", "gateway", "orders"]
    else:
        calls.add("gateway", "orders", "POST", "/orders", 3, 3.1, 1.9, ok)
        times |= {3: 1.2, 4: 1.9}
    if outcome == "stopped":
        calls.add(
            "gateway",
            "billing",
            "POST",
            "/payments",
            5,
            4.4,
            0.8,
            503,
            code="database_unavailable",
            failed=True,
            reason="unavailable",
        )
        times |= {5: 3.6, 6: 0.8}
        stop, failed = ("pay", "unavailable"), {5: "unavailable"}
    elif outcome == "cancelled":
        calls.add(
            "gateway", "billing", "POST", "/payments", 5, 3.2, 2.1, 406, "Insufficient funds", code="insufficient_funds"
        )
        times |= {5: 1.1, 6: 2.1}
    elif outcome != "timeout":
        calls.add("gateway", "billing", "POST", "/payments", 5, 3.6, 2.4, ok)
        times |= {5: 1.2, 6: 2.4}
    if stop is None:
        calls.add("gateway", "orders", "PUT", "/orders/{order_id}/status", 7, 2.8, 1.7, 200)
        times |= {7: 1.1, 8: 1.7}
        participants.append("notifications")
        if outcome == "letter_pending":
            calls.add(
                "gateway",
                "notifications",
                "POST",
                "/letters",
                9,
                1.3,
                None,
                None,
                "connection refused",
                failed=True,
                reason="unavailable",
            )
            times |= {9: 1.3}
            failed, letter_pending = {9: "unavailable"}, True
        else:
            letter = calls.add("gateway", "notifications", "POST", "/letters", 9, 6.2, 5.1, ok)
            if not replayed:
                calls.add(
                    "notifications",
                    "profiles",
                    "GET",
                    "/profiles/{user_id}",
                    10,
                    1.6,
                    0.7,
                    200,
                    parent=letter.id,
                    start=letter.start_ms + 1.1 * speed,
                )
                participants.append("profiles")
            times |= {9: 1.1, 10: 5.1}
        times |= {11: 0.1}
    times = {number: round(value * speed, 2) for number, value in times.items()}
    total_ms = round(calls.clock + 0.4, 1)
    if stop is not None:
        step = next(call for call in calls.calls if call.failed)
        status = {"unavailable": 503, "timeout": 504}[stop[1]]
        texts = {503: "Service Unavailable", 504: "Gateway Timeout"}
        rooted = calls.rooted("/orders", status, total_ms, texts[status])
        stopped = Stop(step.step or 0, stop[0], f"{stop[0]}_failed", stop[1])
        text = f"stopped at step {stopped.step} ({stopped.reason})"
    else:
        rooted = calls.rooted("/orders", 201, total_ms)
        stopped = None
        final = "cancelled (Insufficient funds)" if outcome == "cancelled" else "paid"
        text = {"letter_pending": "letter pending"}.get(outcome, final)
        if replayed:
            text = f"replayed ({final})"
    return Run(
        **_ids(),
        kind="order",
        started_at=started_at or now_iso(),
        duration_ms=total_ms,
        status=rooted[0].status or 0,
        idempotency_key=key,
        order_id=order_id,
        user_id=user_id,
        total=total if order_id else None,
        currency="RUB" if order_id else None,
        outcome="replayed" if replayed else ("stopped" if outcome == "timeout" else outcome),
        outcome_text=text,
        stopped=stopped,
        letter_pending=letter_pending,
        replayed=replayed,
        participants=participants,
        calls=rooted,
        steps=_steps(times, failed),
    )


def registration_run(started_at: str | None = None) -> Run:
    user_id = str(uuid.uuid4())
    calls = Calls()
    users = calls.add("gateway", "auth", "POST", "/users", None, 58.2, 57.1, 201)
    calls.add("auth", "profiles", "PUT", "/profiles/{user_id}", None, 2.4, 1.3, 201, parent=users.id, start=49.9)
    calls.add("auth", "billing", "PUT", "/wallets/{user_id}", None, 2.6, 1.5, 201, parent=users.id, start=52.6)
    return Run(
        **_ids(),
        kind="registration",
        started_at=started_at or now_iso(),
        duration_ms=59.6,
        status=201,
        user_id=user_id,
        outcome="registered",
        outcome_text="registered",
        participants=["client", "gateway", "auth", "billing", "profiles"],
        calls=calls.rooted("/auth/register", 201, 59.6),
    )


def one_of_each() -> dict[str, Run]:
    """The runs the console's tests show, by name; ``replay`` finishes ``stopped``."""
    stopped = order_run("stopped", key="retry-me-0001")
    return {
        "paid": order_run("paid", key="order-1"),
        "cancelled": order_run("cancelled", total=900_000),
        "stopped": stopped,
        "timeout": order_run("timeout"),
        "letter_pending": order_run("letter_pending"),
        "replay": order_run(
            "paid", key=stopped.idempotency_key, user_id=stopped.user_id, order_id=stopped.order_id, replayed=True
        ),
        "registration": registration_run(),
        "refused": order_run("refused"),
        "img": order_run("cancelled", key="<img src=x onerror=alert(1)>"),
        "script": order_run("paid", key="</script><script>alert(1)</script>"),
    }
