"""Disk full (a small tmpfs): writes fail with StorageError, nothing acknowledged is lost,
progress resumes once space is freed. Map full at the runtime level: a tiny map grows.

Mounting needs root (CAP_SYS_ADMIN); elsewhere the disk-full test is skipped with the reason.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from saga_journey.runtime import RuntimeConfig, SagaOrchestrator, StorageError

UC = {"tenant_id": "default", "user_id": "u"}


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _journey(orch: SagaOrchestrator) -> str:
    return orch.design_saga_journey_sync(
        "df", {"milestones": [{"id": m, "compensation_handler": "undo"} for m in ("a", "b")]},
        None, UC, journey_id="df")["journey_id"]


def test_disk_full_fails_cleanly_loses_nothing_and_resumes(small_fs) -> None:
    data = small_fs / "data"
    # Ballast leaves a little room: the store fills it quickly.
    ballast = small_fs / "ballast"
    with open(ballast, "wb") as f:
        f.write(b"\0" * (2 * 1024 * 1024 + 512 * 1024))
    orch = SagaOrchestrator.open(str(data), handlers={"undo": lambda ctx: None},
                                 config=RuntimeConfig(map_size=32 * 1024 * 1024))
    acked: dict[str, int] = {}
    try:
        jid = _journey(orch)
        failure = None
        for i in range(20000):
            sid = f"s{i:05d}"
            try:
                r = orch.execute_saga_journey_sync(jid, "u", {"pad": "x" * 2000}, UC, saga_id=sid)
            except StorageError as exc:
                failure = exc
                break
            acked[sid] = r["version"]
        assert failure is not None, "the store never filled the disk"
        print("disk full:", failure)
        assert acked, "nothing fit before the disk filled"
        # While full: every write fails with StorageError (never acknowledged), reads work.
        with pytest.raises(StorageError):
            orch.execute_saga_journey_sync(jid, "u", {"pad": "y" * 2000}, UC, saga_id="late")
        first = next(iter(acked))
        assert orch.get_saga_status_sync(first, UC)["version"] == acked[first]
        # Free space: progress resumes in the same process.
        os.unlink(ballast)
        r = orch.execute_saga_journey_sync(jid, "u", {}, UC, saga_id="after")
        acked["after"] = r["version"]
        r = orch.advance_saga_step_sync(first, jid, "u", {"status": "complete", "milestone_id": "a"}, UC)
        acked[first] = r["version"]
    finally:
        orch.close()
    orch = SagaOrchestrator.open(str(data), handlers={"undo": lambda ctx: None})
    try:
        for sid, version in acked.items():
            assert orch.get_saga_status_sync(sid, UC)["version"] == version
    finally:
        orch.close()
    out = subprocess.run([sys.executable, "-m", "saga_journey.runtime.cli", "verify", "--data-dir", str(data)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_tiny_map_grows_under_the_runtime_without_losing_data(tmp_path) -> None:
    data = str(tmp_path / "data")
    orch = SagaOrchestrator.open(data, handlers={"undo": lambda ctx: None},
                                 config=RuntimeConfig(map_size=64 * 1024))
    acked: dict[str, int] = {}
    try:
        jid = _journey(orch)
        for i in range(300):
            sid = f"s{i:04d}"
            acked[sid] = orch.execute_saga_journey_sync(jid, "u", {"pad": "z" * 1500}, UC, saga_id=sid)["version"]
        stats = orch.stats()["store"]
        assert stats["map_grows"] >= 1 and stats["map_size"] > 64 * 1024
    finally:
        orch.close()
    orch = SagaOrchestrator.open(data, handlers={"undo": lambda ctx: None}, config=RuntimeConfig(map_size=64 * 1024))
    try:
        assert {s: orch.get_saga_status_sync(s, UC)["version"] for s in acked} == acked
    finally:
        orch.close()
