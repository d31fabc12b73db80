"""The background pruner: bounded rounds of ``PruneWrite`` through the store's single writer.

Each round is one write request in the same group-commit queue as every saga write, removing at
most ``prune_batch`` expired sagas; a full round is followed at once by another, otherwise the
next comes ``prune_interval_s`` later. A round that finds nothing expired (one read-only look)
submits nothing, so an idle store sees no extra commits. Runs on the runtime's timer service,
so a ``ManualClock`` drives it in tests.
"""

from __future__ import annotations

import logging
import threading

from saga_journey.persistence.ports import Store
from saga_journey.persistence.store import PruneResult, PruneWrite

from .clock import Clock
from .config import RuntimeConfig
from .observer import RuntimeObserver
from .timers import TimerHandle, TimerService

log = logging.getLogger("saga_journey.retention")

MIN_INTERVAL_S = 1.0  # a zero, negative or NaN prune_interval_s must not spin the timer thread


class Pruner:
    def __init__(
        self, store: Store, timers: TimerService, clock: Clock, config: RuntimeConfig,
        observer: RuntimeObserver,
    ) -> None:
        self._store, self._timers, self._clock = store, timers, clock
        self._config, self._observer = config, observer
        self._lock = threading.Lock()
        self._handle: TimerHandle | None = None
        self._closed = False
        self.rounds = 0
        self.idle = threading.Event()
        """Set by a round that found nothing expired (tests wait on it instead of sleeping)."""

    @property
    def interval(self) -> float:
        return max(MIN_INTERVAL_S, self._config.prune_interval_s)

    def start(self) -> None:
        self._schedule(self.interval)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._handle is not None:
                self._handle.cancel()

    def _schedule(self, delay: float) -> None:
        with self._lock:
            if not self._closed:
                self._handle = self._timers.call_later(delay, self.run_round)

    def run_round(self) -> None:
        """Look for expired sagas; prune one bounded batch through the writer if there are any."""
        now = self._clock.now()
        retention = self._config.retention_s
        keep = max(0, self._config.feed_retention_entries)
        try:
            if not self._store.count_expired(now, retention, limit=1) and not self._store.feed_pending(keep):
                self.idle.set()
                self._finish(more=False)
                return
            self.idle.clear()
            op = PruneWrite(now, retention, max(1, self._config.prune_batch), feed_keep=keep,
                            feed_budget=max(1, self._config.feed_sweep_batch))
            self._store.submit([op], lambda error: self._committed(op, error))
        except Exception as exc:  # e.g. the store closed under us: try again later
            log.warning("retention round failed: %s", exc, extra={"error": str(exc)})
            self._finish(more=False)

    def _committed(self, op: PruneWrite, error: BaseException | None) -> None:
        if error is not None:
            log.warning("retention round failed: %s", error, extra={"error": str(error)})
            self._finish(more=False)
            return
        result = op.result
        if result.pruned:
            self._observer.on_sagas_pruned(dict(result.pruned))
            log.info(
                "pruned %d finished saga(s) (%d records)%s", result.sagas, result.records,
                "; more are expired" if result.more else "",
                extra={"pruned": result.sagas, "records": result.records, "more": result.more},
            )
        # Straight on after a round that removed something: the next one finds the rest, or
        # nothing (then the pruner is idle until the next interval).
        if result.feed_removed:
            log.debug("removed %d commit-feed entries", result.feed_removed, extra={"feed_removed": result.feed_removed})
        more = bool(result.pruned or result.feed_removed) or result.more or result.feed_more
        if not more:
            self.idle.set()  # a round that found nothing to do (e.g. a feed pass that was owed)
        self._finish(more=more)

    def _finish(self, *, more: bool) -> None:
        self.rounds += 1
        self._schedule(0.0 if more else self.interval)


def prune_round(store: Store, observer: RuntimeObserver, config: RuntimeConfig, now: float,
                older_than_s: float, limit: int) -> PruneResult:
    """One bounded round of pruning by hand (``saga-journey prune``, ``POST /v1/admin/prune``),
    through the store's single writer, counted in the same metrics as the background rounds.
    It also does a round of commit-feed work (``config.feed_*``)."""
    op = PruneWrite(now, older_than_s, max(1, limit), feed_keep=max(0, config.feed_retention_entries),
                    feed_budget=max(1, config.feed_sweep_batch))
    store.write([op])  # blocks until committed: call it off the event loop
    result = op.result
    if result.pruned:
        observer.on_sagas_pruned(dict(result.pruned))
        log.info("pruned %d finished saga(s) by request (%d records)%s", result.sagas, result.records,
                 "; more are expired" if result.more else "",
                 extra={"pruned": result.sagas, "records": result.records, "more": result.more})
    return result
