"""Finishing what a failure left behind, through the same step list.

Orders left ``pending`` past a threshold get the flow again from the payment on, with
Billing asked for the decision that stands (a decline is recorded if the payment never
arrived, so a late request can no longer debit). Final orders without their letter get
the notification step again.
Every call is idempotent: a second run changes nothing. Whatever is still not finished
(a service down, a letter SMTP did not take) is reported as a failure, so the command
exits non-zero and is simply run again later.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Iterator
from typing import Any

import attrs

from contracts import orders
from contracts import vocabulary as words
from orchestrator import flow
from services.common.clock import iso, utcnow
from services.common.http import DownstreamError

log = logging.getLogger(__name__)
PAGE = 100
# A pending order is taken up again from the payment: Billing's decision decides it.
RESUME_AT = "pay"
# A final order's letter is asked for again.
LETTER_STEP = "notify"


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


def _orders(services: flow.Services, **query: Any) -> Iterator[orders.Order]:
    """All matching orders, collected before any is changed (changes move pages)."""
    found: list[orders.Order] = []
    offset = 0
    while True:
        reply = services.orders.list_orders(limit=PAGE, offset=offset, **query)
        page = reply.data.items
        found.extend(page)
        if len(page) < PAGE:
            return iter(found)
        offset += PAGE


def recover(services: flow.Services, older_than: float, letters_since: float, delivery_claim: float = 0.0) -> Report:
    """``delivery_claim``: how long a sender's claim on a letter's delivery lasts; letters
    still undelivered are asked for once more after it, in case a sender that died held
    them."""
    report = Report()
    undelivered: list[orders.Order] = []
    now = utcnow()
    cutoff = iso(now - datetime.timedelta(seconds=older_than))
    try:
        pending = list(_orders(services, status=words.PENDING, updated_before=cutoff))
    except DownstreamError as exc:
        report.failures.append(f"listing pending orders: {exc}")
        return report
    for order in pending:
        report.pending_found += 1
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
        except (flow.FlowStopped, DownstreamError) as exc:
            report.failures.append(f"order {order.id}: {exc}")
            continue
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
    since = iso(now - datetime.timedelta(seconds=letters_since))
    for status in words.FINAL_STATUSES:
        try:
            final = list(_orders(services, status=status, updated_before=cutoff, updated_after=since))
        except DownstreamError as exc:
            report.failures.append(f"listing {status} orders: {exc}")
            continue
        for order in final:
            report.letters_checked += 1
            report.letters_sent += _letter(services, order, report, undelivered)
    if undelivered and delivery_claim > 0:
        time.sleep(delivery_claim)
        retried, undelivered = undelivered, []
        for order in retried:
            _letter(services, order, report, undelivered)
    for order in undelivered:
        report.failures.append(f"letter for order {order.id}: not delivered, SMTP refused it")
    return report


def _letter(services: flow.Services, order: orders.Order, report: Report, undelivered: list[orders.Order]) -> bool:
    """Step 9 again for a final order; whether a letter was made now."""
    run = flow.Run(services=services, user_id=order.user_id, body=None, idempotency_key="recovery", order=order)
    flow.run_flow(run, start=LETTER_STEP, until=LETTER_STEP)
    for missed in run.missed:
        report.failures.append(f"letter for order {order.id}: {missed.failure.reason}: {missed.failure.detail}")
    if run.missed:
        return False
    _check_delivery(run, undelivered)
    return run.letter_created


def _check_delivery(run: flow.Run, undelivered: list[orders.Order]) -> None:
    """A letter is kept even when SMTP refuses it; each run asks for delivery again."""
    if run.letter is not None and run.letter.delivery == words.FAILED and run.order is not None:
        undelivered.append(run.order)
