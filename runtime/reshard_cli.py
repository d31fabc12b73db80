"""``saga-journey reshard``: copy a closed store into a new sharded folder (persistence/reshard.py)."""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from saga_journey.persistence.shard_map import DEFAULT_SHARDS, check_shard_count

from .errors import InvalidInputError


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    from .cli_store import add_store_options

    reshard = sub.add_parser(
        "reshard", help="copy a closed store into a new sharded folder (serve --workers N needs one)")
    add_store_options(reshard, "the LMDB data folder to copy (closed; one-process or sharded)")
    reshard.add_argument("--into", required=True, metavar="DEST",
                         help="the new sharded folder (absent or empty; a folder or an lmdb: URL)")
    reshard.add_argument("--shards", type=int, default=DEFAULT_SHARDS,
                         help=f"shards of the new folder, 1-256 (default {DEFAULT_SHARDS}; fixed for its life)")
    reshard.add_argument("--json", action="store_true", help="print a summary as JSON")


@contextmanager
def no_supervisor(folder: str) -> Iterator[None]:
    """Hold the lock of ``serve --workers`` on ``folder`` (if one ever ran there) for the copy: a
    running supervisor is refused even while its workers are down, and none starts meanwhile.
    (The shards' folder locks, taken by the copy, refuse the running workers themselves.)"""
    from saga_journey.http.supervisor import SUPERVISOR_LOCK

    path = os.path.join(folder, SUPERVISOR_LOCK)
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        yield  # never supervised (or its lock folder is gone)
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InvalidInputError(f"{folder} is served by `serve --workers` (pid in "
                                    f"{os.path.dirname(path)}): stop it before resharding") from None
        yield
    finally:
        os.close(fd)


def run_reshard(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from saga_journey.persistence.reshard import reshard, source_folder

    from .cli_progress import bar
    from .cli_store import StoreArg

    out = sys.stdout if out is None else out
    shards = check_shard_count(args.shards)
    where = StoreArg.of(args)
    folder = source_folder(where.existing(), where.shown)
    into = args.into
    if into.startswith("lmdb:"):  # a store URL, as --store takes
        from saga_journey.persistence.factory import backend_for

        into = source_folder(backend_for(into), into)
    with no_supervisor(folder), bar(as_json=args.json) as progress:
        copying = progress.add_task("copying", total=None)
        checking = progress.add_task("verifying the copy", total=None, start=False)

        def verifying(done: int, total: int) -> None:
            progress.start_task(checking)  # its clock starts with the verification
            progress.update(checking, completed=done, total=total)

        summary = reshard(folder, into, shards,
                          lambda done, total: progress.update(copying, completed=done, total=total),
                          verifying)
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2), file=out)
        return 0
    was = "one-process" if summary.source_shards is None else f"{summary.source_shards}-shard"
    print(f"{where.shown} ({was}) -> {summary.dest} ({summary.shards} shards): {summary.journeys} journey "
          f"versions, {summary.sagas} sagas, {summary.history} history entries, {summary.idempotency} "
          f"idempotency records; verified ({summary.records_verified} records) in {summary.seconds:.1f}s", file=out)
    if summary.orphans:
        print(f"  {summary.orphans} idempotency record(s) named no saga or journey of the source: not copied",
              file=out)
    print("  event ids (Last-Event-ID) from before the reshard are answered 410: list again, then follow",
          file=out)
    return 0
