"""``saga-journey sagas|journeys|events`` in real subprocesses against a real server, and
against its data folder read-only while it runs."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import threading
import uuid
from typing import Any

import pytest

from .conftest import ADMIN, CLI, ORDER, READER, design, make_saga



def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout


def test_abort_retry_skip_one_saga(gateway, journey) -> None:
    with gateway.client() as c:
        running = make_saga(c, journey["journey_id"], "u-act", "in_progress")
        out = ok(gateway.cli("sagas", "abort", running["saga_id"], "--reason", "customer cancelled", "--json"))
        assert json.loads(out)["status"] in ("COMPENSATING", "FAILED")
        assert c.wait_for_saga(running["saga_id"], timeout=30)["compensated_milestones"] == ["create_order"]

        parked = make_saga(c, journey["journey_id"], "u-act", "parked")
        gateway.hooks.fixed.add(parked["saga_id"])
        out = ok(gateway.cli("sagas", "retry", parked["saga_id"], "--reason", "ledger is back"))
        assert parked["saga_id"] in out
        final = c.wait_for_saga(parked["saga_id"], version=parked["version"] + 1, timeout=30)
        final = c.wait_for_saga(parked["saga_id"], timeout=30)
        assert (final["parked"], final["compensation_status"]) == (False, "succeeded")

        stuck = make_saga(c, journey["journey_id"], "u-act", "parked")
        ok(gateway.cli("sagas", "skip", stuck["saga_id"], "--reason", "refunded by hand in the PSP console"))
        final = c.wait_for_saga(stuck["saga_id"], version=stuck["version"], timeout=30)
        final = c.wait_for_saga(stuck["saga_id"], timeout=30)
        assert final["manually_compensated"] == ["process_payment"]
        assert final["compensated_milestones"][-1] == "create_order" and not final["parked"]
        history = c.get_saga_execution_history(stuck["saga_id"])
        skipped = next(e for e in history if e["type"] == "compensation_skipped")
        assert (skipped["reason"], skipped["by"]) == ("refunded by hand in the PSP console", "ops")


def test_bulk_retry_asks_first_and_declining_changes_nothing(own_gateway) -> None:
    gw, journey_id = own_gateway, design(own_gateway)["journey_id"]
    with gw.client() as c:
        parked = [make_saga(c, journey_id, "u-bulk", "parked") for _ in range(3)]
        make_saga(c, journey_id, "u-bulk", "completed")  # matches the filter, not the action
        args = ("sagas", "retry", "--journey-type", "order_processing", "--reason", "ledger is back")
        declined = gw.cli(*args, input="n\n")
        assert declined.returncode == 1 and "3 saga(s)?" in declined.stderr and "nothing changed" in declined.stderr
        assert all(c.get_saga_status(p["saga_id"])["version"] == p["version"] for p in parked)
        assert gw.cli(*args).returncode == 1  # no answer at all (stdin closed): nothing done either

        gw.hooks.fixed.update(p["saga_id"] for p in parked)
        done = gw.cli(*args, "--json", input="y\n")
        assert done.returncode == 0, done.stderr
        lines = [json.loads(line) for line in done.stdout.splitlines()]
        assert {o["saga_id"] for o in lines} == {p["saga_id"] for p in parked}
        assert all(o["ok"] for o in lines) and "3 done, 0 failed" in done.stderr
        assert "3/3" not in done.stderr and "━" not in done.stderr  # no progress bar with --json, nor off a TTY
        for p in parked:
            final = c.wait_for_saga(p["saga_id"], version=p["version"], timeout=30)
            final = c.wait_for_saga(p["saga_id"], timeout=30)
            assert (final["compensation_status"], final["parked"]) == ("succeeded", False)


def test_bulk_abort_with_yes_and_partial_failures_exit_1(own_gateway) -> None:
    gw, journey_id = own_gateway, design(own_gateway)["journey_id"]
    with gw.client() as c:
        running = [make_saga(c, journey_id, "u-bulk", "in_progress") for _ in range(2)]
        done = make_saga(c, journey_id, "u-bulk", "completed")
        out = ok(gw.cli("sagas", "abort", "--journey-type", "order_processing", "--reason", "closing", "--yes", "--json"))
        assert {json.loads(line)["saga_id"] for line in out.splitlines()} == {r["saga_id"] for r in running}
        for r in running:
            assert c.wait_for_saga(r["saga_id"], timeout=30)["status"] == "FAILED"
    nothing = gw.cli("sagas", "abort", "--all", "--reason", "again", "--yes")
    assert nothing.returncode == 0 and "nothing to do" in nothing.stderr
    refused = gw.cli("sagas", "abort", "--reason", "oops")  # no id, no filter: refused
    assert refused.returncode == 2 and "--all" in refused.stderr
    failed = gw.cli("sagas", "abort", done["saga_id"], "--reason", "too late")
    assert failed.returncode == 1 and failed.stderr.startswith("saga-journey: ") and len(failed.stderr.splitlines()) == 1


def test_watch_follows_a_saga_until_it_finishes(gateway, journey) -> None:
    with gateway.client() as c:
        saga = make_saga(c, journey["journey_id"], "u-watch", "in_progress")
        proc = subprocess.Popen([*CLI, "sagas", "watch", saga["saga_id"], "--json"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "SAGA_JOURNEY_URL": gateway.url, "SAGA_JOURNEY_TOKEN": ADMIN})
        try:
            first = json.loads(proc.stdout.readline())  # the history so far comes first
            assert (first["seq"], first["saga_id"]) == (1, saga["saga_id"])
            for milestone, _ in ORDER[1:]:
                c.advance_saga_step(saga["saga_id"], step_result={"status": "complete", "milestone_id": milestone})
            watchdog = threading.Timer(60, proc.kill)  # a watch that never ends fails, not hangs
            watchdog.start()
            rest = proc.stdout.read()  # through the same buffer as readline: nothing is skipped
            assert proc.wait() == 0, proc.stderr.read()
            watchdog.cancel()
        finally:
            proc.kill()
        events = [first] + [json.loads(line) for line in rest.splitlines()]
        assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
        assert events[-1]["status"] == "COMPLETED"


def test_events_streams_one_json_object_per_line(gateway, journey) -> None:
    proc = subprocess.Popen([*CLI, "events", "--user", "u-events", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "SAGA_JOURNEY_URL": gateway.url, "SAGA_JOURNEY_TOKEN": ADMIN})
    try:
        with gateway.client() as c:
            sel = selectors.DefaultSelector()
            sel.register(proc.stdout, selectors.EVENT_READ)
            line = ""
            for _ in range(40):  # the stream starts "now": write until the first event shows
                c.execute_saga_journey(journey["journey_id"], "u-events")
                if sel.select(0.5):
                    line = proc.stdout.readline()
                    break
        event = json.loads(line)
        assert event["user_id"] == "u-events" and event["event"] == "saga_started"
    finally:
        proc.kill()
        proc.communicate()


def test_errors_are_one_line(gateway) -> None:
    missing = gateway.cli("sagas", "show", "saga_nope")
    assert missing.returncode == 1 and missing.stderr.strip() == "saga-journey: saga saga_nope not found"
    denied = gateway.cli("sagas", "list", token="wrong")
    assert denied.returncode == 1 and "bearer token" in denied.stderr
    forbidden = gateway.cli("sagas", "abort", "saga_x", "--reason", "r", token=READER)
    assert forbidden.returncode == 1 and "'write' role" in forbidden.stderr
    bad = gateway.cli("sagas", "list", "--older-than", "5 parsecs")
    assert bad.returncode == 2 and "90s, 15m, 1h" in bad.stderr


def test_version_and_help_with_defaults() -> None:
    def run(*args: str) -> str:
        return ok(subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60,
                                 env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"}))

    assert run("--version").startswith("saga-journey ")
    assert "[default: 20" in run("sagas", "list", "--help")
    for command in (("sagas", "show"), ("sagas", "watch"), ("sagas", "abort"), ("sagas", "retry"),
                    ("sagas", "skip"), ("journeys", "list"), ("journeys", "show"), ("events",)):
        text = run(*command, "--help")
        assert "Usage: saga-journey" in text and "--json" in text, command
    top = run("--help")
    assert all(name in top for name in ("sagas", "journeys", "events", "serve", "demo", "SAGA_JOURNEY_URL"))
