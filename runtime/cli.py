"""The ``saga-journey`` command line."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .errors import SagaError
from .migrate import add_parser as add_migrate_parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="saga-journey", description="Durable saga orchestrator")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the seed's enterprise migration with a failure")
    demo.add_argument("--data-dir", default="./data", help="LMDB data folder (default ./data)")
    demo.add_argument("--fail-at", default="transform_data", help="milestone that fails")
    backup = sub.add_parser("backup", help="write a compacted copy of the store to a folder")
    backup.add_argument("--data-dir", default="./data")
    backup.add_argument("dest", help="destination folder (must be empty or absent)")
    serve = sub.add_parser("serve", help="run the HTTP gateway")
    serve.add_argument("--data-dir", default="./data", help="LMDB data folder (default ./data)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--config", default=None, help="TOML config: API keys, webhooks, limits")
    serve.add_argument(
        "--insecure-dev", action="store_true", help="no authentication (local trials only)"
    )
    serve.add_argument(
        "--loop", choices=["auto", "asyncio", "uvloop"], default="auto",
        help="event loop (auto: uvloop when installed)",
    )
    hash_key = sub.add_parser("hash-key", help="make an API key and print its config entry")
    hash_key.add_argument("--token", help="hash this token instead of generating one")
    hash_key.add_argument("--tenant", default="default")
    hash_key.add_argument("--user", default="api")
    hash_key.add_argument("--roles", default="read,write", help="comma-separated: read,write,admin")
    verify = sub.add_parser("verify", help="check every record's CRC and the indexes (store closed)")
    verify.add_argument("--data-dir", default="./data")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    quarantine = sub.add_parser("quarantine", help="list records that fail their CRC or decode")
    quarantine.add_argument("--data-dir", default="./data")
    add_migrate_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            from .demo import run_demo

            final = run_demo(args.data_dir, sys.stdout, fail_at=args.fail_at)
            return 0 if final["status"] in ("COMPLETED", "FAILED") else 1
        if args.command == "backup":
            from saga_journey.persistence.lmdb_store import LmdbStore

            store = LmdbStore(args.data_dir)
            try:
                store.backup(args.dest, compact=True)
            finally:
                store.close()
            print(f"backup of {args.data_dir} written to {args.dest}")
            return 0
        if args.command == "serve":
            from saga_journey.http.server import run
            from saga_journey.http.settings import load_config

            config = load_config(args.config, insecure_dev=args.insecure_dev)
            loop = {"auto": None, "asyncio": False, "uvloop": True}[args.loop]
            run(args.data_dir, args.host, args.port, config, use_uvloop=loop)
            return 0
        if args.command == "hash-key":
            from saga_journey.http.auth import hash_token, new_token

            token = args.token or new_token()
            roles = [r.strip() for r in args.roles.split(",") if r.strip()]
            if args.token is None:
                # stderr: the config entry on stdout can be appended to saga.toml without it
                print(f"token (give it to the client; only its hash is stored): {token}", file=sys.stderr)
            print("[[api_keys]]")
            print(f'sha256 = "{hash_token(token)}"')
            print(f'tenant_id = "{args.tenant}"')
            print(f'user_id = "{args.user}"')
            print("roles = [" + ", ".join(f'"{r}"' for r in roles) + "]")
            return 0
        if args.command == "migrate":
            from .migrate import run_migrate

            return run_migrate(args.data_dir, sys.stdout)
        if args.command in ("verify", "quarantine"):
            from saga_journey.persistence.verify import verify

            report = verify(args.data_dir)
            if args.command == "quarantine":
                for item in report.corrupt:
                    print(f"{item['where']}\t{item['reason']}")
                print(f"{len(report.corrupt)} corrupt record(s) in {args.data_dir}", file=sys.stderr)
                return 1 if report.corrupt else 0
            if args.json:
                import json

                print(json.dumps(report.to_dict(), indent=2))
            else:
                print(f"{args.data_dir}: {report.records} records, {report.sagas} sagas, "
                      f"{len(report.corrupt)} corrupt, {len(report.inconsistent)} inconsistent")
                for item in report.corrupt:
                    print(f"  corrupt  {item['where']}: {item['reason']}")
                for line in report.inconsistent:
                    print(f"  inconsistent  {line}")
            return 0 if report.ok else 1
    except SagaError as exc:
        print(f"saga-journey: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
