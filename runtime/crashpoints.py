"""Named crash points for the fault-injection suite (test-only; off unless an env var is set).

``SAGA_JOURNEY_CRASH="point:nth[,point:nth...]"`` makes the process SIGKILL itself the n-th
time ``hit(point)`` runs for that point. ``SAGA_JOURNEY_CRASH_MARK=<file>`` (optional) gets the
point's name, fsynced, just before the kill, so a harness knows which point fired.

Under ``serve --workers`` every worker inherits the supervisor's environment, so two more,
read by ``worker_started`` where a worker starts: ``SAGA_JOURNEY_CRASH_WORKER=I`` keeps
``SAGA_JOURNEY_CRASH`` armed in worker ``I`` only; ``SAGA_JOURNEY_CRASH_ARM_DIR=<dir>`` makes worker
``I`` (re)arm itself from ``<dir>/wI.arm`` whenever that file appears (taken and deleted; checked
before recovery and then every 10 ms; an empty file disarms) and mark to ``<dir>/wI.mark``, so a
harness arms one worker's current life without restarting the supervisor.

Disabled, ``hit`` is one module-global ``None`` test. Called from the shells only (actors,
store), never from the pure core.
"""

from __future__ import annotations

import os
import signal
import threading

ENV = "SAGA_JOURNEY_CRASH"
MARK_ENV = "SAGA_JOURNEY_CRASH_MARK"
WORKER_ENV = "SAGA_JOURNEY_CRASH_WORKER"
ARM_DIR_ENV = "SAGA_JOURNEY_CRASH_ARM_DIR"

AFTER_DECIDE = "saga.after_decide"  # the core decided; the write is not yet submitted
MID_BATCH = "store.mid_batch"  # inside the writer's transaction, before commit
AFTER_COMMIT = "store.after_commit"  # committed, callbacks not yet run
BEFORE_REPLY = "saga.before_reply"  # commit confirmed to the actor; no reply, no effects yet
BEFORE_HANDLER = "comp.before_handler"  # compensator about to call the handler
AFTER_HANDLER = "comp.after_handler"  # handler returned; its outcome not yet reported
AFTER_COMP_RECORDED = "saga.after_comp_recorded"  # a compensation outcome is committed
POINTS = (
    AFTER_DECIDE, MID_BATCH, AFTER_COMMIT, BEFORE_REPLY,
    BEFORE_HANDLER, AFTER_HANDLER, AFTER_COMP_RECORDED,
)

_plan: dict[str, int] | None = None
_counts: dict[str, int] = {}
_lock = threading.Lock()


def parse(spec: str) -> dict[str, int]:
    """``"point:nth,..."`` -> {point: nth}; unknown points and bad counts are refused."""
    plan: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, nth = part.partition(":")
        if name not in POINTS:
            raise ValueError(f"unknown crash point {name!r}; known: {', '.join(POINTS)}")
        try:
            n = int(nth or "1")
        except ValueError:
            raise ValueError(f"crash point {name!r}: count {nth!r} is not an integer") from None
        if n < 1:
            raise ValueError(f"crash point {name!r}: count must be >= 1")
        plan[name] = n
    return plan


def configure(spec: str | None) -> None:
    """Arm (or with None/"" disarm) crash points; reads the env var at import."""
    global _plan
    with _lock:
        _counts.clear()
        _plan = parse(spec) or None if spec else None


def hit(point: str) -> None:
    if _plan is None:
        return
    _hit(point)


def _hit(point: str) -> None:
    plan = _plan
    if plan is None or point not in plan:
        return
    with _lock:
        n = _counts[point] = _counts.get(point, 0) + 1
    if n == plan[point]:
        _kill(point)


def _kill(point: str) -> None:
    mark = os.environ.get(MARK_ENV)
    if mark:
        fd = os.open(mark, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, point.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


def worker_started(index: int) -> None:
    """A worker of ``serve --workers`` starts (before its store opens): see the module doc."""
    only = os.environ.get(WORKER_ENV)
    if only is not None and only.strip() != str(index):
        configure(None)
    folder = os.environ.get(ARM_DIR_ENV)
    if not folder:
        return
    os.environ[MARK_ENV] = os.path.join(folder, f"w{index}.mark")
    arm = os.path.join(folder, f"w{index}.arm")
    _take(arm)
    threading.Thread(target=_poll, args=(arm,), name="crashpoint-arm", daemon=True).start()


def _take(path: str) -> None:
    try:
        with open(path, encoding="utf-8") as f:
            spec = f.read().strip()
        os.unlink(path)
    except FileNotFoundError:
        return
    configure(spec or None)


def _poll(path: str) -> None:
    import time

    while True:
        time.sleep(0.01)
        _take(path)


configure(os.environ.get(ENV))
