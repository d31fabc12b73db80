"""Chaos chains: run the worker again and again on one data folder, killing it at named crash
points or at random times (sometimes twice in a row), then one clean run that drives every
saga to its end, then the invariants. Used by tests/chaos/test_chaos.py and bench/chaos.py."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from saga_journey.runtime import crashpoints

from .invariants import INVARIANTS, Verdict, check

WORKER = Path(__file__).with_name("worker.py")
RANDOM_KILL = "random_time"
# How often each point is hit in one run of ~N sagas, roughly: picks nth within it.
_NTH_MAX = {
    crashpoints.AFTER_DECIDE: 120, crashpoints.MID_BATCH: 60, crashpoints.AFTER_COMMIT: 60,
    crashpoints.BEFORE_REPLY: 100, crashpoints.BEFORE_HANDLER: 25, crashpoints.AFTER_HANDLER: 25,
    crashpoints.AFTER_COMP_RECORDED: 25,
}


@dataclass
class ChainResult:
    injections: Counter = field(default_factory=Counter)  # crash point -> kills that happened
    missed: Counter = field(default_factory=Counter)  # armed but the run ended first
    double_crashes: int = 0  # a crash during the recovery run right after a crash
    runs: int = 0
    verdict: Verdict | None = None


def _worker_cmd(work: Path, run_id: int, new_sagas: int, report: Path | None, wait_s: float,
                client: str = "embedded") -> list[str]:
    cmd = [sys.executable, str(WORKER), "--data-dir", str(work / "data"), "--acks", str(work / "acks.log"),
           "--ledger", str(work / "ledger.log"), "--run-id", str(run_id), "--new-sagas", str(new_sagas),
           "--wait-s", str(wait_s), "--client", client]
    if report is not None:
        cmd += ["--report", str(report)]
    return cmd


def run_once(work: Path, run_id: int, new_sagas: int, crash: str | None, kill_after: float | None,
             wait_s: float = 30.0, report: Path | None = None, extra_env: dict[str, str] | None = None,
             client: str = "embedded") -> str | None:
    """One worker run. Returns the crash point that killed it, RANDOM_KILL, or None (clean)."""
    mark = work / "crash.mark"
    mark.unlink(missing_ok=True)
    env = {**os.environ, **(extra_env or {})}
    env.pop(crashpoints.ENV, None)
    if crash:
        env[crashpoints.ENV] = crash
        env[crashpoints.MARK_ENV] = str(mark)
    proc = subprocess.Popen(_worker_cmd(work, run_id, new_sagas, report, wait_s, client), env=env,
                            stdout=subprocess.DEVNULL, stderr=open(work / "worker.err", "ab"))
    try:
        proc.wait(timeout=kill_after if kill_after is not None else wait_s * 3 + 60)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return RANDOM_KILL if kill_after is not None else "hang"
    if proc.returncode == -signal.SIGKILL:
        return mark.read_text() if mark.exists() else "unknown-kill"
    if proc.returncode != 0:
        raise RuntimeError(f"worker run {run_id} failed with exit code {proc.returncode}; see {work / 'worker.err'}")
    return None


def run_chain(work: Path, seed: int, injections: int, sagas_per_run: int = 24,
              random_fraction: float = 0.15, double_fraction: float = 0.3, wait_s: float = 30.0,
              client: str = "embedded") -> ChainResult:
    """Keep injecting until ``injections`` kills happened, then a clean final run and the checks.

    Crash points are taken round-robin (so every point is covered), ``nth`` at random.
    """
    rng = random.Random(seed)
    work.mkdir(parents=True, exist_ok=True)
    res = ChainResult()
    points = list(crashpoints.POINTS)
    run_id, turn, kills = 0, 0, 0
    while kills < injections:
        run_id += 1
        res.runs += 1
        if rng.random() < random_fraction:
            point = RANDOM_KILL
            outcome = run_once(work, run_id, sagas_per_run, None, rng.uniform(0.05, 0.6), wait_s,
                               client=client)
        else:
            point = points[turn % len(points)]
            turn += 1
            nth = rng.randint(1, _NTH_MAX[point])
            outcome = run_once(work, run_id, sagas_per_run, f"{point}:{nth}", None, wait_s,
                               client=client)
        if outcome is None:
            res.missed[point] += 1
            continue
        res.injections[outcome] += 1
        kills += 1
        if kills < injections and rng.random() < double_fraction:
            # Restart and crash again during recovery (no new sagas: recovery work only).
            run_id += 1
            res.runs += 1
            point = rng.choice(points)
            again = run_once(work, run_id, 0, f"{point}:{rng.randint(1, 4)}", None, wait_s,
                             client=client)
            if again is not None:
                res.injections[again] += 1
                res.double_crashes += 1
                kills += 1
    run_id += 1
    res.runs += 1
    report = work / "final.json"
    if run_once(work, run_id, 0, None, None, wait_s, report, client=client) is not None:
        raise RuntimeError("the final (clean) run was killed")
    final = json.loads(report.read_text())
    res.verdict = check(str(work / "data"), str(work / "acks.log"), str(work / "ledger.log"), final["non_terminal"])
    return res


def table(results: list[ChainResult]) -> str:
    inj: Counter = Counter()
    for r in results:
        inj.update(r.injections)
    lines = ["crash point                 injections"]
    for point in (*crashpoints.POINTS, RANDOM_KILL):
        lines.append(f"  {point:<26}{inj.get(point, 0):>8}")
    others = {k: n for k, n in inj.items() if k not in (*crashpoints.POINTS, RANDOM_KILL)}
    for k, n in others.items():
        lines.append(f"  {k:<26}{n:>8}")
    lines.append(f"  {'total':<26}{sum(inj.values()):>8}")
    lines.append(f"double crashes (crash again during recovery): {sum(r.double_crashes for r in results)}")
    lines.append(f"worker runs: {sum(r.runs for r in results)}   sagas: {sum(r.verdict.sagas for r in results)}")
    lines.append(f"acknowledged responses: {sum(r.verdict.acks for r in results)}   "
                 f"acknowledged transitions: {sum(r.verdict.transitions for r in results)}   "
                 f"ledger lines: {sum(r.verdict.ledger_lines for r in results)}")
    lines.append("invariant   violations")
    for i in INVARIANTS:
        lines.append(f"  {i:<10}{sum(r.verdict.counts()[i] for r in results):>8}")
    return "\n".join(lines)
