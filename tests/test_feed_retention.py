"""The commit feed (the SSE history) stays bounded: entries of pruned sagas are swept, entries
past ``feed_retention_entries`` go oldest first (moving the floor), each round bounded; a stream
resuming from below the floor is told (410) rather than silently missing events."""

from __future__ import annotations

from saga_journey.persistence.keys import scoped_key
from saga_journey.persistence.verify import verify
from saga_journey.runtime import ManualClock

from tests.test_retention import (
    HOUR,
    UC,
    complete,
    design,
    ids,
    open_orch,
    prune_rounds,
)


def feed_rows(orch) -> list[tuple[int, bytes]]:
    store = orch.store
    with store._env.begin() as txn:  # test-only look at the raw feed db
        return [(int.from_bytes(k, "big"), bytes(v)) for k, v in txn.cursor(db=store._feed)]


def history_count(orch, saga_ids) -> int:
    return sum(len(orch.store.load_history(scoped_key("acme", s))) for s in saga_ids)


def test_pruned_sagas_leave_no_feed_entries_and_live_ones_keep_all(tmp_path) -> None:
    clock = ManualClock()
    orch, _ = open_orch(tmp_path / "d", clock, retention_s=24 * HOUR, prune_batch=3, feed_sweep_batch=7)
    try:
        plain = design(orch, "plain")
        for i in range(8):
            complete(orch, plain, f"old-{i}")
        clock.advance(12 * HOUR)
        for i in range(3):
            complete(orch, plain, f"new-{i}")
        orch.execute_saga_journey_sync(plain, "u1", {}, UC, saga_id="running")
        before = len(feed_rows(orch))
        assert before == history_count(orch, ids(orch))

        prune_rounds(orch, clock, 13 * HOUR)  # the old ones expire; 3 per round, 7 feed entries per round
        kept = {"new-0", "new-1", "new-2", "running"}
        assert ids(orch) == kept
        rows = feed_rows(orch)
        assert len(rows) == history_count(orch, kept) < before
        named = {bytes(v[:-4]) for _, v in rows}
        assert all(k.startswith((b"acme/new-", b"acme/running")) for k in named)
        assert orch.store.feed_floor() == 0  # the sweep removes only dead entries: no floor
        assert not orch.store.feed_pending(orch.config.feed_retention_entries)
        # the stream of what is left replays exactly the live sagas' history
        got, _ = orch.store.feed_scan(0, 10_000)
        assert len(got) == len(rows)
    finally:
        orch.close()
    report = verify(str(tmp_path / "d"))
    assert report.ok, report.to_dict()


def test_feed_retention_keeps_the_newest_entries_and_raises_the_floor(tmp_path) -> None:
    clock = ManualClock()
    orch, _ = open_orch(tmp_path / "d", clock, feed_retention_entries=10, feed_sweep_batch=4)
    try:
        plain = design(orch, "plain")
        for i in range(4):  # 5 history entries each: 20 feed entries
            complete(orch, plain, f"s-{i}")
        end = orch.store.feed_end()
        assert len(feed_rows(orch)) == 20 and end == 20
        prune_rounds(orch, clock, 61.0)  # rounds of at most 4 entries until 10 are left
        rows = feed_rows(orch)
        assert [p for p, _ in rows] == list(range(11, 21))
        assert orch.store.feed_floor() == 10
        assert ids(orch) == {f"s-{i}" for i in range(4)}  # sagas themselves are kept
    finally:
        orch.close()


def test_a_round_looks_at_no_more_than_its_feed_budget(tmp_path) -> None:
    from saga_journey.persistence.store import PruneWrite
    from saga_journey.runtime import SagaOrchestrator
    from saga_journey.runtime.config import RuntimeConfig

    from tests.test_retention import HANDLERS

    clock = ManualClock()  # never advanced: the background pruner does not run
    orch = SagaOrchestrator.open(str(tmp_path / "d"), clock=clock, handlers=HANDLERS, config=RuntimeConfig())
    try:
        plain = design(orch, "plain")
        for i in range(3):
            complete(orch, plain, f"s-{i}")
        op = PruneWrite(clock.now(), None, 10, feed_keep=5, feed_budget=4)
        orch.store.write([op])
        assert op.result.feed_removed == 4 and op.result.feed_more
        assert len(feed_rows(orch)) == 11 and orch.store.feed_floor() == 4
        op = PruneWrite(clock.now(), None, 10, feed_keep=5, feed_budget=100)
        orch.store.write([op])
        assert len(feed_rows(orch)) == 5 and orch.store.feed_floor() == 10
    finally:
        orch.close()
