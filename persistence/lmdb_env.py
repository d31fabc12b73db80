"""The LMDB environment's process-side guards: the data-folder lock and the read/resize gate."""

from __future__ import annotations

import fcntl
import os
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

from saga_journey.runtime.errors import StorageError

if TYPE_CHECKING:
    import lmdb

    # Every transaction here is begun with buffers=False (the default): values are bytes.
    Txn = lmdb.Transaction[bytes]
    Cur = lmdb.Cursor[bytes]

DEFAULT_MAP_SIZE = 64 * 1024 * 1024
MAX_MAP_SIZE = 1 << 40  # growth stops here: past it something is writing without bound
LOCK_FILE = "saga-journey.lock"
MAX_DBS = 16
MAX_READERS = 2048


class Gate:
    """Shared/exclusive lock: reads share it; set_mapsize, env.close and write-txn aborts
    take it alone.

    LMDB requires that no transaction is active in the process while the map is resized.
    Aborts: with py-lmdb 3.0.0, aborting a write txn while other threads keep beginning
    read txns was measured to stall for minutes; with readers held off it takes microseconds.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._exclusive = False
        self._waiting = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive or self._waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            while self._exclusive or self._readers:
                self._cond.wait()
            self._waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


def take_folder_lock(path: str, *, in_use: str | None = None, write_pid: bool = True) -> int:
    """Lock ``path`` for this process (one store per folder); return the lock file's fd.

    ``in_use``: the message when another process holds it; ``write_pid``: record this
    process's pid in the lock file (a reader that only holds the lock leaves the file as it was)."""
    fd = os.open(os.path.join(path, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StorageError(
            in_use or f"data folder {path} is in use by another process "
            f"(or another LmdbStore in this one); one store per folder",
            path=path,
        ) from None
    if not write_pid:
        return fd
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def release_folder_lock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
