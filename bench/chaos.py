"""Crash-safety proof, long version: >= 1,000 SIGKILL injections over chaos chains.

    python bench/chaos.py --injections 1000 [--chains 2] [--seed 1] [--workdir DIR]

Runs ``--chains`` independent chains in parallel (one data folder each), each killed at the
runtime's named crash points (round-robin, n-th hit chosen by the seed) or at random times,
sometimes twice in a row, then driven to the end and checked for I1-I6. Prints the table:
injections per crash point, acknowledged transitions, violations per invariant (all must be 0).
Exit status 1 if any invariant was violated.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.chaos.harness import run_chain, table  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--injections", type=int, default=1000)
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sagas-per-run", type=int, default=24)
    p.add_argument("--client", choices=["embedded", "http"], default="embedded",
                   help="drive the workload through the embedded API or the HTTP gateway")
    p.add_argument("--workdir", help="keep the chains' folders here (default: a temp dir)")
    args = p.parse_args()
    base = Path(args.workdir or tempfile.mkdtemp(prefix="saga-chaos-"))
    per = [args.injections // args.chains + (1 if i < args.injections % args.chains else 0) for i in range(args.chains)]
    started = time.perf_counter()
    with ThreadPoolExecutor(args.chains) as pool:
        results = list(pool.map(
            lambda i: run_chain(base / f"chain{i}", args.seed * 1000 + i, per[i], args.sagas_per_run,
                                client=args.client),
            range(args.chains)))
    elapsed = time.perf_counter() - started
    print(f"machine: {platform.platform()}, {os.cpu_count()} cpus, python {platform.python_version()}")
    print(f"chains: {args.chains}, seed: {args.seed}, elapsed: {elapsed:.0f}s, folders: {base}")
    print(table(results))
    bad = [(i, k, v[:3]) for i, r in enumerate(results) for k, v in r.verdict.violations.items() if v]
    for i, k, examples in bad:
        print(f"chain {i} {k}: {examples}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
