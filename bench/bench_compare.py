"""This tree against another checkout (e.g. the previous commit), same machine, same run.

Runs each workload in a fresh subprocess of each tree's Python (the other tree needs its own
venv with saga-journey installed: ``git worktree add /tmp/prev <commit>; python3 -m venv
/tmp/prev/.venv; /tmp/prev/.venv/bin/pip install -e /tmp/prev``), alternating trees, and
prints both figures and their ratio. Workloads (all embedded, durable LMDB defaults, the
runtime opened inside the client's running loop):

* ``cpu``: bench_runtime's workload (N concurrent sagas x 4 milestones, 10% fail at the 4th,
  3 no-op compensations); CPU per durable transition = process rusage / acknowledged transitions.
* ``sagas``: whole sagas: 3 milestones, the third fails, 2 no-op compensations (reverse order),
  2,000 sagas, 200 in flight, until the client sees FAILED with both compensated.
* ``rollback``: idle rollback of 3 no-op compensations (p50) beside four sequential durable LMDB
  commits (p50 of the sum), measured in the same process.

    python bench/bench_compare.py --other /tmp/prev/.venv/bin/python [--repeat 2] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

UC = {"tenant_id": "bench", "user_id": "bench"}
STEPS = ("step1", "step2", "step3")


def machine() -> str:
    import lmdb

    return (
        f"{platform.platform()} | {os.cpu_count()} cpus | Python {platform.python_version()} | "
        f"lmdb {lmdb.__version__} | load average {os.getloadavg()[0]:.1f}"
    )


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))]


async def noop(ctx: Any) -> None:
    return None


def noop_sync(ctx: Any) -> None:
    return None


def _open(folder: str, handlers: dict[str, Any]) -> Any:
    from saga_journey.runtime import SagaOrchestrator

    return SagaOrchestrator.open(folder, handlers=handlers)


async def _close(orch: Any) -> None:
    await asyncio.get_running_loop().run_in_executor(None, orch.close)


async def w_cpu(folder: str, n: int, rounds: int, kind: str) -> dict[str, Any]:
    from saga_journey.runtime.journeys import TEMPLATES

    fn = noop if kind == "async" else noop_sync
    names = {h for steps in TEMPLATES.values() for _, h in steps}
    orch = _open(folder, {h: fn for h in names})
    try:
        j = await orch.design_saga_journey("order_processing", user_context=UC)
        jid = j["journey_id"]
        acked = 0

        async def one(fail: bool) -> None:
            nonlocal acked
            sid = (await orch.execute_saga_journey(jid, "bench", {"n": 1}, UC))["saga_id"]
            acked += 1
            for i in range(4):
                status = "failed" if fail and i == 3 else "complete"
                await orch.advance_saga_step(sid, jid, "bench", {"status": status}, UC)
                acked += 1
            if fail:
                await orch.wait_for_saga(sid, UC, timeout=120)

        slots = asyncio.Semaphore(n)

        async def bounded(k: int) -> None:
            async with slots:
                await one(k % 10 == 0)

        await asyncio.gather(*(bounded(k) for k in range(50)))  # warm-up
        acked = 0
        c0, t0 = cpu_s(), time.perf_counter()
        await asyncio.gather(*(bounded(k) for k in range(n * rounds)))
        wall, cpu = time.perf_counter() - t0, cpu_s() - c0
    finally:
        await _close(orch)
    return {"cpu_us_per_transition": cpu / acked * 1e6, "transitions_per_s": acked / wall, "acked": acked}


async def w_sagas(folder: str, n: int, conc: int, kind: str) -> dict[str, Any]:
    fn = noop if kind == "async" else noop_sync
    orch = _open(folder, {f"undo_{s}": fn for s in STEPS})
    try:
        j = await orch.design_saga_journey(
            "sbs_saga",
            requirements={"milestones": [{"id": s, "compensation_handler": f"undo_{s}"} for s in STEPS]},
            user_context=UC,
        )
        jid = j["journey_id"]
        lat: list[float] = []

        async def one() -> None:
            t = time.perf_counter()
            sid = (await orch.execute_saga_journey(jid, "bench", {}, UC))["saga_id"]
            for s in STEPS[:2]:
                await orch.advance_saga_step(sid, jid, "bench", {"status": "complete", "milestone_id": s}, UC)
            await orch.advance_saga_step(
                sid, jid, "bench", {"status": "failed", "milestone_id": "step3", "error": "x"}, UC
            )
            final = await orch.wait_for_saga(sid, UC, timeout=120)
            assert final["status"] == "FAILED" and final["compensated_milestones"] == ["step2", "step1"], final
            lat.append(time.perf_counter() - t)

        slots = asyncio.Semaphore(conc)

        async def bounded() -> None:
            async with slots:
                await one()

        await asyncio.gather(*(bounded() for _ in range(min(200, n // 10 + 1))))  # warm-up
        lat.clear()
        c0, t0 = cpu_s(), time.perf_counter()
        await asyncio.gather(*(bounded() for _ in range(n)))
        wall, cpu = time.perf_counter() - t0, cpu_s() - c0
    finally:
        await _close(orch)
    return {"sagas_per_s": n / wall, "p50_ms": pct(lat, 50) * 1000, "p99_ms": pct(lat, 99) * 1000,
            "cpu_ms_per_saga": cpu / n * 1000}


def four_commits(folder: str, runs: int) -> list[float]:
    """Four sequential durable LMDB commits (one small put each), as the store opens LMDB."""
    import lmdb

    env = lmdb.open(folder, map_size=64 << 20, sync=True, metasync=True, max_dbs=4)
    db = env.open_db(b"x")
    out = []
    try:
        for i in range(runs):
            t = time.perf_counter()
            for k in range(4):
                with env.begin(write=True, db=db) as txn:
                    txn.put(f"{i}-{k}".encode(), b"v" * 300)
            out.append(time.perf_counter() - t)
    finally:
        env.close()
    return out


async def w_rollback(folder: str, runs: int, kind: str) -> dict[str, Any]:
    from saga_journey.runtime.journeys import TEMPLATES

    fn = noop if kind == "async" else noop_sync
    names = {h for steps in TEMPLATES.values() for _, h in steps}
    orch = _open(os.path.join(folder, "rt"), {h: fn for h in names})
    times = []
    try:
        j = await orch.design_saga_journey("order_processing", user_context=UC)
        for _ in range(runs):
            sid = (await orch.execute_saga_journey(j["journey_id"], "bench", {}, UC))["saga_id"]
            for _ in range(3):
                await orch.advance_saga_step(sid, None, "bench", {"status": "complete"}, UC)
            t = time.perf_counter()
            await orch.advance_saga_step(sid, None, "bench", {"status": "failed"}, UC)
            await orch.wait_for_saga(sid, UC, timeout=30)
            times.append(time.perf_counter() - t)
    finally:
        await _close(orch)
    floor = await asyncio.get_running_loop().run_in_executor(
        None, four_commits, os.path.join(folder, "raw"), runs
    )
    return {"rollback_p50_ms": pct(times, 50) * 1000, "four_commits_p50_ms": pct(floor, 50) * 1000,
            "ratio": pct(times, 50) / pct(floor, 50)}


def worker(name: str, args: list[str]) -> None:
    """Run one workload in this process and print its result as JSON (the last line)."""
    folder = tempfile.mkdtemp(prefix="sj-cmp-")
    try:
        if name == "cpu":
            coro = w_cpu(folder, int(args[0]), int(args[1]), args[2])
        elif name == "sagas":
            coro = w_sagas(folder, int(args[0]), int(args[1]), args[2])
        else:
            coro = w_rollback(folder, int(args[0]), args[1])
        print(json.dumps(asyncio.run(coro)))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_in(python: str, name: str, args: list[str]) -> dict[str, Any]:
    out = subprocess.run(
        [python, os.path.abspath(__file__), "--worker", name, *args],
        capture_output=True, text=True, timeout=900, cwd=tempfile.gettempdir(),
    )
    if out.returncode != 0:
        raise RuntimeError(f"{python} {name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--other", required=True, help="the other tree's python (e.g. /tmp/prev/.venv/bin/python)")
    ap.add_argument("--this", default=sys.executable, help="this tree's python")
    ap.add_argument("--repeat", type=int, default=2, help="runs per tree and workload (alternating); best is kept")
    ap.add_argument("--handlers", choices=["async", "sync"], default="async")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="cpu,sagas,rollback")
    a = ap.parse_args()
    n_cpu, rounds, n_sagas, conc, runs = (1000, 3, 2000, 200, 200) if not a.quick else (200, 1, 300, 100, 30)
    work = {
        "cpu": ([str(n_cpu), str(rounds), a.handlers], "cpu_us_per_transition", min),
        "sagas": ([str(n_sagas), str(conc), a.handlers], "sagas_per_s", max),
        "rollback": ([str(runs), a.handlers], "ratio", min),
    }
    print(f"machine: {machine()}")
    print(f"this: {a.this}\nother: {a.other}\nhandlers: {a.handlers} no-ops; best of {a.repeat} alternating runs")
    for name in a.only.split(","):
        args, key, best = work[name]
        results: dict[str, list[dict[str, Any]]] = {"other": [], "this": []}
        for _ in range(a.repeat):
            for tree, py in (("other", a.other), ("this", a.this)):
                results[tree].append(run_in(py, name, args))
        pick = {t: best(rs, key=lambda r: r[key]) for t, rs in results.items()}
        print(f"\n[{name}] args {args}")
        for field in pick["this"]:
            o, t = pick["other"][field], pick["this"][field]
            ratio = t / o if o else float("nan")
            print(f"  {field:<26} other {o:>12.2f}   this {t:>12.2f}   this/other {ratio:6.2f}")
        print(f"  all runs ({key}): other {[round(r[key], 2) for r in results['other']]}, "
              f"this {[round(r[key], 2) for r in results['this']]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
