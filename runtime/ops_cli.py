"""CLI pieces for operating a server: ``serve``'s log and retention options, and ``prune``.

``prune`` works offline on a data folder (it takes the folder lock, so stop the server first; a
running server prunes by itself when ``retention_s`` is set). It runs the same bounded
``PruneWrite`` rounds as the background pruner, through the store's single writer, with a
progress bar.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from typing import TYPE_CHECKING

from .cli_store import add_store_options
from .errors import InvalidInputError
from .journeys import RETENTION_BOUNDS, check_number
from .logs import FORMATS, LEVELS

if TYPE_CHECKING:
    from saga_journey.client import SagaClient

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
    serve.add_argument("--grafana-url", default=None,
                       help="the Grafana dashboard the console (/ui/) links to (default: no link)")


def apply_serve_options(args: argparse.Namespace) -> float | None:
    """Install the log handler; return ``--retention`` in seconds (None: not given)."""
    from .logs import configure_logging

    retention = None if args.retention is None else parse_duration(args.retention, "--retention")
    configure_logging(args.log_level, args.log_format)
    return retention


def _remote_options(parser: argparse.ArgumentParser, what: str) -> None:
    # SUPPRESS: a value given before the command (saga-journey --url U prune ...) is kept
    parser.add_argument("--url", default=argparse.SUPPRESS,
                        help=f"{what} through this running gateway (admin role) instead of a local --data-dir")
    parser.add_argument("--token", default=argparse.SUPPRESS, help="API key for --url (env SAGA_JOURNEY_TOKEN)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object (no progress bar)")


def add_prune_parser(sub: argparse._SubParsersAction) -> None:
    prune = sub.add_parser(
        "prune", help="remove finished sagas older than a duration (local folder, or --url online)",
        description="Remove COMPLETED sagas and FAILED sagas whose compensation succeeded, finished "
                    "longer ago than --older-than (a journey's own requirements.retention_s wins "
                    "for its sagas). Parked sagas are never removed. Locally it takes the folder "
                    "lock (stop the server first); with --url a running gateway does it, in bounded "
                    "rounds between its other writes (store-wide: every tenant's sagas).",
    )
    prune.add_argument("--older-than", required=True, help="e.g. 30d, 12h, 90m or seconds")
    add_store_options(prune, data_dir=_env("DATA_DIR", None))
    prune.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    prune.add_argument("--batch", type=int, default=500, help="sagas per write transaction (default 500)")
    _remote_options(prune, "prune")


def add_backup_parser(sub: argparse._SubParsersAction) -> None:
    backup = sub.add_parser(
        "backup", help="write a compacted copy of the store to a folder (local, or --url online)",
        description="Write a consistent, compacted copy of the store into DEST (absent or empty). "
                    "Locally DEST is a folder here (stop the server, or use --url); with --url the "
                    "running gateway writes it while serving, and DEST is an absolute folder on "
                    "the server.",
    )
    add_store_options(backup, data_dir=_env("DATA_DIR", None))
    backup.add_argument("dest", help="destination folder (must be empty or absent)")
    _remote_options(backup, "back up")


def _client(args: argparse.Namespace) -> SagaClient:
    from saga_journey.client import SagaClient

    token = getattr(args, "token", None) or os.environ.get("SAGA_JOURNEY_TOKEN", "")
    return SagaClient(args.url, token)


def _confirm(total: int, where: str, yes: bool) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        raise InvalidInputError(f"{total} saga(s) would be removed; pass --yes to confirm")
    try:
        answer = input(f"remove {total} finished saga(s) from {where}? [y/N] ")
    except EOFError:  # no answer: nothing is removed
        return False
    return answer.strip().lower() in ("y", "yes")


def _report(args: argparse.Namespace, text: str, **values: object) -> None:
    if args.json:
        print(json.dumps(values))
    else:
        print(text)


def run_prune(args: argparse.Namespace) -> int:
    from .cli_progress import bar

    older = parse_duration(args.older_than, "--older-than")
    if args.batch < 1 or args.batch > 10000:
        raise InvalidInputError("--batch must be from 1 to 10000")
    remote = getattr(args, "url", None)
    if remote:
        client = _client(args)
        where = remote
        count = lambda: client.prune(older, dry_run=True)["expired"]
        round_ = lambda: client.prune(older, limit=args.batch)
        close = client.close
    else:
        from .cli_store import StoreArg
        from .config import RuntimeConfig
        from .observer import RuntimeObserver
        from .retention import prune_round

        located = StoreArg.of(args)
        store = located.existing().open()
        where, now = located.shown, time.time()
        count = lambda: store.count_expired(now, older)

        def round_() -> dict:
            r = prune_round(store, RuntimeObserver(), RuntimeConfig(), now, older, args.batch)
            return {"pruned": r.sagas, "records": r.records, "more": r.more}

        close = store.close
    try:
        total = count()
        if not total:
            _report(args, f"nothing to prune in {where} (no finished saga older than {args.older_than})",
                    pruned=0, records=0, where=where)
            return 0
        if not _confirm(total, where, args.yes):
            print("nothing removed")
            return 1
        pruned = records = 0
        with bar(as_json=args.json) as progress:
            task = progress.add_task("pruning", total=total)
            more = True
            while more:
                result = round_()
                pruned, records, more = pruned + result["pruned"], records + result["records"], result["more"]
                progress.update(task, completed=min(pruned, total), total=max(total, pruned))
                if not result["pruned"]:
                    break  # nothing removable any more (e.g. repaired meanwhile)
        _report(args, f"pruned {pruned} saga(s), {records} records, from {where}",
                pruned=pruned, records=records, where=where)
        return 0
    finally:
        close()


def _folder_bytes(path: str) -> int:
    """Bytes in the files of folder ``path`` so far (0 while it does not exist)."""
    try:
        return sum(entry.stat().st_size for entry in os.scandir(path) if entry.is_file())
    except FileNotFoundError:
        return 0


def run_backup(args: argparse.Namespace) -> int:
    """Local: the copy runs on a thread and the bar follows the bytes written into DEST (the total
    is the store's bytes in use, about the compacted copy's size). Remote: a spinner until it
    answers."""
    from .cli_progress import bar, byte_bar

    if getattr(args, "url", None):
        client = _client(args)
        try:
            with bar(as_json=args.json, total_known=False) as progress:
                progress.add_task(f"backup by {args.url}", total=None)
                result = client.backup(args.dest)
        finally:
            client.close()
        _report(args, f"backup written by {args.url} to {result['dest']} on the server "
                      f"({result['bytes']} bytes, {result['seconds']:.2f}s)", **result)
        return 0
    import threading

    from .cli_store import StoreArg

    located = StoreArg.of(args)
    backend = located.existing()
    store = backend.open()
    failure: list[BaseException] = []
    started = time.perf_counter()
    try:
        total = int(store.stats().get("used_bytes", 0))  # pages in use: about the compacted copy's size

        def copy() -> None:
            try:
                store.backup(args.dest, compact=True)
            except BaseException as exc:  # noqa: BLE001  (re-raised on the main thread)
                failure.append(exc)

        worker = threading.Thread(target=copy, name="saga-journey-backup")
        with byte_bar(as_json=args.json) as progress:
            task = progress.add_task("backup", total=total)
            worker.start()
            while worker.is_alive():
                worker.join(0.1)
                progress.update(task, completed=min(_folder_bytes(args.dest), total))
            progress.update(task, completed=total)
    finally:
        store.close()
    if failure:
        raise failure[0]
    size = _folder_bytes(args.dest)
    _report(args, f"backup of {located.shown} written to {args.dest}", dest=args.dest, bytes=size,
            seconds=round(time.perf_counter() - started, 6))
    return 0
