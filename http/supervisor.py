"""``saga-journey serve --workers N``: start N worker processes over one sharded data folder,
restart any that dies, stop them all on SIGTERM/SIGINT.

Each worker is ``saga-journey serve`` with the same options plus ``--worker-index I``: it owns
the shards ``s`` with ``s % N == I`` (``shard_map.owned_shards``), reads the others, listens on
the shared port (SO_REUSEPORT: the kernel spreads connections over the workers) and on its hop
socket (``hop.peer_address``). The supervisor holds the port bound (not listening) for its whole
life, so a restarted worker binds it again; it tells the operator which worker owns what in
``workers.json`` in the hop folder, and prints one line once every worker is ready.

A worker that fails before it is ready stops the whole start (its error is the answer: a bad
config would fail every restart too). One that dies after is restarted with a back-off that
grows while it keeps dying young; the others serve meanwhile, and a request for its sagas is
answered 503 with Retry-After until it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from saga_journey.persistence.shard_layout import write_atomically
from saga_journey.persistence.shard_map import owned_shards
from saga_journey.runtime.errors import InvalidInputError

from .hop import hop_folder

log = logging.getLogger("saga_journey.http")

READY_FD_ENV = "SAGA_JOURNEY_READY_FD"
STATE_FILE = "workers.json"
MIN_BACKOFF_S = 0.2
MAX_BACKOFF_S = 10.0
YOUNG_S = 10.0  # a worker dying younger than this doubles the back-off of its next restart
STOP_MARGIN_S = 15.0  # past the gateway's shutdown timeout, a worker still running is killed


def parse_workers(raw: str) -> int:
    """``--workers``: a count from 1, or ``auto`` (the cores this process may run on)."""
    text = raw.strip().lower()
    if text == "auto":
        return max(1, len(os.sched_getaffinity(0)))
    if not text.isdigit() or not 1 <= int(text) <= 256:
        raise InvalidInputError(f"--workers must be a number from 1 to 256 or 'auto'; got {raw!r}")
    return int(text)


@dataclass
class Worker:
    index: int
    process: asyncio.subprocess.Process | None = None
    started: float = 0.0
    restarts: int = 0
    backoff_s: float = MIN_BACKOFF_S
    ready: asyncio.Future[None] | None = None

    def began(self, process: asyncio.subprocess.Process, ready: asyncio.Future[None]) -> None:
        """A new life: its process, and the future its readiness pipe resolves."""
        self.process = process
        self.ready = ready
        self.started = time.monotonic()

    def ended(self) -> float:
        """It exited: the back-off before its restart (doubled while it dies young)."""
        young = time.monotonic() - self.started < YOUNG_S
        self.backoff_s = min(MAX_BACKOFF_S, self.backoff_s * 2) if young else MIN_BACKOFF_S
        return self.backoff_s

    def restarting(self) -> None:
        self.restarts += 1


class Supervisor:
    def __init__(self, worker_argv: Sequence[str], data_folder: str, workers: int, shards: int,
                 *, shutdown_timeout_s: float, out: TextIO = sys.stdout) -> None:
        """``worker_argv``: the ``saga-journey`` arguments of a worker (``--worker-index I`` is
        appended per worker)."""
        self.worker_argv = list(worker_argv)
        self.data_folder = data_folder
        self.shards = shards
        self.workers = [Worker(i) for i in range(workers)]
        self.shutdown_timeout_s = shutdown_timeout_s
        self.out = out
        self.stopping = False
        self.folder = hop_folder(data_folder)

    # ---- state ------------------------------------------------------------------------------

    def _write_state(self) -> None:
        state = {"supervisor": os.getpid(), "data_folder": os.path.realpath(self.data_folder),
                 "shards": self.shards, "workers": [
                     {"index": w.index, "pid": w.process.pid if w.process else None, "restarts": w.restarts,
                      "shards": sorted(owned_shards(self.shards, len(self.workers), w.index))}
                     for w in self.workers]}
        write_atomically(os.path.join(self.folder, STATE_FILE), json.dumps(state, indent=1).encode())

    # ---- one worker -------------------------------------------------------------------------

    async def _spawn(self, w: Worker) -> None:
        read_fd, write_fd = os.pipe()
        env = {**os.environ, READY_FD_ENV: str(write_fd)}
        argv = [sys.executable, "-m", "saga_journey.runtime.cli", *self.worker_argv, "--worker-index", str(w.index)]
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        try:
            w.began(await asyncio.create_subprocess_exec(*argv, env=env, pass_fds=(write_fd,)), ready)
        finally:
            os.close(write_fd)
        reader = os.fdopen(read_fd, "rb", buffering=0)

        def on_readable() -> None:
            data = reader.read(64)
            if not ready.done():
                if data:
                    ready.set_result(None)
                else:
                    ready.set_exception(RuntimeError("exited before it was ready"))
            loop.remove_reader(read_fd)
            reader.close()

        loop.add_reader(read_fd, on_readable)
        self._write_state()

    async def _watch(self, w: Worker) -> None:
        """Restart ``w`` whenever it exits, until the supervisor stops."""
        while True:
            assert w.process is not None
            code = await w.process.wait()
            age = time.monotonic() - w.started
            backoff = w.ended()
            if self.stopping:
                return
            how = f"signal {-code}" if code < 0 else f"exit code {code}"
            log.error("worker %d (pid %d) died (%s) after %.1fs; restarting it in %.1fs",
                      w.index, w.process.pid, how, age, backoff)
            print(f"saga-journey: worker {w.index} (pid {w.process.pid}) died ({how}); restarting",
                  file=self.out, flush=True)
            await asyncio.sleep(backoff)
            if self.stopping:
                return
            w.restarting()
            await self._spawn(w)
            try:
                assert w.ready is not None
                await w.ready
                print(f"saga-journey: worker {w.index} is back (pid {w.process.pid})", file=self.out, flush=True)
            except RuntimeError:
                pass  # it died again at once: the loop above waits for it and backs off

    # ---- all --------------------------------------------------------------------------------

    async def run(self, listening: str) -> int:
        """Start every worker; once all are ready print ``listening``; serve until a signal."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._signal_all, signal.SIGHUP)
        for w in self.workers:
            await self._spawn(w)
        failed = await self._wait_ready(stop)
        if failed is not None:
            await self._stop_all()
            return failed
        print(listening, file=self.out, flush=True)
        watchers = [asyncio.ensure_future(self._watch(w)) for w in self.workers]
        await stop.wait()
        print("saga-journey gateway stopping", file=self.out, flush=True)
        self.stopping = True
        await self._stop_all()
        for t in watchers:
            t.cancel()
        print("saga-journey gateway stopped", file=self.out, flush=True)
        return 0

    async def _wait_ready(self, stop: asyncio.Event) -> int | None:
        """None once every worker is ready; else the exit code of the start-up that failed."""
        pending: dict[asyncio.Future[None], Worker] = {w.ready: w for w in self.workers if w.ready is not None}
        stopper: asyncio.Future[bool] = asyncio.ensure_future(stop.wait())
        try:
            while pending:
                waiting: list[asyncio.Future[Any]] = [*pending, stopper]
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if stopper in done:
                    return 0
                for fut in done:
                    w = pending.pop(fut)
                    if fut.exception() is not None:
                        assert w.process is not None
                        code = await w.process.wait()
                        print(f"saga-journey: worker {w.index} failed to start (exit code {code}); stopping",
                              file=sys.stderr, flush=True)
                        return code if code > 0 else 1
            return None
        finally:
            stopper.cancel()
            for fut in pending:
                fut.cancel()

    def _signal_all(self, sig: int) -> None:
        for w in self.workers:
            if w.process is not None and w.process.returncode is None:
                try:
                    w.process.send_signal(sig)
                except ProcessLookupError:
                    pass

    async def _stop_all(self) -> None:
        """SIGTERM to every worker (each drains its requests and closes its store), then SIGKILL
        to any still running past the shutdown timeout."""
        self.stopping = True
        self._signal_all(signal.SIGTERM)
        running = [w.process for w in self.workers if w.process is not None and w.process.returncode is None]
        if not running:
            return
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in running)),
                                   self.shutdown_timeout_s + STOP_MARGIN_S)
        except TimeoutError:
            for p in running:
                if p.returncode is None:
                    log.error("worker pid %d did not stop in time: killed", p.pid)
                    p.kill()
            await asyncio.gather(*(p.wait() for p in running))


SUPERVISOR_LOCK = "supervisor.lock"  # in the data folder, which outlives every run


def take_supervisor_lock(data_folder: str) -> int:
    """One supervisor per data folder (its workers' shard locks would refuse a second's anyway,
    but only after it had started); returns the lock's fd, held for the process's life. Also
    makes the private (0700) folder of the workers' hop sockets and ``workers.json``."""
    folder = hop_folder(data_folder)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    fd = os.open(os.path.join(data_folder, SUPERVISOR_LOCK), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise InvalidInputError(f"{data_folder} is already served by another `serve --workers` "
                                f"(see {os.path.join(folder, STATE_FILE)})") from None
    return fd


def supervise(worker_argv: Sequence[str], data_folder: str, workers: int, shards: int,
              sockets: Sequence[socket.socket], listening: str, *, shutdown_timeout_s: float) -> int:
    """Blocking entry point for the CLI; ``sockets`` stay bound (not listening) meanwhile."""
    lock = take_supervisor_lock(data_folder)
    sup = Supervisor(worker_argv, data_folder, workers, shards, shutdown_timeout_s=shutdown_timeout_s)
    try:
        return asyncio.run(sup.run(listening))
    finally:
        for name in (STATE_FILE, *(f"w{w.index}.sock" for w in sup.workers)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(sup.folder, name))
        with contextlib.suppress(OSError):
            os.rmdir(sup.folder)  # nothing left in /tmp once it stops
        os.close(lock)
        del sockets  # the caller closes them
