"""The console's store of recent runs: bounded, numbered, paged newest first, searched
by any ID a log line or an error body gives, replays linked to their first run, and
percentiles per step."""

from __future__ import annotations

import threading

import attrs
import pytest

from orchestrator.console import store as store_module
from orchestrator.console.runs import Run, StepTime, brief
from orchestrator.console.store import RunStore
from tests.console_samples import one_of_each, order_run, registration_run


def _with_times(run: Run, total: float, step5: float) -> Run:
    return attrs.evolve(run, duration_ms=total, steps=[StepTime(2, "authorize", 0.1), StepTime(5, "pay", step5)])


def test_add_numbers_runs_in_order_and_get_returns_the_numbered_run() -> None:
    store = RunStore()
    first, second = order_run(), order_run()

    assert (store.add(first), store.add(second)) == (1, 2)
    assert store.get(second.id) == attrs.evolve(second, seq=2)
    assert store.last == 2
    assert store.get("no-such-run") is None


def test_the_store_keeps_only_the_newest_runs_up_to_its_capacity() -> None:
    store = RunStore(capacity=3)
    runs = [order_run() for _ in range(5)]
    for run in runs:
        store.add(run)

    assert len(store) == 3
    assert [run.seq for run in store.page(limit=10)] == [5, 4, 3]
    assert store.get(runs[0].id) is None and store.get(runs[1].id) is None
    assert store.get(runs[2].id) is not None
    assert store.last == 5


def test_a_run_id_is_stored_once() -> None:
    store = RunStore()
    run = order_run()
    store.add(run)
    with pytest.raises(ValueError, match="already stored"):
        store.add(run)
    assert len(store) == 1


def test_a_store_holds_at_least_one_run() -> None:
    with pytest.raises(ValueError):
        RunStore(capacity=0)


def test_pages_are_newest_first_after_and_before_a_seq_and_limited() -> None:
    store = RunStore()
    for _ in range(10):
        store.add(order_run())

    def seqs(**query: object) -> list[int]:
        return [run.seq for run in store.page(**query)]

    assert seqs(limit=4) == [10, 9, 8, 7]
    assert seqs(before=7, limit=4) == [6, 5, 4, 3]
    assert seqs(after=7, limit=50) == [10, 9, 8]
    assert seqs(after=3, before=6, limit=50) == [5, 4]
    assert seqs(after=10, limit=50) == []


def test_pages_filter_by_outcome() -> None:
    store = RunStore()
    runs = one_of_each()
    for run in runs.values():
        store.add(run)

    stopped = store.page(outcome="stopped", limit=50)
    assert {run.id for run in stopped} == {runs["stopped"].id, runs["timeout"].id}
    assert [run.id for run in store.page(outcome="registered", limit=50)] == [runs["registration"].id]
    assert store.page(outcome="registration_failed", limit=50) == []


@pytest.mark.parametrize("field", ["id", "order_id", "request_id", "trace_id", "idempotency_key"])
def test_search_finds_a_run_by_any_of_its_ids_whole(field: str) -> None:
    store = RunStore()
    runs = [order_run() for _ in range(5)]
    for run in runs:
        store.add(run)
    wanted = runs[2]

    found = store.page(query=getattr(wanted, field), limit=50)

    assert [run.id for run in found] == [wanted.id]


def test_search_finds_a_run_by_the_start_of_an_id_of_at_least_eight_characters() -> None:
    store = RunStore()
    runs = [order_run() for _ in range(5)]
    for run in runs:
        store.add(run)
    trace = runs[1].trace_id

    assert [run.id for run in store.page(query=trace[:8], limit=50)] == [runs[1].id]
    assert [run.id for run in store.page(query=f"  {trace.upper()}\n", limit=50)] == [runs[1].id]
    # Seven characters could name many runs: only a whole ID matches that short.
    assert store.page(query=trace[:7], limit=50) == []


def test_search_matches_an_idempotency_key_exactly_as_the_client_wrote_it() -> None:
    store = RunStore()
    store.add(order_run(key="Order-Key-Upper"))

    assert len(store.page(query="Order-Key-Upper", limit=50)) == 1
    assert store.page(query="order-key-upper", limit=50) == []


def test_a_replay_links_to_the_first_run_with_its_key_and_user() -> None:
    store = RunStore()
    runs = one_of_each()
    store.add(runs["stopped"])
    store.add(order_run(key=runs["stopped"].idempotency_key))  # another customer, same key
    store.add(runs["replay"])

    replay = store.get(runs["replay"].id)
    assert replay is not None and replay.replay_of == runs["stopped"].id
    assert store.first_with_key(runs["stopped"].user_id, "retry-me-0001") == store.get(runs["stopped"].id)
    assert store.get(runs["stopped"].id).replay_of is None


def test_a_replay_whose_first_run_was_dropped_links_to_the_earliest_run_still_held() -> None:
    store = RunStore(capacity=4)
    first = order_run("stopped", key="k-1")
    same = {"key": "k-1", "user_id": first.user_id, "order_id": first.order_id, "replayed": True}
    second, third = order_run(**same), order_run(**same)
    for run in (first, order_run(), second, order_run(), order_run()):
        store.add(run)
    assert store.get(first.id) is None

    store.add(third)

    assert store.get(third.id).replay_of == second.id
    assert store.first_with_key(first.user_id, "k-1").id == second.id


def test_letting_the_oldest_run_go_does_not_look_through_every_run_held(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every order carries a key (the client's or the gateway's), so a full store lets
    # one go per order: that must cost the same with 1,000 runs held as with ten.
    store = RunStore(capacity=1000)
    for _ in range(1000):
        store.add(order_run())
    looked = []
    real_key = store_module._key

    def counting(run: Run) -> tuple[str, str] | None:
        looked.append(run)
        return real_key(run)

    monkeypatch.setattr(store_module, "_key", counting)
    store.add(order_run())
    assert len(looked) <= 2 and len(store) == 1000


def test_a_run_without_an_order_is_no_replays_first_run() -> None:
    store = RunStore()
    refused = order_run("refused", key="k-2")
    store.add(refused)
    assert store.first_with_key(refused.user_id, "k-2") is None
    replay = order_run(key="k-2", user_id=refused.user_id, replayed=True)
    store.add(replay)
    assert store.get(replay.id).replay_of is None


def test_summary_gives_nearest_rank_percentiles_per_step_and_of_the_total() -> None:
    store = RunStore()
    store.add(registration_run())  # not an order: left out
    # Ten orders whose step 5 took 1..10 ms, in a scrambled order, totals 10..100 ms.
    for ms in (7, 3, 10, 1, 9, 5, 2, 8, 4, 6):
        store.add(_with_times(order_run(), total=ms * 10.0, step5=float(ms)))

    summary = store.summary(last=500)

    # Ten sorted values: p50 is at rank round(0.5 × 9) = 4 (round half to even), the
    # 5th value; p99 at rank round(0.99 × 9) = 9, the 10th.
    assert summary.runs == 10
    assert [(step.number, step.name, step.count) for step in summary.steps] == [(2, "authorize", 10), (5, "pay", 10)]
    assert (summary.steps[1].p50_ms, summary.steps[1].p99_ms) == (5.0, 10.0)
    assert (summary.total.count, summary.total.p50_ms, summary.total.p99_ms) == (10, 50.0, 100.0)


def test_summary_covers_only_the_last_n_orders() -> None:
    store = RunStore()
    for ms in (100, 200, 1, 2, 3, 4):
        store.add(_with_times(order_run(), total=ms, step5=ms))
    store.add(registration_run())

    summary = store.summary(last=4)

    # The newest four orders: 1, 2, 3, 4 ms; p50 at rank round(1.5) = 2, the 3rd value.
    assert summary.runs == 4
    assert (summary.total.p50_ms, summary.total.p99_ms) == (3.0, 4.0)


def test_summary_of_an_empty_store_has_no_percentiles() -> None:
    summary = RunStore().summary(last=100)
    assert summary.runs == 0 and summary.steps == []
    assert (summary.total.count, summary.total.p50_ms, summary.total.p99_ms) == (0, None, None)


def test_parallel_adds_keep_every_seq_once_and_the_bound() -> None:
    store = RunStore(capacity=1000)
    threads, per_thread = 8, 400
    made = [[order_run() for _ in range(per_thread)] for _ in range(threads)]
    seqs: list[list[int]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads)

    def add_all(index: int) -> None:
        start.wait()
        for run in made[index]:
            seqs[index].append(store.add(run))
            store.page(limit=5)

    workers = [threading.Thread(target=add_all, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    every = sorted(seq for part in seqs for seq in part)
    assert every == list(range(1, threads * per_thread + 1))
    # Each thread's own adds were numbered in the order it made them.
    assert all(part == sorted(part) for part in seqs)
    held = store.page(limit=200)
    assert len(store) == 1000 and [run.seq for run in held] == list(range(3200, 3000, -1))
    assert all(store.get(run.id) == run for run in held)


def test_a_brief_run_leaves_out_the_drawing() -> None:
    run = one_of_each()["paid"]
    row = brief(run)
    assert {"calls", "steps", "participants"}.isdisjoint(row)
    assert row["id"] == run.id and row["outcome"] == "paid" and row["total"] == 12_345
