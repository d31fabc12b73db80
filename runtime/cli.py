"""The ``saga-journey`` command line.

Every command checks its arguments before it touches anything: a typo'd data folder, a busy
port or an unknown role is a one-line error (exit 2) and nothing is created. Only ``demo``
and ``serve --create`` make a new store.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from saga_journey.persistence.shard_map import DEFAULT_SHARDS

from .errors import InvalidInputError, SagaError
from .migrate import add_parser as add_migrate_parser
from .reshard_cli import add_parser as add_reshard_parser
from .cli_store import StoreArg, add_store_options
if TYPE_CHECKING:
    from saga_journey.http.server import WorkerSpec
from .ops_cli import (
    add_backup_parser,
    add_prune_parser,
    add_serve_options,
    apply_serve_options,
    run_backup,
    run_prune,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="saga-journey", description="Durable saga orchestrator")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the seed's enterprise migration with a failure")
    add_store_options(demo, "LMDB data folder, created if absent")
    demo.add_argument("--fail-at", default="transform_data", help="milestone that fails")
    serve = sub.add_parser("serve", help="run the HTTP gateway")
    add_store_options(serve)
    serve.add_argument("--create", action="store_true", help="create the store if the data folder holds none")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", default="8080", help="TCP port, 0-65535 (0: any free port; default 8080)")
    serve.add_argument("--config", default=None, help="TOML config: API keys, webhooks, limits")
    serve.add_argument(
        "--insecure-dev", action="store_true", help="no authentication (local trials only)"
    )
    serve.add_argument(
        "--loop", choices=["auto", "asyncio", "uvloop"], default="auto",
        help="event loop (auto: uvloop when installed)",
    )
    serve.add_argument(
        "--workers", default="1",
        help="worker processes (a number, or auto: one per core); more than 1 needs a sharded data folder",
    )
    serve.add_argument(
        "--shards", type=int, default=None,
        help=f"with --create: shard a new data folder into this many shards (default {DEFAULT_SHARDS} when "
             "--workers > 1; fixed for the folder's life)",
    )
    serve.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    add_serve_options(serve)
    hash_key = sub.add_parser("hash-key", help="make an API key and print its config entry")
    hash_key.add_argument("--token", help="hash this token instead of generating one")
    hash_key.add_argument("--tenant", default="default")
    hash_key.add_argument("--user", default="api")
    hash_key.add_argument("--roles", default="read,write", help="comma-separated: read,write,admin")
    verify = sub.add_parser("verify", help="check every record's CRC and the indexes (store closed)")
    add_store_options(verify)
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    quarantine = sub.add_parser("quarantine", help="list records that fail their CRC or decode")
    add_store_options(quarantine)
    add_migrate_parser(sub)
    add_prune_parser(sub)
    add_backup_parser(sub)
    add_reshard_parser(sub)
    # Parsed by click (runtime/cli_sagas.py); listed here so that --help shows them.
    for name, text in (("sagas", "list, show, watch, abort, retry, skip sagas (see sagas --help)"),
                       ("journeys", "list and show journeys"), ("events", "follow transitions live")):
        sub.add_parser(name, help=text, add_help=False)
    parser.add_argument("--version", action="version", version=f"saga-journey {_version()}")
    parser.add_argument("--url", help="gateway URL for sagas/journeys/events (env SAGA_JOURNEY_URL)")
    parser.add_argument("--token", help="API key for sagas/journeys/events (env SAGA_JOURNEY_TOKEN)")
    env_defaults(serve, "serve")
    return parser


def _version() -> str:
    from .cli_sagas import version_string

    return version_string()


def _is_click_command(argv: Sequence[str]) -> bool:
    """``sagas``/``journeys``/``events``, possibly after the global ``--url``/``--token``."""
    args = list(argv)
    while args and args[0].split("=", 1)[0] in ("--url", "--token"):
        args = args[1:] if "=" in args[0] else args[2:]
    return bool(args) and args[0] in ("sagas", "journeys", "events")


ENV_PREFIX = "SAGA_JOURNEY_"


def env_defaults(parser: argparse.ArgumentParser, command: str) -> None:
    """Every option of ``parser`` also from ``SAGA_JOURNEY_<OPTION>`` (a flag on the command line wins).

    A switch (``--create``) is on for ``1``/``true``/``yes``/``on`` and off for ``0``/``false``/
    ``no``/``off``/empty; anything else is an error naming the variable."""
    import os

    for action in parser._actions:  # argparse has no public list of a parser's options
        if not action.option_strings or action.dest == "help" or action.help == argparse.SUPPRESS:
            continue  # (a hidden option, e.g. --worker-index, is for the supervisor alone)
        name = ENV_PREFIX + action.option_strings[-1].lstrip("-").replace("-", "_").upper()
        action.help = f"{action.help or ''} [env {name}]".strip()
        raw = os.environ.get(name)
        if raw is None:
            continue
        if action.nargs == 0:  # store_true
            value = raw.strip().lower()
            if value not in ("1", "true", "yes", "on", "0", "false", "no", "off", ""):
                parser.error(f"{name}={raw!r}: expected 1/true/yes/on or 0/false/no/off")
            action.default = value in ("1", "true", "yes", "on")
        elif action.choices is not None and (action.type(raw) if callable(action.type) else raw) not in action.choices:
            parser.error(f"{name}={raw!r}: expected one of {', '.join(map(str, action.choices))}")
        else:
            action.default = raw


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    final = run_demo(StoreArg.of(args).url, sys.stdout, fail_at=args.fail_at)
    return 0 if final["status"] in ("COMPLETED", "FAILED") else 1


def _backup(args: argparse.Namespace) -> int:
    return run_backup(args)


def _check_loop(choice: str) -> bool | None:
    """``--loop`` as ``run``'s ``use_uvloop``; uvloop asked for but missing is an error now."""
    if choice != "uvloop":
        return {"auto": None, "asyncio": False}[choice]
    try:
        import uvloop  # noqa: F401
    except ImportError:
        raise InvalidInputError(
            "--loop uvloop: uvloop is not installed (pip install 'saga-journey[fast]', or --loop asyncio)"
        ) from None
    return True


def _serve(args: argparse.Namespace) -> int:
    from saga_journey.http.listeners import bind_listeners, parse_port
    from saga_journey.http.server import run
    from saga_journey.http.settings import load_config

    # Everything that can be wrong is checked before the port is bound and the store opened.
    port = parse_port(args.port)
    use_uvloop = _check_loop(args.loop)
    config = load_config(args.config, insecure_dev=args.insecure_dev)
    retention = apply_serve_options(args)
    if retention is not None:
        import dataclasses

        config = dataclasses.replace(config, runtime=dataclasses.replace(config.runtime, retention_s=retention))
    if args.grafana_url:
        import dataclasses

        from saga_journey.http.settings import check_grafana_url

        gateway = dataclasses.replace(config.gateway, grafana_url=check_grafana_url(args.grafana_url))
        config = dataclasses.replace(config, gateway=gateway)
    from saga_journey.http.supervisor import parse_workers

    where = StoreArg.of(args)
    workers = parse_workers(args.workers)
    if args.worker_index is not None:  # started by the supervisor of serve --workers
        from . import crashpoints

        crashpoints.worker_started(args.worker_index)  # test-only arming; nothing without its env vars
        spec = _worker_spec(where, args.worker_index, workers)
        sockets = bind_listeners(args.host, port, reuse_port=True)
        try:
            run(where.url, args.host, port, config, use_uvloop=use_uvloop, sockets=sockets,
                access_log=args.access_log, config_path=args.config, worker=spec)
        finally:
            for sock in sockets:
                sock.close()
        return 0
    if workers == 1 and args.shards is None:  # one process, as ever
        if not args.create:
            where.existing(create_flag="--create")
        sockets = bind_listeners(args.host, port)
        try:
            run(where.url, args.host, port, config, use_uvloop=use_uvloop, sockets=sockets,
                access_log=args.access_log, config_path=args.config)
        finally:
            for sock in sockets:
                sock.close()
        return 0
    return _supervise(args, where, workers, port, config.gateway.shutdown_timeout_s)


def _sharded_folder(where: StoreArg, workers: int, shards: int | None, create: bool) -> tuple[str, int]:
    """The folder and shard count of a sharded store for ``--workers``/``--shards`` (the
    backend's ``prepare_workers``: created with ``--create`` if absent, else checked)."""
    prepare = getattr(where.backend(), "prepare_workers", None)
    if prepare is None:
        raise InvalidInputError(f"--workers and --shards need an LMDB data folder; {where.shown} is not one")
    if not create:
        where.existing(create_flag="--create")
    folder, count = prepare(workers, shards, create=create)
    return str(folder), int(count)


def _worker_spec(where: StoreArg, index: int, workers: int) -> WorkerSpec:
    from saga_journey.http.server import WorkerSpec

    folder, shards = _sharded_folder(where, workers, None, create=False)
    if not 0 <= index < workers:
        raise InvalidInputError(f"--worker-index {index} is out of range for --workers {workers}")
    return WorkerSpec(folder, index, workers, shards)


def _supervise(args: argparse.Namespace, where: StoreArg, workers: int, port: int, shutdown_timeout_s: float) -> int:
    from saga_journey.http.listeners import bind_listeners
    from saga_journey.http.supervisor import supervise

    folder, shards = _sharded_folder(where, workers, args.shards, args.create)
    sockets = bind_listeners(args.host, port, reuse_port=True)  # held for the supervisor's life
    try:
        bound = sockets[0].getsockname()[1]
        argv = [*args.argv, "--port", str(bound), "--workers", str(workers)]
        listening = (f"saga-journey gateway listening on http://{args.host}:{bound} ({workers} workers, "
                     f"{shards} shards, data {where.backend().describe()})")
        return supervise(argv, folder, workers, shards, sockets, listening, shutdown_timeout_s=shutdown_timeout_s)
    finally:
        for sock in sockets:
            sock.close()


def _hash_key(args: argparse.Namespace) -> int:
    from saga_journey.http.auth import hash_token, new_token
    from saga_journey.http.settings import ROLES, api_key_entry

    from .journeys import check_id

    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        what = f"unknown role(s) {', '.join(unknown)}" if unknown else "no role given"
        raise InvalidInputError(f"--roles {args.roles!r}: {what}; allowed: {', '.join(ROLES)}")
    if args.token is not None and not args.token.strip():
        raise InvalidInputError("--token must not be empty (omit it to generate one)")
    tenant, user = check_id(args.tenant, "--tenant"), check_id(args.user, "--user")
    token = args.token if args.token is not None else new_token()
    entry = api_key_entry(hash_token(token), tenant, user, roles)
    if args.token is None:
        # stderr: the config entry on stdout can be appended to saga.toml without it
        print(f"token (give it to the client; only its hash is stored): {token}", file=sys.stderr)
    print(entry, end="")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from .cli_progress import bar

    where = StoreArg.of(args)
    backend = where.existing()
    quiet = args.command == "quarantine" or args.json
    with bar(as_json=quiet) as progress:
        task = progress.add_task("verifying", total=None)
        report = backend.verify(lambda done, total: progress.update(task, completed=done, total=total))
    if args.command == "quarantine":
        for item in report.corrupt:
            print(f"{item['where']}\t{item['reason']}")
        print(f"{len(report.corrupt)} corrupt record(s) in {where.shown}", file=sys.stderr)
        return 1 if report.corrupt else 0
    if args.json:
        import json

        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(f"{where.shown}: {report.records} records, {report.sagas} sagas, "
              f"{len(report.corrupt)} corrupt, {len(report.inconsistent)} inconsistent")
        for item in report.corrupt:
            print(f"  corrupt  {item['where']}: {item['reason']}")
        for line in report.inconsistent:
            print(f"  inconsistent  {line}")
    return 0 if report.ok else 1


def _migrate(args: argparse.Namespace) -> int:
    from .migrate import run_migrate

    where = StoreArg.of(args)
    return run_migrate(where.existing(), where.shown, sys.stdout)


def _prune(args: argparse.Namespace) -> int:
    return run_prune(args)


def _reshard(args: argparse.Namespace) -> int:
    from .reshard_cli import run_reshard

    return run_reshard(args)


COMMANDS = {
    "demo": _demo, "backup": _backup, "serve": _serve, "hash-key": _hash_key,
    "verify": _verify, "quarantine": _verify, "migrate": _migrate, "prune": _prune,
    "reshard": _reshard,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if _is_click_command(argv):
        from .cli_sagas import run

        return run(argv)
    # argv rides along: serve --workers starts each worker with the same arguments
    args = build_parser().parse_args(argv, namespace=argparse.Namespace(argv=argv))
    try:
        return COMMANDS[args.command](args)
    except SagaError as exc:
        print(f"saga-journey: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
