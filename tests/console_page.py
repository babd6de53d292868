"""The operator console in a browser: a waitress server for a store of runs, and checks
of what the page shows that take a Playwright ``Page`` and a run, whoever made the run
(the samples of ``tests.console_samples`` or a real stack's orders)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import falcon
import waitress
from playwright.sync_api import Locator, Page, expect

from orchestrator.console import RunStore, add_console
from orchestrator.console.runs import Run
from services.common.web import base_app

SECRET = "console-test-secret"
# A row must be on the page this long after the gateway answered.
ROW_DEADLINE_S = 2.0


@contextlib.contextmanager
def serve_console(store: RunStore, secret: str = SECRET) -> Iterator[str]:
    """The console of ``store`` on a real waitress server, on a free port."""
    app: falcon.App = base_app("gateway", max_body=65_536)
    add_console(app, store, secret)
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.close()
        thread.join(timeout=10)


def row(page: Page, run_id: str) -> Locator:
    return page.locator(f'#runs tr[data-id="{run_id}"]')


def wait_for_row(page: Page, run_id: str, since: float) -> float:
    """Seconds from ``since`` (``time.monotonic()`` when the run was added) until its row showed."""
    expect(row(page, run_id)).to_be_attached(timeout=ROW_DEADLINE_S * 1000 + 500)
    return time.monotonic() - since


def open_run(page: Page, run_id: str) -> None:
    """Click the run's row and wait for its diagram."""
    row(page, run_id).click()
    expect(page.locator("#detail dd[data-field='run ID']")).to_have_text(run_id)


def participants(page: Page) -> list[str]:
    return page.locator("#detail svg.seq g.box").evaluate_all("boxes => boxes.map(b => b.dataset.participant)")


def call_labels(page: Page) -> list[str]:
    return page.locator("#detail svg.seq g.msg.call text.label").all_text_contents()


def answer_labels(page: Page) -> list[str]:
    return page.locator("#detail svg.seq g.msg.answer text.label").all_text_contents()


def check_diagram_shows_calls(page: Page, run: Run) -> None:
    """One lifeline per participant, one arrow per call labelled ``METHOD route``, and
    each answer labelled with its status, as the run holds them."""
    assert participants(page) == run.participants
    assert call_labels(page) == [f"{call.method} {call.route}" for call in run.calls]
    answered = [f"{call.status} {call.status_text}" for call in run.calls if call.status is not None]
    assert sorted(answer_labels(page)) == sorted(answered)
    bars = page.locator("#detail svg.axis g.row")
    expect(bars).to_have_count(len(run.calls))


def check_stopped_at(page: Page, step: int, step_name: str, code: str, reason: str) -> None:
    """The failed call is red, numbered with its step, noted with the step, code and
    reason, and no call follows it."""
    failed = page.locator(f"#detail svg.seq g.msg.call.failed[data-step='{step}']")
    expect(failed).to_have_count(1)
    expect(page.locator("#detail svg.seq g.step.failed text")).to_have_text(str(step))
    expect(page.locator("#detail svg.seq g.note.failure text")).to_have_text(
        f"step {step} {step_name}: {code}, {reason}"
    )
    steps = page.locator("#detail svg.seq g.msg.call").evaluate_all(
        "calls => calls.map(c => Number(c.dataset.step || 0))"
    )
    assert max(steps) == step, f"a call after the failed step: {steps}"
    expect(page.locator("#detail .notice.stop")).to_contain_text(f"Stopped at step {step} ({step_name})")


def check_replay_links_to(page: Page, first_id: str) -> None:
    """The replay names its first run, and the link opens it."""
    link = page.locator("#detail a.replay-of")
    expect(link).to_have_text(first_id)
    link.click()
    expect(page).to_have_url(f"{page.url.split('#')[0]}#run={first_id}")
    expect(page.locator("#detail dd[data-field='run ID']")).to_have_text(first_id)


def search(page: Page, text: str) -> list[str]:
    """The IDs of the rows the search box leaves."""
    page.fill("#q", text)
    page.press("#q", "Enter")
    expect(page.locator("#runs tr")).to_have_count(1)
    return page.locator("#runs tr").evaluate_all("rows => rows.map(r => r.dataset.id)")
