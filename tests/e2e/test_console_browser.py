"""The operator console in Debian's headless Chromium, driven by Playwright: a real
waitress server serves a store of runs built to the console's model; the page must list
new runs on its own, draw each run truthfully, find a run by its trace ID, run nothing a
customer typed, and load nothing from elsewhere."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from playwright.sync_api import Browser, Dialog, Page, expect, sync_playwright

from orchestrator.console import RunStore
from orchestrator.console.runs import Run
from tests.console_page import (
    ROW_DEADLINE_S,
    SECRET,
    check_diagram_shows_calls,
    check_replay_links_to,
    check_stopped_at,
    open_run,
    row,
    search,
    serve_console,
    wait_for_row,
)
from tests.console_samples import now_iso, one_of_each, order_run, registration_run
from tests.harness import CHROMIUM_FLAGS

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (installed by .ci/run)")


@attrs.define
class Watched:
    """A page of the console and what it did: dialogs, requests, errors."""

    page: Page
    url: str
    store: RunStore
    dialogs: list[str] = attrs.Factory(list)
    requests: list[str] = attrs.Factory(list)
    errors: list[str] = attrs.Factory(list)

    def open(self, fragment: str = "") -> None:
        self.page.goto(f"{self.url}/console{fragment}")
        expect(self.page.locator("#live-text")).to_have_text("live")

    def assert_clean(self) -> None:
        """Nothing from another origin, no dialog, no error (a policy violation is one)."""
        foreign = [url for url in self.requests if not url.startswith(self.url + "/")]
        assert foreign == [], foreign
        assert self.dialogs == []
        assert self.errors == []


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_FLAGS))
        yield launched
        launched.close()


@pytest.fixture
def store() -> RunStore:
    return RunStore()


@pytest.fixture
def runs(store: RunStore) -> dict[str, Run]:
    """One of each outcome, already in the store when the page opens."""
    made = one_of_each()
    for run in made.values():
        store.add(run)
    return made


@pytest.fixture
def console(browser: Browser, store: RunStore) -> Iterator[Watched]:
    with serve_console(store) as url:
        context = browser.new_context(
            http_credentials={"username": "operator", "password": SECRET},
            viewport={"width": 1400, "height": 900},
            color_scheme="light",
        )
        page = context.new_page()
        watched = Watched(page, url, store)

        def on_dialog(dialog: Dialog) -> None:
            watched.dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("request", lambda request: watched.requests.append(request.url))
        page.on("pageerror", lambda error: watched.errors.append(str(error)))
        page.on("console", lambda message: message.type == "error" and watched.errors.append(message.text))
        yield watched
        context.close()


def test_new_runs_appear_on_their_own_within_two_seconds(console: Watched) -> None:
    console.open()
    page = console.page
    page.evaluate("window.__sameDocument = true")
    expect(page.locator("#runs-empty")).to_be_visible()
    samples = list(one_of_each().values())
    waits = []
    for batch in (samples[:3], samples[3:7], samples[7:]):
        added = time.monotonic()
        for run in batch:
            console.store.add(run)
        waits += [wait_for_row(page, run.id, added) for run in batch]
    assert max(waits) < ROW_DEADLINE_S, waits
    # Newest first, and the page was never reloaded.
    shown = page.locator("#runs tr").evaluate_all("rows => rows.map(r => r.dataset.id)")
    assert shown == [run.id for run in reversed(samples)]
    assert page.evaluate("window.__sameDocument") is True
    console.assert_clean()


def test_the_list_keeps_a_few_hundred_rows_while_runs_stream_in(console: Watched) -> None:
    console.open()
    page = console.page
    made = []
    for count in (150, 150, 100):
        batch = [order_run(speed=0.5) for _ in range(count)]
        for run in batch:
            console.store.add(run)
        made += batch
        expect(page.locator("#runs tr").first).to_have_attribute("data-id", batch[-1].id)
    expect(page.locator("#runs tr")).to_have_count(300)
    expect(page.locator("#older")).to_be_visible()
    # A burst larger than one poll's page starts the list again from the newest.
    burst = [order_run() for _ in range(250)]
    for run in burst:
        console.store.add(run)
    expect(page.locator("#runs tr").first).to_have_attribute("data-id", burst[-1].id)
    expect(page.locator("#runs tr")).to_have_count(50)
    page.click("#older")
    expect(page.locator("#runs tr")).to_have_count(100)
    shown = page.locator("#runs tr").evaluate_all("rows => rows.map(r => Number(r.dataset.seq))")
    assert shown == list(range(len(made) + 250, len(made) + 150, -1))
    console.assert_clean()


def test_a_paid_run_draws_six_participants_and_every_call_with_its_answer(
    console: Watched, runs: dict[str, Run]
) -> None:
    paid = runs["paid"]
    # The fragment makes a run linkable.
    console.open(f"#run={paid.id}")
    page = console.page
    expect(page.locator("#detail dd[data-field='run ID']")).to_have_text(paid.id)
    check_diagram_shows_calls(page, paid)
    assert len(paid.participants) == 6
    assert "201 Created" in page.locator("#detail svg.seq").text_content()
    expect(row(page, paid.id)).to_have_attribute("aria-selected", "true")
    # The time axis gives each call's own and wire time.
    profiles = page.locator("#detail svg.axis g.row").last
    expect(profiles.locator("text.fig")).to_have_text(["1.60", "0.70", "0.90"])

    cancelled = runs["cancelled"]
    open_run(page, cancelled.id)
    check_diagram_shows_calls(page, cancelled)
    expect(page.locator("#detail svg.seq g.msg.answer.refusal text.label")).to_have_text("406 Insufficient funds")
    assert page.url.endswith(f"#run={cancelled.id}")
    console.assert_clean()


def test_a_stopped_run_marks_step_5_with_its_code_and_reason(console: Watched, runs: dict[str, Run]) -> None:
    console.open()
    stopped = runs["stopped"]
    open_run(console.page, stopped.id)
    check_diagram_shows_calls(console.page, stopped)
    check_stopped_at(console.page, 5, "pay", "pay_failed", "unavailable")

    # No answer at all: the arrow ends in a cross, and no answer is drawn for it.
    timeout = runs["timeout"]
    open_run(console.page, timeout.id)
    check_stopped_at(console.page, 3, "create_order", "create_order_failed", "timeout")
    expect(console.page.locator("#detail svg.seq g.msg.call.failed path.lost")).to_have_count(1)
    console.assert_clean()


def test_a_run_whose_letter_is_pending_shows_the_missing_letter(console: Watched, runs: dict[str, Run]) -> None:
    console.open()
    open_run(console.page, runs["letter_pending"].id)
    expect(console.page.locator("#detail svg.seq g.note.pending")).to_contain_text("letter pending")
    expect(console.page.locator("#detail svg.seq g.note.failure text")).to_have_text("step 9 notify: unavailable")
    expect(console.page.locator("#detail .notice.letter")).to_be_visible()
    console.assert_clean()


def test_a_replay_links_to_its_first_run(console: Watched, runs: dict[str, Run]) -> None:
    console.open()
    open_run(console.page, runs["replay"].id)
    check_replay_links_to(console.page, runs["stopped"].id)
    console.assert_clean()


def test_the_search_finds_a_run_by_its_trace_id_and_opens_it(console: Watched, runs: dict[str, Run]) -> None:
    console.open()
    wanted = runs["registration"]
    assert search(console.page, wanted.trace_id) == [wanted.id]
    expect(console.page.locator("#detail dd[data-field='trace ID']")).to_have_text(wanted.trace_id)
    expect(console.page.locator("#detail svg.seq g.box")).to_have_count(5)
    # Cleared, the list is whole again.
    console.page.fill("#q", "")
    console.page.press("#q", "Enter")
    expect(console.page.locator("#runs tr")).to_have_count(len(runs))
    console.assert_clean()


def test_the_outcome_filter_and_the_keyboard(console: Watched, runs: dict[str, Run]) -> None:
    console.open()
    page = console.page
    page.select_option("#outcome", "stopped")
    expect(page.locator("#runs tr")).to_have_count(2)
    expect(page.locator("#runs tr .badge")).to_have_text(["stopped", "stopped"])
    page.select_option("#outcome", "")
    expect(page.locator("#runs tr")).to_have_count(len(runs))
    # Tab reaches the list; the arrows open the next runs; Escape closes.
    row(page, runs["script"].id).focus()
    page.keyboard.press("ArrowDown")
    expect(page.locator("#detail dd[data-field='run ID']")).to_have_text(runs["img"].id)
    page.keyboard.press("Escape")
    expect(page.locator("#detail svg.seq")).to_have_count(0)
    # The summary follows its selector.
    expect(page.locator("#summary tr.total")).to_contain_text("whole answer")
    with page.expect_request(lambda request: "last=100" in request.url):
        page.select_option("#last", "100")
    console.assert_clean()


def test_what_a_customer_typed_is_shown_as_text_and_runs_nothing(console: Watched, runs: dict[str, Run]) -> None:
    hostile = attrs.evolve(
        order_run("stopped", key='"><img src=x onerror="window.__pwned=1">'),
        user_id="<svg onload=window.__pwned=2>",
        outcome_text="stopped <script>window.__pwned=3</script>",
    )
    call = attrs.evolve(hostile.calls[2], status_text="<img src=x onerror=window.__pwned=4>", code="<b>x</b>")
    hostile = attrs.evolve(hostile, calls=[*hostile.calls[:2], call])
    console.store.add(hostile)
    console.open()
    page = console.page
    for name in ("img", "script"):
        open_run(page, runs[name].id)
        expect(page.locator("#detail dd[data-field='Idempotency-Key']")).to_have_text(runs[name].idempotency_key)
    open_run(page, hostile.id)
    expect(page.locator("#detail dd[data-field='Idempotency-Key']")).to_have_text(hostile.idempotency_key)
    expect(page.locator("#detail svg.seq g.msg.answer.failed text.label")).to_have_text(
        "503 <img src=x onerror=window.__pwned=4>"
    )
    assert search(page, hostile.idempotency_key) == [hostile.id]
    expect(row(page, hostile.id).locator("td.user")).to_have_text(hostile.user_id)
    # Nothing the data held became an element: one image (the logo), one script, no handler.
    assert page.evaluate("document.images.length") == 1
    assert page.evaluate("document.scripts.length") == 1
    handlers = "[...document.querySelectorAll('*')].filter(e => [...e.attributes].some(a => a.name.startsWith('on')))"
    assert page.evaluate(f"{handlers}.length") == 0
    assert page.evaluate("window.__pwned") is None
    console.assert_clean()


def test_a_screenful_of_traffic_draws_cleanly(console: Watched, store: RunStore, tmp_path: Path) -> None:
    """A minute of mixed runs, one open; the README's picture comes from real orders
    (``tests/e2e/test_console_live.py``)."""
    # A minute of traffic, then one run of each outcome.
    rng = random.Random(7)
    for index in range(60):
        outcome = rng.choices(["paid", "cancelled", "letter_pending", "stopped", "registration"], [70, 15, 3, 3, 9])[0]
        started = now_iso(index - 75 + rng.random())
        if outcome == "registration":
            store.add(registration_run(started_at=started))
        else:
            store.add(order_run(outcome, speed=rng.lognormvariate(0, 0.35), started_at=started))
    samples = one_of_each()
    for index, run in enumerate(samples.values()):
        store.add(attrs.evolve(run, started_at=now_iso(index - 12 + rng.random())))
    paid = samples["paid"]
    console.open(f"#run={paid.id}")
    page = console.page
    check_diagram_shows_calls(page, paid)
    expect(page.locator("#summary tr.total")).to_contain_text("whole answer")
    # Past the new rows' highlight.
    page.wait_for_timeout(2600)
    shot = tmp_path / "console.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 20_000
    console.assert_clean()
