"""Stored format 2 (ids scoped by tenant): a folder written by the previous release opens without loss.

The old folder is written by the previous release's own code (``git archive`` of commit
83ba9c1, run in a subprocess): two tenants, completed, compensated, parked and in-progress
sagas, idempotency keys, a pending milestone timer and a compensation owed at shutdown. The
new code must read every saga, history entry, journey version and idempotency record back
unchanged, keep every index right (verify, metrics), recover the owed work and accept writes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import io
from pathlib import Path
from typing import Any

import pytest

from saga_journey.persistence import layout
from saga_journey.persistence.keys import scoped_key
from saga_journey.persistence.recent import Query
from saga_journey.persistence.lmdb_store import LmdbStore
from saga_journey.persistence.records import encode_record
from saga_journey.persistence.verify import verify
from saga_journey.runtime import CorruptRecordError, SagaOrchestrator, StorageError
from saga_journey.runtime.cli import main as cli_main

PREVIOUS = "83ba9c1"
REPO = Path(__file__).resolve().parents[1]
TENANTS = ("acme", "globex")
KINDS = ("done", "comp", "parked", "idem", "timer", "owed")
IDEM_KEYS = ("k-design", "k-start", "k-adv")

# Runs on the previous release's code: writes the folder, then dumps what that code reads back.
OLD_WRITER = r'''
import json, sys, threading
import saga_journey
assert saga_journey.__file__.startswith(sys.argv[2]), saga_journey.__file__
from saga_journey.runtime import SagaOrchestrator
from saga_journey.persistence.lmdb_store import LmdbStore
from saga_journey.actors.directory import view_of

path, out = sys.argv[1], sys.argv[3]
owed_tried = threading.Event()

def undo(ctx):
    if ctx.saga_id.endswith("-parked"):
        raise RuntimeError("downstream refuses")
    if ctx.saga_id.endswith("-owed"):
        owed_tried.set()
        raise RuntimeError("downstream down, for now")

FAST = {"max_attempts": 2, "initial_delay_s": 0.0, "backoff": 1.0, "max_delay_s": 0.0}
SLOW = {"max_attempts": 50, "initial_delay_s": 0.2, "backoff": 1.0, "max_delay_s": 0.2}
STEPS = [{"id": m, "compensation_handler": "undo"} for m in ("a", "b", "c")]
orch = SagaOrchestrator.open(path, handlers={"undo": undo})
for t in ("acme", "globex"):
    uc = {"tenant_id": t, "user_id": "u-" + t}
    def adv(sid, m, status="complete", **kw):
        orch.advance_saga_step_sync(sid, None, "u", {"status": status, "milestone_id": m}, uc, **kw)
    orders = t + "-orders"
    orch.design_saga_journey_sync("orders", {"milestones": STEPS, "retry": FAST}, None, uc, journey_id=orders)
    orch.design_saga_journey_sync("orders", {"milestones": STEPS, "retry": FAST}, None, uc,
                                  journey_id=orders, idempotency_key="k-design")
    orch.design_saga_journey_sync("slow", {"milestones": [{"id": "a", "compensation_handler": "undo",
                                  "timeout_s": 3600}]}, None, uc, journey_id=t + "-slow")
    orch.design_saga_journey_sync("patient", {"milestones": STEPS, "retry": SLOW}, None, uc,
                                  journey_id=t + "-patient")
    start = lambda kind, j=orders, **kw: orch.execute_saga_journey_sync(
        j, "u-" + t, {"kind": kind, "n": [1, 2.5, None]}, uc, saga_id=f"{t}-{kind}", **kw)
    start("done"); adv(f"{t}-done", "a"); adv(f"{t}-done", "b"); adv(f"{t}-done", "c")
    start("comp"); adv(f"{t}-comp", "a"); adv(f"{t}-comp", "b"); adv(f"{t}-comp", "c", "failed")
    start("parked"); adv(f"{t}-parked", "a"); adv(f"{t}-parked", "b", "failed")
    start("idem", idempotency_key="k-start"); adv(f"{t}-idem", "a", idempotency_key="k-adv")
    start("timer", t + "-slow")
    for kind in ("comp", "parked"):
        orch.wait_for_saga_sync(f"{t}-{kind}", uc, timeout=30)
owed_uc = {"tenant_id": "globex", "user_id": "u-globex"}
orch.execute_saga_journey_sync("globex-patient", "u", {}, owed_uc, saga_id="globex-owed")
orch.advance_saga_step_sync("globex-owed", None, "u", {"status": "complete"}, owed_uc)
orch.advance_saga_step_sync("globex-owed", None, "u", {"status": "failed"}, owed_uc)
assert owed_tried.wait(30)
orch.close()

store = LmdbStore(path)
dump = {"sagas": {}, "journeys": {}, "idem": {}}
for t in ("acme", "globex"):
    snaps = []
    for status in ("IN_PROGRESS", "COMPENSATING", "COMPLETED", "FAILED"):
        snaps += store.list_sagas(t, status=status, limit=1000)[0]
    dump["sagas"][t] = {s["saga_id"]: {"snapshot": s, "view": view_of(s),
                        "history": store.load_history(s["saga_id"])} for s in snaps}
    dump["journeys"][t] = {
        j["journey_id"]: [store.load_journey(j["journey_id"], v) for v in range(1, j["version"] + 1)]
        for j in store.list_journeys(t)}
    dump["idem"][t] = {k: store.get_idempotency(t + "\0" + k) for k in ("k-design", "k-start", "k-adv")}
dump["counts"] = sorted([*k, v] for k, v in store.count_by_status().items())
dump["comp_failed"] = store.count_compensation_failed()
dump["oldest"] = store.oldest_active()
dump["owed"] = sorted(store.sagas_with_work_owed())
dump["wakeups"] = sorted(store.pending_wakeups())
store.close()
with open(out, "w") as f:
    json.dump(dump, f)
'''


def _previous_release(dest: Path) -> Path:
    """The previous commit's packages, as an importable ``saga_journey`` under ``dest``."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed: cannot check out the previous release")
    probe = subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{PREVIOUS}^{{commit}}"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"git history without commit {PREVIOUS} (shallow clone?): no previous release")
    tar = subprocess.run(
        ["git", "-C", str(REPO), "archive", PREVIOUS, "runtime", "actors", "persistence", "http", "metrics"],
        capture_output=True, check=True,
    ).stdout
    pkg = dest / "saga_journey"
    pkg.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(pkg, filter="data")
    (pkg / "__init__.py").write_text("")
    return dest


@pytest.fixture(scope="module")
def old_folder(tmp_path_factory) -> tuple[Path, dict[str, Any]]:
    """A data folder written by the previous release, and what that release read back from it."""
    base = tmp_path_factory.mktemp("previous")
    pkg = _previous_release(base / "pkg")
    script = base / "write_old.py"
    script.write_text(OLD_WRITER)
    data, out = base / "data", base / "dump.json"
    env = {**os.environ, "PYTHONPATH": str(pkg)}
    proc = subprocess.run([sys.executable, str(script), str(data), str(pkg), str(out)],
                          cwd=base, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return data, json.loads(out.read_text())


@pytest.fixture
def folder(old_folder, tmp_path) -> tuple[str, dict[str, Any]]:
    data, dump = old_folder
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    return str(copy), dump


# Status-view fields added after 83ba9c1; an upgraded saga shows them empty.
VIEW_FIELDS_ADDED_SINCE = {"last_compensation_error"}
DERIVED_FIELDS = ("started_at_iso", "updated_at_iso")  # computed from the epoch fields on read


def _assert_same_view(new: dict[str, Any], old: dict[str, Any]) -> None:
    view = _json(new)
    for name in DERIVED_FIELDS:
        assert view.pop(name).endswith("Z")
    added = {k: view.pop(k) for k in set(view) - set(old)}
    assert view == old
    assert set(added) <= VIEW_FIELDS_ADDED_SINCE and not any(added.values()), added


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _check_store_reads_back(store: LmdbStore, dump: dict[str, Any]) -> None:
    from saga_journey.actors.directory import view_of

    for t in TENANTS:
        stored = {}
        for status in ("IN_PROGRESS", "COMPENSATING", "COMPLETED", "FAILED"):
            stored.update({s["saga_id"]: s for s in store.find_sagas(Query(t, status=status), limit=1000)[0]})
        assert sorted(stored) == sorted(dump["sagas"][t])
        for sid, old in dump["sagas"][t].items():
            key = scoped_key(t, sid)
            assert _json(store.load_saga(key)) == old["snapshot"] == _json(stored[sid])
            _assert_same_view(view_of(store.load_saga(key)), old["view"])
            assert _json(store.load_history(key)) == old["history"]
        assert sorted(j["journey_id"] for j in store.list_journeys(t)) == sorted(dump["journeys"][t])
        for jid, versions in dump["journeys"][t].items():
            for v, old in enumerate(versions, 1):
                assert _json(store.load_journey(scoped_key(t, jid), v)) == old
        for k in IDEM_KEYS:
            assert _json(store.get_idempotency(scoped_key(t, k))) == dump["idem"][t][k] is not None
    assert sorted([*k, v] for k, v in store.count_by_status().items()) == dump["counts"]
    assert store.count_compensation_failed() == dump["comp_failed"]
    assert store.oldest_active() == dump["oldest"]
    assert sorted(store.sagas_with_work_owed()) == [scoped_key("globex", "globex-owed")] == [
        scoped_key("globex", s) for s in dump["owed"]]
    assert sorted(store.pending_wakeups()) == sorted(
        (scoped_key(sid.split("-")[0], sid), at) for sid, at in dump["wakeups"])


def test_previous_release_writes_what_this_test_expects(old_folder) -> None:
    _, dump = old_folder
    for t in TENANTS:
        views = {sid: s["view"] for sid, s in dump["sagas"][t].items()}
        assert views[f"{t}-done"]["status"] == "COMPLETED"
        assert views[f"{t}-comp"]["compensation_status"] == "succeeded"
        assert views[f"{t}-parked"]["parked"] is True
        assert views[f"{t}-timer"]["milestone_due_at"] is not None
        assert len(dump["journeys"][t][f"{t}-orders"]) == 2
    assert dump["sagas"]["globex"]["globex-owed"]["view"]["status"] == "COMPENSATING"
    assert dump["owed"] == ["globex-owed"] and len(dump["wakeups"]) == 2


def test_old_folder_is_upgraded_on_open_without_loss(folder) -> None:
    path, dump = folder
    old = verify(path)
    assert not old.ok and "stored format is 1" in old.inconsistent[0] and not old.corrupt
    with LmdbStore(path) as store:
        assert store.format_found == 1
        _check_store_reads_back(store, dump)
    assert verify(path).ok, verify(path).to_dict()
    with LmdbStore(path) as store:  # a second open finds format 2 and changes nothing
        assert store.format_found == layout.FORMAT_VERSION
        _check_store_reads_back(store, dump)


def test_upgraded_folder_recovers_and_accepts_writes(folder) -> None:
    path, dump = folder
    seen: list[str] = []

    def undo(ctx: Any) -> None:
        seen.append(ctx.idempotency_key)

    with SagaOrchestrator.open(path, handlers={"undo": undo}) as orch:
        for t in TENANTS:
            uc = {"tenant_id": t, "user_id": "u-" + t}
            for sid, old in dump["sagas"][t].items():
                if sid != "globex-owed":
                    _assert_same_view(orch.get_saga_status_sync(sid, uc), old["view"])
                    read = _json(orch.get_saga_execution_history_sync(sid, uc))
                    assert all(e.pop("at_iso").endswith("Z") for e in read)  # derived on read
                    assert read == old["history"]
            # Idempotent replays of requests made before the upgrade answer what they answered.
            request = (f"{t}-orders", "u-" + t, {"kind": "idem", "n": [1, 2.5, None]}, uc)
            replay = orch.execute_saga_journey_sync(*request, saga_id=f"{t}-idem", idempotency_key="k-start")
            assert replay["replayed"] is True
            assert _json({**replay, "replayed": None}) == {**dump["idem"][t]["k-start"]["response"], "replayed": None}
            # The pending milestone timer and the sagas still in progress move on.
            done = orch.advance_saga_step_sync(f"{t}-timer", None, "u", {"status": "complete"}, uc)
            assert done["status"] == "COMPLETED"
            # New writes, under ids both tenants now share.
            orch.design_saga_journey_sync("orders", {"milestones": [{"id": "a"}]}, None, uc, journey_id="shared")
            assert orch.execute_saga_journey_sync("shared", "u", {}, uc, saga_id="order-42")["tenant_id"] == t
        # The compensation owed at shutdown resumes at once (its retry time has passed).
        owed = orch.wait_for_saga_sync("globex-owed", {"tenant_id": "globex"}, timeout=30)
        assert owed["status"] == "FAILED" and owed["compensation_status"] == "succeeded"
        assert seen and set(seen) == {"globex/globex-owed/a/compensate"}
        assert orch.stats()["store"]["quarantined_records"] == 0
    assert verify(path).ok, verify(path).to_dict()


def test_a_failed_upgrade_leaves_the_old_folder(folder, monkeypatch) -> None:
    path, dump = folder

    def broken(*_: Any) -> int:
        raise StorageError("simulated failure half way through the upgrade")

    monkeypatch.setattr(layout, "_move_idempotency", broken)  # after sagas and journeys moved
    with pytest.raises(StorageError, match="half way"):
        LmdbStore(path)
    assert "stored format is 1" in verify(path).inconsistent[0]  # nothing of it was committed
    monkeypatch.undo()
    with LmdbStore(path) as store:  # the lock was released; the upgrade now completes
        _check_store_reads_back(store, dump)


def test_migrate_command(folder, capsys) -> None:
    path, dump = folder
    assert cli_main(["migrate", "--data-dir", path]) == 0
    assert "upgraded from stored format 1 to 3" in capsys.readouterr().out
    assert verify(path).ok
    assert cli_main(["migrate", "--data-dir", path]) == 0
    assert "already at stored format 3" in capsys.readouterr().out
    with LmdbStore(path) as store:
        _check_store_reads_back(store, dump)


def test_folder_of_a_newer_format_is_refused(tmp_path) -> None:
    path = str(tmp_path / "data")
    LmdbStore(path).close()
    import lmdb

    env = lmdb.open(path, max_dbs=16)
    with env.begin(write=True) as txn:
        txn.put(layout.FORMAT_KEY, encode_record(99), db=env.open_db(b"meta", txn=txn))
    env.close()
    with pytest.raises(StorageError, match="stored format 99, written by a newer release"):
        LmdbStore(path)
    with pytest.raises(StorageError, match="newer release"):  # refused again: the lock was freed
        LmdbStore(path)


def test_corrupt_old_records_do_not_block_the_upgrade(folder) -> None:
    """A corrupt format-1 saga still moves (its tenant is in the index) and stays quarantined;
    a corrupt journey cannot be scoped and is reported; everything else upgrades."""
    import lmdb

    path, dump = folder
    env = lmdb.open(path, max_dbs=16)
    with env.begin(write=True) as txn:
        for name, key in ((b"sagas", b"acme-done"), (b"journeys", b"acme-slow\x000000000001")):
            db = env.open_db(name, txn=txn)
            raw = bytearray(txn.get(key, db=db))
            raw[len(raw) // 2] ^= 0xFF
            txn.put(key, bytes(raw), db=db)
    env.close()
    with SagaOrchestrator.open(path, handlers={"undo": lambda ctx: None}) as orch:
        uc = {"tenant_id": "acme"}
        listed = {s["saga_id"] for s in orch.list_sagas_sync(user_context=uc)["sagas"]}
        assert listed == set(dump["sagas"]["acme"]) - {"acme-done"}
        with pytest.raises(CorruptRecordError):
            orch.get_saga_status_sync("acme-done", uc)
        where = [q["where"] for q in orch.store.quarantined()]
        assert "sagas/acme/acme-done" in where and "journeys/acme-slow/v0000000001" in where
        assert orch.get_saga_status_sync("globex-done", {"tenant_id": "globex"})["status"] == "COMPLETED"
