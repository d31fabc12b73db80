"""CLI pieces for operating a server: ``serve``'s log and retention options, and ``prune``.

``prune`` works offline on a data folder (it takes the folder lock, so stop the server first; a
running server prunes by itself when ``retention_s`` is set). It runs the same bounded
``PruneWrite`` rounds as the background pruner, through the store's single writer, with a
progress bar.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from typing import TYPE_CHECKING

from .errors import InvalidInputError
from .journeys import RETENTION_BOUNDS, check_number
from .logs import FORMATS, LEVELS

if TYPE_CHECKING:
    from saga_journey.persistence.ports import StoreBackend

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdwy]?)\s*$")


def parse_duration(text: str, what: str) -> float:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w``, ``1y`` or plain seconds, as seconds (> 0)."""
    match = _DURATION.match(str(text).lower())
    if not match:
        raise InvalidInputError(f"{what} {text!r}: use a number with an optional unit s, m, h, d, w or y (e.g. 30d)")
    seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    return float(check_number(seconds, what, RETENTION_BOUNDS))


def _env(name: str, default: str | None) -> str | None:
    return os.environ.get(f"SAGA_JOURNEY_{name}", default)


def add_serve_options(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("--log-level", type=str.upper, choices=LEVELS, default=_env("LOG_LEVEL", "INFO"),
                       help="least severe log level written to stderr (default INFO)")
    serve.add_argument("--log-format", choices=FORMATS, default=_env("LOG_FORMAT", "text"),
                       help="text for people, json: one object per line (default text)")
    serve.add_argument("--access-log", action="store_true", default=_env("ACCESS_LOG", "") in ("1", "true"),
                       help="log every HTTP request at INFO on saga_journey.access")
    serve.add_argument("--retention", default=_env("RETENTION", None),
                       help="prune finished sagas this long after they finish, e.g. 30d "
                            "(default: the config's runtime.retention_s, else keep)")


def apply_serve_options(args: argparse.Namespace) -> float | None:
    """Install the log handler; return ``--retention`` in seconds (None: not given)."""
    from .logs import configure_logging

    retention = None if args.retention is None else parse_duration(args.retention, "--retention")
    configure_logging(args.log_level, args.log_format)
    return retention


def add_prune_parser(sub: argparse._SubParsersAction) -> None:
    prune = sub.add_parser(
        "prune", help="remove finished sagas older than a duration (offline: stop the server first)",
        description="Remove COMPLETED sagas and FAILED sagas whose compensation succeeded, finished "
                    "longer ago than --older-than (a journey's own requirements.retention_s wins "
                    "for its sagas). Parked sagas are never removed.",
    )
    prune.add_argument("--older-than", required=True, help="e.g. 30d, 12h, 90m or seconds")
    prune.add_argument("--data-dir", default=_env("DATA_DIR", None), help="LMDB data folder (default ./data)")
    prune.add_argument("--store", default=None, metavar="URL",
                       help="the store as a URL instead of --data-dir: lmdb:PATH or lmdb:///abs/path")
    prune.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    prune.add_argument("--batch", type=int, default=500, help="sagas per write transaction (default 500)")


def run_prune(args: argparse.Namespace, backend: StoreBackend, shown: str) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    older = parse_duration(args.older_than, "--older-than")
    if args.batch < 1:
        raise InvalidInputError("--batch must be >= 1")
    store = backend.open()
    try:
        now = time.time()
        total = store.count_expired(now, older)
        if not total:
            print(f"nothing to prune in {shown} (no finished saga older than {args.older_than})")
            return 0
        if not args.yes:
            if not sys.stdin.isatty():
                raise InvalidInputError(f"{total} saga(s) would be removed; pass --yes to confirm")
            answer = input(f"remove {total} finished saga(s) from {shown}? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("nothing removed")
                return 1
        pruned = records = 0
        columns = (TextColumn("pruning"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, transient=False, disable=not sys.stderr.isatty()) as bar:
            task = bar.add_task("prune", total=total)
            more = True
            while more:
                result = store.prune(now, older, args.batch)
                pruned, records, more = pruned + result.sagas, records + result.records, result.more
                bar.update(task, completed=pruned)
        print(f"pruned {pruned} saga(s), {records} records, from {shown}")
        return 0
    finally:
        store.close()
