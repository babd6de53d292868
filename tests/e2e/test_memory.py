"""Memory stays bounded: after a load of orders and after every list is paged through
with every page size, each service's resident memory is at most 60 MB on waitress, and
8 MB more on granian (its Rust code, runtime and allocator: an idle service takes that
much more there, and each of its app threads, started as load needs them, a little).

Two things used to grow it, each by tens of megabytes on a service that had served
large lists: SQLite's page cache, 2 MB for each connection a waitress thread keeps; and
waitress keeping the last response of every kept-alive connection in memory. The
orders here carry long item lists, so the databases and the pages are large enough for
either to show within seconds.
"""

from __future__ import annotations

import concurrent.futures
import http.client
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

from orchestrator.tools.supervisor import Stack
from services.common.clients import OrdersClient, make_client
from services.common.trust import ServiceTokens
from tests.harness import Customer, Gateway, rss_mb, server_under_test

LIMIT_MB = 60 + (8 if server_under_test() == "granian" else 0)
ORDERS = 200
ITEMS = 8
# A wallet that covers two orders in three: paid and cancelled pages both.
PRICE = 100


def _items(n: int) -> list[dict[str, object]]:
    return [{"name": f"{n}-{k}-" + "x" * 190, "quantity": 1, "price": PRICE} for k in range(ITEMS)]


@pytest.fixture(scope="module")
def stack_options() -> dict[str, Any]:
    # SQLite whatever the run's database: its page cache per connection is what grew.
    return {"databases": {}}


@pytest.fixture(scope="module")
def customer(stack: Stack) -> Customer:
    """A customer with ``ORDERS`` orders, placed eight at a time as a benchmark would."""
    gateway = Gateway(stack.urls["gateway"])
    customer = gateway.customer(deposit=ORDERS * ITEMS * PRICE * 2 // 3)

    def place(n: int) -> int:
        body = {"user_id": customer.user_id, "currency": "RUB", "items": _items(n)}
        return Gateway(stack.urls["gateway"]).request("POST", "/orders", customer.token, json=body).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert set(pool.map(place, range(ORDERS))) == {201}
    return customer


def _resident(stack: Stack) -> dict[str, float]:
    return {name: round(rss_mb(process.popen.pid), 1) for name, process in stack.processes.items()}


Fetch = Callable[[int, int], list[object]]


def _page_through(fetch: Fetch, size: int) -> int:
    """Every item of one list, ``size`` at a time; the number of items seen."""
    seen, offset = 0, 0
    while True:
        items = fetch(size, offset)
        seen += len(items)
        if len(items) < size:
            return seen
        offset += size


def test_every_list_paged_with_every_page_size_leaves_each_service_within_60_mb(
    stack: Stack, customer: Customer
) -> None:
    after_load = _resident(stack)
    assert all(mb <= LIMIT_MB for mb in after_load.values()), f"MB after the orders: {after_load}"
    settings = attrs.evolve(stack.settings, urls=dict(stack.urls))

    def public(path: str) -> Fetch:
        gateway = Gateway(stack.urls["gateway"])

        def fetch(size: int, offset: int) -> list[object]:
            reply = gateway.request("GET", path, customer.token, params={"limit": size, "offset": offset})
            assert reply.status_code == 200, reply.text
            return reply.json()["items"]

        return fetch

    def internal(status: str) -> Fetch:
        # The listing recovery pages through, on Orders itself.
        orders = make_client(OrdersClient, "gateway", "orders", settings, pool_size=1)

        def fetch(size: int, offset: int) -> list[object]:
            reply = orders.list_orders(status=status, limit=size, offset=offset)
            assert reply.error is None, reply
            return reply.data.items

        return fetch

    lists = {
        "orders": public("/orders"),
        "operations": public("/wallet/operations"),
        "letters": public("/letters"),
        "paid": internal("paid"),
        "cancelled": internal("cancelled"),
    }

    def every_page_size(fetch: Fetch) -> set[int]:
        return {_page_through(fetch, size) for size in range(1, 101)}

    # Each list by its own caller, as the gateway's threads and recovery would.
    with concurrent.futures.ThreadPoolExecutor(len(lists)) as pool:
        seen = dict(zip(lists, pool.map(every_page_size, lists.values()), strict=True))
    assert all(len(counts) == 1 for counts in seen.values()), seen
    count = {name: counts.pop() for name, counts in seen.items()}
    assert count["orders"] == count["letters"] == ORDERS == count["paid"] + count["cancelled"]
    assert count["operations"] == count["paid"] + 1  # and the deposit
    after_paging = _resident(stack)
    assert all(mb <= LIMIT_MB for mb in after_paging.values()), f"MB after paging: {after_paging}"


def test_connections_kept_open_after_large_pages_hold_no_copy_of_them(stack: Stack, customer: Customer) -> None:
    """Sixteen callers each fetch a page of 100 orders (over 150 kB) and keep their
    connection open, as the gateway's threads do: Orders keeps no copy of the pages."""
    authorization = ServiceTokens(stack.settings.secret(), "gateway").header("orders")
    orders_pid = stack.processes["orders"].popen.pid
    before = rss_mb(orders_pid)
    held = 0
    connections = []
    try:
        for _ in range(16):
            conn = http.client.HTTPConnection("127.0.0.1", stack.ports["orders"], timeout=10)
            connections.append(conn)
            conn.request("GET", "/orders?limit=100", headers={"Authorization": authorization})
            reply = conn.getresponse()
            assert reply.status == 200 and not reply.will_close
            held += len(reply.read())
        assert held > 16 * 150_000
        grown = rss_mb(orders_pid) - before
        # Kept, the pages would add their whole size.
        assert grown < held / 2**20 / 2, (grown, held)
        assert rss_mb(orders_pid) <= LIMIT_MB
    finally:
        for conn in connections:
            conn.close()


def test_only_auth_loads_cryptography(stack: Stack) -> None:
    """Its library costs each process 8 MB: Auth signs with it; service tokens are HMAC,
    and the gateway checks Ed25519 signatures with the OpenSSL the interpreter maps."""
    mapping = {
        name: "site-packages/cryptography/" in Path(f"/proc/{process.popen.pid}/maps").read_text()
        for name, process in stack.processes.items()
    }
    assert mapping == {name: name == "auth" for name in stack.processes}, mapping
