"""CI version of the crash-safety proof: a few hundred SIGKILL injections, every crash point
covered, fixed seeds; every invariant I1-I6 must hold (bench/chaos.py runs the long one)."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from saga_journey.runtime import crashpoints
from tests.chaos.harness import RANDOM_KILL, run_chain, run_once, table
from tests.chaos.invariants import check

CI_INJECTIONS = int(os.environ.get("SAGA_CHAOS_INJECTIONS", "300"))
CI_HTTP_INJECTIONS = int(os.environ.get("SAGA_CHAOS_HTTP_INJECTIONS", "100"))


def test_crash_point_spec_is_validated() -> None:
    assert crashpoints.parse("store.mid_batch:3,comp.before_handler") == {
        "store.mid_batch": 3, "comp.before_handler": 1}
    for bad in ("nope:1", "store.mid_batch:0", "store.mid_batch:x"):
        with pytest.raises(ValueError):
            crashpoints.parse(bad)


def test_crash_points_are_off_without_the_env_var() -> None:
    assert crashpoints.ENV not in os.environ
    assert crashpoints._plan is None
    crashpoints.hit(crashpoints.MID_BATCH)  # must not kill the test process


def test_short_chaos_run_holds_every_invariant(tmp_path: Path) -> None:
    chains = 2
    with ThreadPoolExecutor(chains) as pool:
        results = list(pool.map(
            lambda i: run_chain(tmp_path / f"chain{i}", 4242 + i, CI_INJECTIONS // chains, sagas_per_run=16),
            range(chains)))
    print("\n" + table(results))
    injected = set().union(*(r.injections for r in results))
    assert set(crashpoints.POINTS) <= injected, f"crash points never hit: {set(crashpoints.POINTS) - injected}"
    assert RANDOM_KILL in injected
    assert sum(r.double_crashes for r in results) > 0
    assert sum(r.verdict.transitions for r in results) > 0
    for r in results:
        assert r.verdict.ok, {k: v[:5] for k, v in r.verdict.violations.items() if v}


def test_short_chaos_run_over_http_holds_every_invariant(tmp_path: Path) -> None:
    """The same proof with every acknowledged write answered by the HTTP gateway (a 2xx)."""
    result = run_chain(tmp_path / "http", 777, CI_HTTP_INJECTIONS, sagas_per_run=16, client="http")
    print("\n" + table([result]))
    assert set(crashpoints.POINTS) <= set(result.injections), set(crashpoints.POINTS) - set(result.injections)
    assert result.verdict.transitions > 0
    assert result.verdict.ok, {k: v[:5] for k, v in result.verdict.violations.items() if v}


def test_invariant_checks_can_fail(tmp_path: Path) -> None:
    """The checker is not vacuous: a fabricated ack and a reordered ledger are caught."""
    work = tmp_path / "w"
    work.mkdir()
    assert run_once(work, 1, 12, None, None) is None
    ledger = (work / "ledger.log").read_text().splitlines()
    assert ledger, "the workload should have compensated something"
    assert check(str(work / "data"), str(work / "acks.log"), str(work / "ledger.log"), []).ok
    acks = (work / "acks.log").read_text().splitlines()
    first = json.loads(acks[0])
    forged = {**first, "version": 99, "event": "milestone_completed"}
    (work / "acks.log").write_text("\n".join(acks + [json.dumps(forged)]) + "\n")
    (work / "ledger.log").write_text("\n".join(reversed(ledger)) + "\n")
    verdict = check(str(work / "data"), str(work / "acks.log"), str(work / "ledger.log"), [])
    assert verdict.violations["I1"]
    # Reversing the ledger breaks reverse order wherever a saga compensated 2+ milestones.
    multi = {line.split("\t")[1] for line in ledger if line.startswith("ok")}
    if any(sum(1 for l in ledger if l.startswith("ok") and l.split("\t")[1] == s) > 1 for s in multi):
        assert verdict.violations["I4"]
