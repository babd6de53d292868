"""The operator console on a real stack, in Debian's headless Chromium: orders placed
through the public API (a paid one, a cancelled one, one with Billing stopped, one with
a hostile item name and key) appear on the open page on their own, each drawn from what
really happened to it; nothing a customer typed runs; nobody but the operator gets in.
Saves the README's screenshot of the console."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, Page, expect, sync_playwright

from contracts.converter import converter
from orchestrator.console.runs import Run
from orchestrator.tools.supervisor import Stack
from tests.console_page import (
    ROW_DEADLINE_S,
    check_diagram_shows_calls,
    check_stopped_at,
    open_run,
    wait_for_row,
)
from tests.harness import CHROMIUM_FLAGS, Customer, Gateway

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "console.png"
SECRET = "operator-" + uuid.uuid4().hex
HOSTILE_NAME = "</script><script>window.__pwned=1</script><img src=x onerror=window.__pwned=2>"
HOSTILE_KEY = '"><svg/onload=window.__pwned=3>'

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (./test installs it)")


@pytest.fixture(scope="module")
def stack_options() -> dict[str, Any]:
    return {"operator_secret": SECRET}


@pytest.fixture(scope="module")
def page(stack: Stack) -> Iterator[Page]:
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_playwright() as driver:
        browser: Browser = driver.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_FLAGS)
        )
        context = browser.new_context(
            http_credentials={"username": "operator", "password": SECRET},
            viewport={"width": 1400, "height": 900},
            color_scheme="light",
        )
        opened = context.new_page()
        opened.dialogs = []  # type: ignore[attr-defined]
        opened.foreign = []  # type: ignore[attr-defined]
        base = stack.urls["gateway"]
        opened.on("dialog", lambda dialog: (opened.dialogs.append(dialog.message), dialog.dismiss()))  # type: ignore[attr-defined]
        opened.on(
            "request",
            lambda request: request.url.startswith(base + "/") or opened.foreign.append(request.url),  # type: ignore[attr-defined]
        )
        opened.goto(f"{base}/console")
        expect(opened.locator("#live-text")).to_have_text("live")
        yield opened
        context.close()
        browser.close()


def _run_of(gateway: Gateway, answer: requests.Response) -> Run:
    """The console's run for an answer, found by its request ID as an operator would."""
    found = requests.get(
        f"{gateway.base}/console/api/runs",
        params={"q": answer.headers["X-Request-ID"]},
        auth=("operator", SECRET),
        timeout=10,
    )
    assert found.status_code == 200, found.text
    [brief] = found.json()["runs"]
    whole = requests.get(f"{gateway.base}/console/api/runs/{brief['id']}", auth=("operator", SECRET), timeout=10)
    run: Run = converter.structure(whole.json(), Run)
    return run


def _order(gateway: Gateway, customer: Customer, price: int, name: str = "Tea", key: str | None = None) -> Any:
    body = {"user_id": customer.user_id, "currency": "RUB", "items": [{"name": name, "quantity": 1, "price": price}]}
    headers = {"Idempotency-Key": key} if key else {}
    return gateway.request("POST", "/orders", customer.token, json=body, headers=headers)


def test_orders_appear_on_the_open_page_and_each_is_drawn_from_what_happened(
    stack: Stack, gateway: Gateway, page: Page
) -> None:
    customer = gateway.customer(deposit=3_000)

    paid = _order(gateway, customer, 1_000)
    answered = time.monotonic()
    assert paid.status_code == 201 and paid.json()["order"]["status"] == "paid"
    paid_run = _run_of(gateway, paid)
    assert wait_for_row(page, paid_run.id, answered) < ROW_DEADLINE_S

    cancelled = _order(gateway, customer, 900_000)
    answered = time.monotonic()
    cancelled_run = _run_of(gateway, cancelled)
    assert wait_for_row(page, cancelled_run.id, answered) < ROW_DEADLINE_S

    stack.kill("billing")
    try:
        stopped = _order(gateway, customer, 500, key=f"down-{uuid.uuid4()}")
        answered = time.monotonic()
    finally:
        stack.start_one("billing")
    assert stopped.status_code == 503
    stopped_run = _run_of(gateway, stopped)
    assert wait_for_row(page, stopped_run.id, answered) < ROW_DEADLINE_S

    hostile = _order(gateway, customer, 100, name=HOSTILE_NAME, key=HOSTILE_KEY)
    answered = time.monotonic()
    assert hostile.status_code == 201
    hostile_run = _run_of(gateway, hostile)
    assert wait_for_row(page, hostile_run.id, answered) < ROW_DEADLINE_S

    # The paid order: six participants, every call with the status its callee answered.
    assert paid_run.participants == ["client", "gateway", "orders", "billing", "notifications", "profiles"]
    open_run(page, paid_run.id)
    check_diagram_shows_calls(page, paid_run)
    answers = page.locator("#detail svg.seq g.msg.answer text.label").all_text_contents()
    assert {"201 Created", "200 OK"} <= set(answers)
    assert [call.step for call in paid_run.calls] == [None, 3, 5, 7, 9, 10]

    # The cancelled one: Billing's refusal with its reason.
    open_run(page, cancelled_run.id)
    expect(page.locator("#detail svg.seq g.msg.answer.refusal text.label")).to_have_text("406 Insufficient funds")

    # Billing stopped: drawn up to the failed call, marked with step 5 and its reason.
    assert stopped_run.stopped is not None and stopped_run.stopped.reason == "unavailable"
    open_run(page, stopped_run.id)
    check_stopped_at(page, 5, "pay", "pay_failed", "unavailable")

    # What the customer typed is text; nothing ran, nothing came from elsewhere.
    open_run(page, hostile_run.id)
    expect(page.locator("#detail dd[data-field='Idempotency-Key']")).to_have_text(HOSTILE_KEY)
    assert page.evaluate("window.__pwned") is None
    assert page.dialogs == [] and page.foreign == []  # type: ignore[attr-defined]


def test_a_replay_says_so_and_links_to_the_first_run(gateway: Gateway, page: Page) -> None:
    customer = gateway.customer(deposit=1_000)
    key = f"again-{uuid.uuid4()}"
    first = _run_of(gateway, _order(gateway, customer, 200, key=key))
    again = _order(gateway, customer, 200, key=key)
    answered = time.monotonic()

    replay = _run_of(gateway, again)

    assert replay.outcome == "replayed" and replay.replay_of == first.id
    wait_for_row(page, replay.id, answered)
    open_run(page, replay.id)
    expect(page.locator("#detail a.replay-of")).to_have_text(first.id)


@pytest.mark.parametrize(
    "credential",
    [None, ("operator", "not the secret"), ("someone", SECRET), "customer"],
    ids=["none", "wrong-secret", "wrong-user", "customer-token"],
)
@pytest.mark.parametrize(
    "path", ["/console", "/console/static/console.js", "/console/api/runs", "/console/api/summary"]
)
def test_only_the_operator_gets_in(gateway: Gateway, credential: Any, path: str) -> None:
    headers, auth = {}, None
    if credential == "customer":
        headers["Authorization"] = f"Bearer {gateway.customer().token}"
    elif credential is not None:
        auth = credential
    refused = requests.get(gateway.base + path, headers=headers, auth=auth, timeout=10)
    assert refused.status_code == 401, refused.text
    assert refused.headers["WWW-Authenticate"].startswith("Basic")
    assert refused.json()["code"] in {"unauthorized", "invalid_credentials"}
    assert requests.get(gateway.base + path, auth=("operator", SECRET), timeout=10).status_code == 200


def test_screenshot_of_real_orders_for_the_readme(gateway: Gateway, page: Page) -> None:
    customers = [gateway.customer(deposit=5_000) for _ in range(3)]
    last = None
    for number in range(18):
        customer = customers[number % 3]
        last = _order(gateway, customer, 400 + 150 * (number % 7), name=f"Tea no. {number}")
    assert last is not None
    run = _run_of(gateway, last)
    wait_for_row(page, run.id, time.monotonic())
    open_run(page, run.id)
    check_diagram_shows_calls(page, run)
    # Past the new rows' highlight.
    page.wait_for_timeout(2600)
    page.screenshot(path=str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 20_000
