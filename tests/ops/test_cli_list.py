"""``sagas list/show`` and ``journeys`` against a server holding a known fleet of sagas, and the
same reads on its data folder, read-only, while it runs."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest

from .conftest import ADMIN, CLI, design, free_port, make_saga



def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout


def listed(gateway, *args: str) -> set[str]:
    return {v["saga_id"] for v in json.loads(ok(gateway.cli("sagas", "list", "--json", "--limit", "1000", *args)))}


@pytest.fixture(scope="module")
def fleet(gateway) -> dict[str, Any]:
    """Everything on this module's server: u-fleet's sagas in each state, one of u-other, and
    one of a second journey."""
    first, second = design(gateway), design(gateway)
    with gateway.client() as c:
        s = {o: make_saga(c, first["journey_id"], "u-fleet", o)["saga_id"]
             for o in ("in_progress", "completed", "compensated", "parked")}
        s["other_user"] = make_saga(c, first["journey_id"], "u-other", "in_progress")["saga_id"]
        s["second_journey"] = make_saga(c, second["journey_id"], "u-fleet", "completed")["saga_id"]
    return {"sagas": s, "journeys": (first, second)}


def test_status_journey_type_and_limit(gateway, fleet) -> None:
    s = fleet["sagas"]
    assert listed(gateway) == set(s.values())
    assert listed(gateway, "--status", "IN_PROGRESS") == {s["in_progress"], s["other_user"]}
    assert listed(gateway, "--status", "COMPLETED") == {s["completed"], s["second_journey"]}
    assert listed(gateway, "--status", "FAILED") == {s["compensated"], s["parked"]}
    assert listed(gateway, "--journey-type", "order_processing") == set(s.values())
    assert listed(gateway, "--journey-type", "financial_transaction") == set()
    assert len(listed(gateway, "--limit", "2")) == 2


@pytest.mark.parametrize(("args", "expected"), [
    (("--parked",), {"parked"}),
    (("--status", "FAILED", "--not-parked"), {"compensated"}),
    (("--user", "u-other"), {"other_user"}),
    (("--journey-id", "{second}"), {"second_journey"}),
    (("--older-than", "1h"), set()),
    (("--older-than", "0s", "--user", "u-fleet", "--status", "COMPLETED"), {"completed", "second_journey"}),
], ids=["parked", "not-parked", "user", "journey-id", "older-than-1h", "older-than-0s"])
def test_contract_filters_on_the_gateway(gateway, fleet, args, expected) -> None:
    args = tuple(a.format(second=fleet["journeys"][1]["journey_id"]) for a in args)
    assert listed(gateway, *args) == {fleet["sagas"][k] for k in expected}


def test_url_and_token_after_the_command_win(gateway, fleet) -> None:
    # The environment points at a port nobody listens on, with a wrong key: the command's own
    # --url/--token are what it uses (as prune/backup --url take them after the command).
    env = {**os.environ, "SAGA_JOURNEY_URL": f"http://127.0.0.1:{free_port()}", "SAGA_JOURNEY_TOKEN": "wrong",
           "COLUMNS": "250"}
    run = lambda *args: subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=120)
    listed_here = run("sagas", "list", "--json", "--url", gateway.url, "--token", ADMIN)
    assert listed_here.returncode == 0, listed_here.stderr
    assert {v["saga_id"] for v in json.loads(listed_here.stdout)} == set(fleet["sagas"].values())
    shown = run("journeys", "show", fleet["journeys"][0]["journey_id"], "--json", "--url", gateway.url,
                "--token", ADMIN)
    assert shown.returncode == 0, shown.stderr
    assert run("sagas", "list", "--json").returncode == 1  # without them: the unreachable default


def test_list_is_newest_first_by_last_update(gateway, fleet) -> None:
    views = json.loads(ok(gateway.cli("sagas", "list", "--json")))
    stamps = [v["updated_at"] for v in views]
    assert len(views) == 6 and stamps == sorted(stamps, reverse=True)


def test_list_table_for_people(gateway, fleet) -> None:
    header, *rows = ok(gateway.cli("sagas", "list")).strip().splitlines()
    assert header.split() == ["SAGA", "JOURNEY", "TYPE", "STATUS", "AT", "MILESTONE", "USER", "UPDATED", "V"]
    parked = next(r for r in rows if fleet["sagas"]["parked"] in r)
    assert "FAILED (parked)" in parked and "process_payment" in parked  # where it is stuck
    assert rows[-1].strip() == "6 saga(s)"


def test_show_prints_the_card_and_both_lanes(gateway, fleet) -> None:
    sid = fleet["sagas"]["parked"]
    out = ok(gateway.cli("sagas", "show", sid))
    lines = out.splitlines()
    assert lines[0].split() == ["saga", sid]
    assert "FAILED (parked)" in out and "at process_payment" in out
    for text in ("done create_order", "FAILED ship_product: card declined", "undone reserve_inventory, attempt 1",
                 "attempt 1 to undo process_payment failed", "ledger unavailable", "backoff 0.01s",
                 "gave up undoing process_payment after 2 attempt(s)"):
        assert text in out, text
    header = next(line for line in lines if "FORWARD" in line and "COMPENSATION" in line)
    forward = next(line for line in lines if "done create_order" in line)
    undo = next(line for line in lines if "attempt 1 to undo" in line)
    lane = header.index("COMPENSATION")
    assert forward.index("done create_order") < lane <= undo.index("attempt 1 to undo")  # two lanes


def test_show_json_shape(gateway, fleet) -> None:
    sid = fleet["sagas"]["compensated"]
    doc = json.loads(ok(gateway.cli("sagas", "show", sid, "--json")))
    assert set(doc) == {"saga", "history"} and doc["saga"]["saga_id"] == sid
    assert [e["seq"] for e in doc["history"]] == list(range(1, doc["saga"]["version"] + 1))
    assert doc["history"][-1]["type"] == "compensation_succeeded"


def test_journeys_list_and_show(gateway, fleet) -> None:
    first, second = fleet["journeys"]
    rows = json.loads(ok(gateway.cli("journeys", "list", "--json")))
    assert {j["journey_id"] for j in rows} == {first["journey_id"], second["journey_id"]}
    out = ok(gateway.cli("journeys", "show", first["journey_id"]))
    assert "create_order" in out and "cancel_order" in out and "2 attempts" in out
    assert json.loads(ok(gateway.cli("journeys", "show", first["journey_id"], "--json")))["version"] == 1


def local(gateway, *args: str) -> list[str]:
    return ["--data-dir", str(gateway.data_dir), "--tenant", "acme", *args]


def test_local_data_dir_reads_while_the_server_writes(gateway, fleet) -> None:
    def rows(*args: str) -> set[tuple[str, str, int]]:
        views = json.loads(ok(gateway.cli("sagas", "list", "--json", "--limit", "1000", *args)))
        return {(v["saga_id"], v["status"], v["version"]) for v in views}

    assert rows(*local(gateway)) == rows()
    s = fleet["sagas"]
    sid = s["parked"]
    shown = json.loads(ok(gateway.cli("sagas", "show", sid, "--json", *local(gateway))))
    assert shown["saga"]["parked"] and len(shown["history"]) == shown["saga"]["version"]
    assert "gave up undoing process_payment" in ok(gateway.cli("sagas", "show", sid, *local(gateway)))
    ids = {j["journey_id"] for j in json.loads(ok(gateway.cli("journeys", "list", "--json", *local(gateway))))}
    assert ids == {j["journey_id"] for j in fleet["journeys"]}
    first = fleet["journeys"][0]["journey_id"]
    assert "create_order" in ok(gateway.cli("journeys", "show", first, *local(gateway)))
    with gateway.client() as c:  # the server still writes (no lock was taken), and the reader sees it
        new = make_saga(c, first, "u-late", "completed")["saga_id"]
    assert new in listed(gateway, *local(gateway))
    assert listed(gateway, "--data-dir", str(gateway.data_dir), "--tenant", "globex") == set()
    missing = gateway.cli("sagas", "show", sid, "--data-dir", str(gateway.data_dir), "--tenant", "globex")
    assert missing.returncode == 1 and "not found" in missing.stderr


def test_local_data_dir_applies_every_filter_itself(gateway, fleet) -> None:
    s, second = fleet["sagas"], fleet["journeys"][1]["journey_id"]
    assert listed(gateway, *local(gateway, "--parked")) == {s["parked"]}
    assert listed(gateway, *local(gateway, "--status", "FAILED", "--not-parked")) == {s["compensated"]}
    assert listed(gateway, *local(gateway, "--user", "u-other")) == {s["other_user"]}
    assert listed(gateway, *local(gateway, "--journey-id", second)) == {s["second_journey"]}
    assert listed(gateway, *local(gateway, "--older-than", "1h")) == set()
    views = json.loads(ok(gateway.cli("sagas", "list", "--json", *local(gateway, "--user", "u-fleet"))))
    stamps = [v["updated_at"] for v in views]
    assert len(views) == 5 and stamps == sorted(stamps, reverse=True)  # newest first
    oldest = json.loads(ok(gateway.cli("sagas", "list", "--json", "--oldest", *local(gateway, "--user", "u-fleet"))))
    assert [v["saga_id"] for v in oldest] == [v["saga_id"] for v in reversed(views)]


@pytest.mark.parametrize("args", [
    (), ("--status", "IN_PROGRESS"), ("--status", "COMPLETED"), ("--status", "FAILED"), ("--parked",),
    ("--status", "FAILED", "--not-parked"), ("--user", "u-fleet"), ("--user", "u-other"),
    ("--journey-id", "{second}"), ("--journey-type", "order_processing"),
    ("--journey-type", "financial_transaction"), ("--older-than", "0s"), ("--older-than", "1h"),
    ("--limit", "3"), ("--oldest",), ("--oldest", "--limit", "2", "--user", "u-fleet"),
], ids=lambda a: " ".join(a) or "all")
def test_local_and_gateway_listings_agree(gateway, fleet, args) -> None:
    """The same query answered by the gateway, by --data-dir and by --store (one listing path:
    the list index, in its order): the same sagas, the same views, in the same order."""
    args = tuple(a.format(second=fleet["journeys"][1]["journey_id"]) for a in args)

    def views(*where: str) -> list[dict[str, Any]]:
        return json.loads(ok(gateway.cli("sagas", "list", "--json", *args, *where)))

    remote = views()
    assert views(*local(gateway)) == remote
    assert views("--store", f"lmdb:{gateway.data_dir}", "--tenant", "acme") == remote
    if not args:
        assert len(remote) >= 6  # the fleet is there: the comparison is not of two empty lists


def test_local_listing_refuses_both_a_folder_and_a_store(gateway, fleet) -> None:
    proc = gateway.cli("sagas", "list", "--data-dir", str(gateway.data_dir), "--store", f"lmdb:{gateway.data_dir}")
    assert proc.returncode == 2 and "not both" in proc.stderr
    proc = gateway.cli("sagas", "list", "--store", "postgresql://db/sagas")
    assert proc.returncode == 2 and "unsupported scheme 'postgresql'" in proc.stderr and "lmdb" in proc.stderr
