"""The console entry point: `saga-journey demo` in a real subprocess, on a temp data folder."""

from __future__ import annotations

import subprocess
import sys


def test_demo_prints_the_rollback_in_reverse_order(tmp_path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "saga_journey.runtime.cli", "demo", "--data-dir", str(tmp_path / "d")],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    handler_lines = [line.split("(")[0].split()[-1] for line in out.splitlines() if "handler " in line]
    assert handler_lines == ["revert_analysis", "delete_uploaded_content"]
    timeline = [line.split()[2] for line in out.splitlines() if line.startswith("  ") and "#" in line]
    assert timeline == [
        "saga_started", "milestone_completed", "milestone_completed", "milestone_failed",
        "compensation_succeeded", "compensation_succeeded",
    ]
    assert "final: FAILED, compensation succeeded" in out
    assert "['analyze_content', 'upload_content']" in out


def test_backup_writes_a_copy_that_opens(tmp_path) -> None:
    data, copy = tmp_path / "d", tmp_path / "copy"
    subprocess.run([sys.executable, "-m", "saga_journey.runtime.cli", "demo", "--data-dir", str(data)],
                   capture_output=True, check=True, timeout=120)
    subprocess.run([sys.executable, "-m", "saga_journey.runtime.cli", "backup", "--data-dir", str(data),
                    str(copy)], capture_output=True, check=True, timeout=120)
    from saga_journey.persistence import LmdbStore
    from saga_journey.persistence.recent import Query

    with LmdbStore(str(copy)) as store:
        sagas, _ = store.find_sagas(Query("default", status="FAILED"))
    assert len(sagas) == 1 and sagas[0]["compensated"] == ["analyze_content", "upload_content"]
