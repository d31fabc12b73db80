"""Crash-safety proof, long version: >= 1,000 SIGKILL injections over chaos chains.

    python bench/chaos.py --injections 1000 [--chains 2] [--seed 1] [--workdir DIR]
    python bench/chaos.py --client http --workers 2 --injections 200 [--drivers 8] [--shards 8]

Runs ``--chains`` independent chains in parallel (one data folder each), each killed at the
runtime's named crash points (round-robin, n-th hit chosen by the seed) or at random times,
sometimes twice in a row, then driven to the end and checked for I1-I6. Prints the table:
injections per crash point, acknowledged transitions, violations per invariant (all must be 0).
Exit status 1 if any invariant was violated.

With ``--workers 2`` (needs ``--client http``) it runs ``saga-journey serve --workers 2`` instead
(tests/chaos/serve_chaos.py): one worker at a time is killed at a crash point armed in it only,
or at random, sometimes again during its recovery, while ``--drivers`` clients per worker drive
sagas of both workers' shards through the shared port; the supervisor restarts it. Then I1-I6
over the whole sharded folder, and the gap figures: how long requests of the *surviving*
worker's sagas waited while the other was down, how many of their attempts failed, and how many
connections were reset (those that were on the killed worker). Exit 1 on any violation, and
on any failed attempt of the surviving worker's requests.
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
from tests.chaos.serve_chaos import run_serve_chaos, serve_table  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--injections", type=int, default=1000)
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sagas-per-run", type=int, default=24)
    p.add_argument("--client", choices=["embedded", "http"], default="embedded",
                   help="drive the workload through the embedded API or the HTTP gateway")
    p.add_argument("--workdir", help="keep the chains' folders here (default: a temp dir)")
    p.add_argument("--workers", type=int, choices=[1, 2], default=1,
                   help="2: chaos against `serve --workers 2` (with --client http)")
    p.add_argument("--drivers", type=int, default=8, help="--workers 2: concurrent clients per worker")
    p.add_argument("--shards", type=int, default=8, help="--workers 2: shards of the data folder")
    p.add_argument("--young-s", type=float, default=0.0,
                   help="--workers 2: the supervisor's YOUNG_S (0: no growing restart back-off)")
    args = p.parse_args()
    base = Path(args.workdir or tempfile.mkdtemp(prefix="saga-chaos-"))
    if args.workers == 2:
        if args.client != "http":
            p.error("--workers 2 needs --client http")
        res = run_serve_chaos(base / "serve", args.seed, args.injections, drivers_per_worker=args.drivers,
                              shards=args.shards, young_s=args.young_s, progress=True)
        print(f"machine: {platform.platform()}, {os.cpu_count()} cpus, python {platform.python_version()}")
        print(f"serve --workers 2 --shards {args.shards}, {args.drivers} drivers per worker, seed: {args.seed}, "
              f"folder: {base / 'serve'}")
        print(serve_table(res))
        bad = [(k, v[:3]) for k, v in res.verdict.violations.items() if v]
        for k, examples in bad:
            print(f"{k}: {examples}")
        failed = res.gap["survivor_failed_attempts"]
        if failed:
            print(f"the surviving worker failed {failed} attempts while the other was down")
        return 1 if bad or failed or res.unexpected_deaths else 0
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
