"""Recovery's loop, with a fake Orders: a row Orders cannot send costs only that row, and
whatever stops one order's run stops that order alone."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from contracts import notifications, orders
from contracts.vocabulary import BAD_RESPONSE, SERVER_ERROR, UNAVAILABLE
from orchestrator import flow, recovery
from services.common.http import DownstreamError, Reply

USER = str(uuid.uuid4())
STAMP = "2026-01-01T00:00:00.000000Z"


def order(status: str = "pending") -> orders.Order:
    return orders.Order(
        id=str(uuid.uuid4()),
        user_id=USER,
        items=[orders.Item(name="Tea", quantity=1, price=100)],
        total=100,
        currency="RUB",
        status=status,
        reason=None,
        payment_id=None,
        created_at=STAMP,
        updated_at=STAMP,
    )


class FakeOrders:
    """Lists ``rows`` in their order (newest first); a page holding a position in ``bad``
    fails as Orders fails when it cannot send a row. ``changes`` run after each page
    sent, as other requests changing orders while recovery reads."""

    def __init__(
        self,
        rows: list[orders.Order],
        bad: set[int] = frozenset(),
        reason: str = SERVER_ERROR,
        changes: Callable[[list[orders.Order]], None] | None = None,
    ) -> None:
        self.rows, self.bad, self.reason, self.changes = rows, bad, reason, changes
        self.calls: list[tuple[int, int, str | None]] = []

    def list_orders(self, limit: int, offset: int, status: str, before: str | None = None, **_query: Any) -> Reply:
        self.calls.append((limit, offset, before))
        ids = [row.id for row in self.rows]
        start = (ids.index(before) + 1 if before in ids else len(ids)) if before is not None else 0
        if any(start + offset <= position < start + offset + limit for position in self.bad):
            raise DownstreamError("orders", self.reason, "undocumented status 500", 500)
        matching = [row for row in self.rows[start:] if row.status == status][offset : offset + limit + 1]
        following = matching[limit - 1].id if len(matching) > limit else None
        page = orders.OrderPage(items=matching[:limit], limit=limit, offset=offset, next_before=following)
        if self.changes is not None:
            self.changes(self.rows)
        return Reply(200, page, None)


def letter(of: orders.Order) -> notifications.Letter:
    return notifications.Letter(
        id=str(uuid.uuid4()),
        order_id=of.id,
        user_id=of.user_id,
        kind="happy",
        recipient="anna@example.com",
        subject="Paid",
        body="Thank you",
        delivery="sent",
        created_at=STAMP,
    )


def services(fake: FakeOrders) -> flow.Services:
    return flow.Services(orders=fake, billing=None, notifications=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("reason", [SERVER_ERROR, BAD_RESPONSE])
def test_a_page_orders_cannot_send_is_read_again_one_order_at_a_time(reason: str) -> None:
    rows = [order() for _ in range(250)]
    fake = FakeOrders(rows, bad={5, 150}, reason=reason)
    report = recovery.Report()

    found = recovery._orders(services(fake), report, "pending", status="pending")

    assert found == [row for position, row in enumerate(rows) if position not in (5, 150)]
    assert [line.split(" cannot")[0] for line in report.failures] == [
        "pending order no. 6 of the listing (newest first)",
        "pending order no. 151 of the listing (newest first)",
    ]
    # Two pages of 100 asked again order by order; the last page, which ends the listing, whole.
    assert len(fake.calls) == 3 + 2 * recovery.PAGE


def test_a_bad_row_in_the_last_page_ends_the_listing_where_orders_does() -> None:
    rows = [order() for _ in range(3)]
    fake = FakeOrders(rows, bad={1})
    report = recovery.Report()

    assert recovery._orders(services(fake), report, "pending", status="pending") == [rows[0], rows[2]]
    assert len(report.failures) == 1
    assert fake.calls == [(100, 0, None), (1, 0, None), (1, 1, None), (1, 2, None), (1, 3, None)]


def test_a_bad_row_that_ends_a_page_is_passed_over_and_the_listing_goes_on_after_it() -> None:
    rows = [order() for _ in range(250)]
    fake = FakeOrders(rows, bad={99, 100})
    report = recovery.Report()

    found = recovery._orders(services(fake), report, "pending", status="pending")

    assert found == rows[:99] + rows[101:]
    assert [line.split(" cannot")[0] for line in report.failures] == [
        "pending order no. 100 of the listing (newest first)",
        "pending order no. 101 of the listing (newest first)",
    ]


def test_orders_finished_or_added_while_recovery_reads_make_none_repeat_or_go_missing() -> None:
    rows = [order() for _ in range(250)]
    listed = list(rows)

    def others_at_work(current: list[orders.Order]) -> None:
        # Another run finishes the ten newest pending orders, and a new order arrives.
        pending = [i for i, row in enumerate(current) if row.status == "pending"][:10]
        for i in pending:
            current[i] = attrs.evolve(current[i], status="paid")
        current.insert(0, order())

    fake = FakeOrders(rows, changes=others_at_work)
    found = recovery._orders(services(fake), recovery.Report(), "pending", status="pending")

    # Offsets would have skipped ten orders per page that changed before them.
    assert [row.id for row in found] == [row.id for row in listed]
    assert [call[2] for call in fake.calls] == [None, listed[99].id, listed[199].id]


def test_orders_down_is_not_narrowed_but_reported_once() -> None:
    fake = FakeOrders([order() for _ in range(3)], bad={0}, reason=UNAVAILABLE)

    report = recovery.recover(services(fake), older_than=0, letters_since=3600)

    assert report.failures == ["listing pending orders: orders: unavailable: undocumented status 500"]
    assert fake.calls == [(100, 0, None)]


def test_whatever_stops_one_order_is_reported_and_the_others_are_finished(monkeypatch: pytest.MonkeyPatch) -> None:
    pending = [order() for _ in range(3)]
    final = [order("paid") for _ in range(2)]
    broken, unletterable = pending[1].id, final[0].id

    def run_flow(run: flow.Run, start: str | None = None, until: str | None = None) -> flow.Run:
        assert run.order is not None
        if start == recovery.LETTER_STEP:
            if run.order.id == unletterable:
                raise ValueError("a letter that cannot be made")
        elif run.order.id == broken:
            raise KeyError("not a failure the flow names")
        else:
            run.order = attrs.evolve(run.order, status="paid")
        run.letter, run.letter_created = letter(run.order), True
        return run

    monkeypatch.setattr(flow, "run_flow", run_flow)

    report = recovery.recover(services(FakeOrders(pending + final)), older_than=0, letters_since=3600)

    assert (report.pending_found, report.paid, report.letters_checked, report.letters_sent) == (3, 2, 2, 3)
    assert report.failures == [
        f"order {broken}: KeyError: 'not a failure the flow names'",
        f"letter for order {unletterable}: ValueError: a letter that cannot be made",
    ]


def test_each_order_recovery_finishes_carries_a_request_id_of_its_own() -> None:
    from tests.fakes import FakeBilling, FakeNotifications
    from tests.fakes import FakeOrders as ServiceOrders

    fake_orders, fake_billing, letters = ServiceOrders(), FakeBilling(), FakeNotifications()
    pending = []
    for _ in range(2):
        made = fake_orders.create_order(
            orders.NewOrder(
                user_id=USER,
                items=[orders.Item("Tea", 1, 100)],
                currency="RUB",
                idempotency_key=str(uuid.uuid4()),
                run_id="dead",
            )
        )
        pending.append(made.data.id)
    letters.emails[USER] = "anna@example.com"
    fake_orders.claims.clear()
    fake_orders.request_ids.clear()
    services_ = flow.Services(orders=fake_orders, billing=fake_billing, notifications=letters)  # type: ignore[arg-type]

    report = recovery.recover(services_, older_than=0, letters_since=3600)

    assert report.cancelled == 2 and report.failures == []
    ids = fake_orders.request_ids + fake_billing.request_ids + letters.request_ids
    assert all(rid.startswith("recover-") for rid in ids), ids
    by_order = {call[1].order_id: rid for call, rid in zip(fake_billing.calls, fake_billing.request_ids, strict=True)}
    assert set(by_order) == set(pending) and len(set(by_order.values())) == 2
