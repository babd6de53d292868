"""Finishing what a failure left behind, through the same step list.

Orders left ``pending`` past a threshold get the flow again from the payment on, with
Billing asked for the decision that stands (a decline is recorded if the payment never
arrived, so a late request can no longer debit). Final orders without their letter get
the notification step again.
Every call is idempotent: a second run changes nothing. Whatever is still not finished
(a service down, a letter SMTP did not take, an order Orders cannot read back) is
reported as a failure, so the command exits non-zero and is simply run again later; one
bad order never keeps the others from being finished.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import attrs
from cattrs.errors import BaseValidationError

from contracts import orders
from contracts import vocabulary as words
from contracts.converter import problems
from contracts.vocabulary import BAD_RESPONSE, SERVER_ERROR
from orchestrator import flow
from services.common.clock import iso, utcnow
from services.common.http import DownstreamError
from services.common.logs import request_id_var

log = logging.getLogger(__name__)
PAGE = 100
# A pending order is taken up again from the payment: Billing's decision decides it.
RESUME_AT = "pay"
# A final order's letter is asked for again.
LETTER_STEP = "notify"
# How a listing fails when Orders is up but cannot send one of the page's orders.
ROW_FAILURES = frozenset({SERVER_ERROR, BAD_RESPONSE})


@attrs.define
class Report:
    pending_found: int = 0
    paid: int = 0
    cancelled: int = 0
    letters_sent: int = 0
    letters_checked: int = 0
    failures: list[str] = attrs.Factory(list)

    def lines(self) -> list[str]:
        return [
            f"pending orders found: {self.pending_found} (now paid: {self.paid}, cancelled: {self.cancelled})",
            f"final orders checked for their letter: {self.letters_checked}, letters sent now: {self.letters_sent}",
            f"failures: {len(self.failures)}",
            *(f"  {failure}" for failure in self.failures),
        ]


def _orders(services: flow.Services, report: Report, what: str, **query: Any) -> list[orders.Order]:
    """All matching orders, newest first, collected before any is changed. Each page
    starts after the last order of the one before (``before``), not at a count, so
    orders that change or arrive meanwhile make none repeat or go missing. A page that
    Orders fails to send while it is up (a 5xx, a body the contract refuses: one row it
    cannot read) is asked for again one order at a time, so only that row is lost to
    this run; it is reported by its place in the listing, and Orders' log names it.
    Orders down stops the listing (``DownstreamError``)."""
    found: list[orders.Order] = []
    # The listing goes on after the order ``before``, less the ``skip`` rows after it
    # already passed (rows that could not be read have no ID to go on from).
    before: str | None = None
    skip = passed = 0
    while True:
        try:
            page = _page(services, PAGE, skip, before, query)
        except DownstreamError as exc:
            if exc.reason not in ROW_FAILURES:
                raise
            read, ended = _one_at_a_time(services, report, what, passed, skip, before, query)
            passed += len(read)
            found.extend(order for order in read if order is not None)
            if ended:
                return found
            good = [(place, order) for place, order in enumerate(read) if order is not None]
            if good:
                place, last = good[-1]
                before, skip = last.id, len(read) - place - 1
            else:
                skip += len(read)
            continue
        found.extend(page.items)
        passed += len(page.items)
        if page.next_before is None:
            return found
        before, skip = page.next_before, 0


def _one_at_a_time(
    services: flow.Services,
    report: Report,
    what: str,
    passed: int,
    skip: int,
    before: str | None,
    query: dict[str, Any],
) -> tuple[list[orders.Order | None], bool]:
    """The page after ``before`` and ``skip`` rows, order by order (None for a row that
    cannot be read); and whether the listing ended in it."""
    read: list[orders.Order | None] = []
    for offset in range(skip, skip + PAGE):
        try:
            page = _page(services, 1, offset, before, query)
        except DownstreamError as exc:
            if exc.reason not in ROW_FAILURES:
                raise
            place = passed + len(read) + 1
            report.failures.append(f"{what} order no. {place} of the listing (newest first) cannot be read: {exc}")
            read.append(None)
            continue
        if not page.items:
            return read, True
        read.extend(page.items)
    return read, False


def _page(
    services: flow.Services, limit: int, offset: int, before: str | None, query: dict[str, Any]
) -> orders.OrderPage:
    reply = services.orders.list_orders(limit=limit, offset=offset, before=before, **query)
    if reply.error is not None:
        raise DownstreamError("orders", "refused", f"{reply.status} {reply.error.code}", reply.status)
    page: orders.OrderPage = reply.data
    return page


def _describe(exc: Exception) -> str:
    if isinstance(exc, (flow.FlowStopped, DownstreamError)):
        return str(exc)
    if isinstance(exc, BaseValidationError):
        return "; ".join(f"{p.path}: {p.message}" for p in problems(exc))
    return f"{type(exc).__name__}: {exc}"


def recover(services: flow.Services, older_than: float, letters_since: float, delivery_claim: float = 0.0) -> Report:
    """``delivery_claim``: how long a sender's claim on a letter's delivery lasts; letters
    still undelivered are asked for once more after it, in case a sender that died held
    them."""
    report = Report()
    undelivered: list[orders.Order] = []
    now = utcnow()
    cutoff = iso(now - datetime.timedelta(seconds=older_than))
    try:
        with _request_id():
            pending = _orders(services, report, words.PENDING, status=words.PENDING, updated_before=cutoff)
    except DownstreamError as exc:
        report.failures.append(f"listing pending orders: {exc}")
        return report
    for order in pending:
        report.pending_found += 1
        with _request_id():
            _finish(services, order, report, undelivered)
    since = iso(now - datetime.timedelta(seconds=letters_since))
    for status in words.FINAL_STATUSES:
        try:
            with _request_id():
                final = _orders(services, report, status, status=status, updated_before=cutoff, updated_after=since)
        except DownstreamError as exc:
            report.failures.append(f"listing {status} orders: {exc}")
            continue
        for order in final:
            report.letters_checked += 1
            with _request_id():
                report.letters_sent += _letter(services, order, report, undelivered)
    if undelivered and delivery_claim > 0:
        time.sleep(delivery_claim)
        retried, undelivered = undelivered, []
        for order in retried:
            with _request_id():
                _letter(services, order, report, undelivered)
    for order in undelivered:
        report.failures.append(f"letter for order {order.id}: not delivered, SMTP refused it")
    return report


@contextlib.contextmanager
def _request_id() -> Iterator[str]:
    """A request ID for one piece of recovery's work, sent on each of its calls and on
    its log lines, so the services' logs follow it as they follow an order."""
    rid = f"recover-{uuid.uuid4().hex[:16]}"
    token = request_id_var.set(rid)
    try:
        yield rid
    finally:
        request_id_var.reset(token)


def _finish(services: flow.Services, order: orders.Order, report: Report, undelivered: list[orders.Order]) -> None:
    """The flow again, from the payment on, for one pending order."""
    log.info("finishing pending order %s", order.id)
    run = flow.Run(
        services=services,
        user_id=order.user_id,
        body=None,
        idempotency_key="recovery",
        mode=flow.RECOVER,
        order=order,
    )
    try:
        flow.run_flow(run, start=RESUME_AT)
    except Exception as exc:
        # Whatever stops one order (a service, a bug, data it cannot take) stops it alone.
        _failed(report, f"order {order.id}", exc)
        return
    assert run.order is not None
    if run.order.status == words.PAID:
        report.paid += 1
    else:
        report.cancelled += 1
    report.letters_sent += run.letter_created
    if run.letter_pending:
        # Final now, but step 9 failed; this order is outside this run's letter check.
        report.failures.append(f"letter for order {order.id}: not sent, Notifications failed")
    _check_delivery(run, undelivered)


def _letter(services: flow.Services, order: orders.Order, report: Report, undelivered: list[orders.Order]) -> bool:
    """The notification step again for a final order; whether a letter was made now."""
    run = flow.Run(services=services, user_id=order.user_id, body=None, idempotency_key="recovery", order=order)
    try:
        flow.run_flow(run, start=LETTER_STEP, until=LETTER_STEP)
    except Exception as exc:
        _failed(report, f"letter for order {order.id}", exc)
        return False
    for missed in run.missed:
        report.failures.append(f"letter for order {order.id}: {missed.failure.reason}: {missed.failure.detail}")
    if run.missed:
        return False
    _check_delivery(run, undelivered)
    return run.letter_created


def _failed(report: Report, what: str, exc: Exception) -> None:
    if not isinstance(exc, (flow.FlowStopped, DownstreamError)):
        # Not a failure the flow names: keep the trace for whoever runs the command.
        log.error("%s: unexpected failure", what, exc_info=exc)
    report.failures.append(f"{what}: {_describe(exc)}")


def _check_delivery(run: flow.Run, undelivered: list[orders.Order]) -> None:
    """A letter is kept even when SMTP refuses it; each run asks for delivery again."""
    if run.letter is not None and run.letter.delivery == words.FAILED and run.order is not None:
        undelivered.append(run.order)
