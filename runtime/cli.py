"""The ``saga-journey`` command line."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .errors import SagaError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="saga-journey", description="Durable saga orchestrator")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the seed's enterprise migration with a failure")
    demo.add_argument("--data-dir", default="./data", help="LMDB data folder (default ./data)")
    demo.add_argument("--fail-at", default="transform_data", help="milestone that fails")
    backup = sub.add_parser("backup", help="write a compacted copy of the store to a folder")
    backup.add_argument("--data-dir", default="./data")
    backup.add_argument("dest", help="destination folder (must be empty or absent)")
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
    except SagaError as exc:
        print(f"saga-journey: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
