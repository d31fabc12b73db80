"""CI version of the chaos run against ``serve --workers 2`` (bench/chaos.py --client http
--workers 2 runs the long one): one worker at a time killed at crash points armed in it only,
or at random, sometimes again during its recovery, under load on both workers' shards; I1-I6
over the whole sharded folder, and the surviving worker answers every request meanwhile."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from saga_journey.persistence.shard_map import saga_shard
from saga_journey.runtime import crashpoints

from tests.chaos.harness import RANDOM_KILL
from tests.chaos.invariants import check
from tests.chaos.serve_chaos import run_serve_chaos, serve_table

CI_WORKERS_INJECTIONS = int(os.environ.get("SAGA_CHAOS_WORKERS_INJECTIONS", "12"))


@pytest.fixture
def crash_env(monkeypatch: pytest.MonkeyPatch):
    for name in (crashpoints.ENV, crashpoints.MARK_ENV, crashpoints.WORKER_ENV, crashpoints.ARM_DIR_ENV):
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch
    crashpoints.configure(None)


def test_a_crash_point_armed_for_one_worker_is_off_in_the_others(crash_env: pytest.MonkeyPatch) -> None:
    crash_env.setenv(crashpoints.WORKER_ENV, "1")
    crashpoints.configure("store.mid_batch:3")
    crashpoints.worker_started(0)
    assert crashpoints._plan is None
    crashpoints.configure("store.mid_batch:3")
    crashpoints.worker_started(1)
    assert crashpoints._plan == {"store.mid_batch": 3}


def test_a_worker_arms_itself_from_its_arm_file(crash_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    crash_env.setenv(crashpoints.ARM_DIR_ENV, str(tmp_path))
    (tmp_path / "w1.arm").write_text("comp.before_handler:2")
    (tmp_path / "w0.arm").write_text("store.mid_batch:9")
    crashpoints.worker_started(1)  # taken at once (before recovery), then polled
    assert crashpoints._plan == {"comp.before_handler": 2}
    assert not (tmp_path / "w1.arm").exists() and (tmp_path / "w0.arm").exists()
    assert os.environ[crashpoints.MARK_ENV] == str(tmp_path / "w1.mark")
    (tmp_path / "w1.arm").write_text("")  # an empty file disarms
    crashpoints._take(str(tmp_path / "w1.arm"))
    assert crashpoints._plan is None


def test_short_chaos_run_against_two_workers(tmp_path: Path) -> None:
    res = run_serve_chaos(tmp_path / "serve", 31, CI_WORKERS_INJECTIONS, drivers_per_worker=6)
    print("\n" + serve_table(res))
    assert res.verdict is not None and res.verdict.ok, {k: v[:5] for k, v in res.verdict.violations.items() if v}
    assert sum(res.injections.values()) >= CI_WORKERS_INJECTIONS
    assert len(set(res.injections) & set(crashpoints.POINTS)) >= 4, res.injections
    assert RANDOM_KILL in res.injections or res.double_crashes
    assert not res.unexpected_deaths, res.unexpected_deaths
    assert res.verdict.transitions > 0 and res.verdict.ledger_lines > 0
    gap = res.gap
    assert gap["survivor_requests"] > 0
    assert gap["survivor_failed_attempts"] == 0, (gap, res.failure_kinds)
    assert gap["calm_failed_attempts"] == 0, gap
    # The checker reads every shard: a forged ack of a saga in either worker's shards is caught.
    work = tmp_path / "serve"
    acks = (work / "acks.log").read_text().splitlines()
    forged = []
    for owner in (0, 1):
        first = next(json.loads(a) for a in acks if saga_shard("default", json.loads(a)["saga"], 8) % 2 == owner)
        forged.append(json.dumps({**first, "version": 99, "event": "milestone_completed"}))
    (work / "acks.log").write_text("\n".join(acks + forged) + "\n")
    verdict = check(str(work / "data"), str(work / "acks.log"), str(work / "ledger.log"), [])
    assert len(verdict.violations["I1"]) == 2, verdict.violations["I1"]
