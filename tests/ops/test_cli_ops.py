"""`saga-journey prune|backup --url`: the online operations through a real `serve` subprocess,
with the same confirmation as locally, counted in the server's metrics; progress bars stay off
when stderr is not a terminal and with --json."""

from __future__ import annotations

import json
import urllib.request

from saga_journey.persistence.verify import verify

from tests.test_retention import old_store

from .conftest import READER, running_gateway


def _metric(url: str, name: str) -> float:
    text = urllib.request.urlopen(f"{url}/metrics", timeout=30).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def test_prune_and_backup_through_the_gateway(tmp_path) -> None:
    old_store(tmp_path / "data")
    with running_gateway(tmp_path) as gw:
        url = gw.url
        refused = gw.cli("prune", "--url", url, "--older-than", "30d")
        assert refused.returncode == 2 and "7 saga(s) would be removed; pass --yes" in refused.stderr
        assert gw.cli("prune", "--url", url, "--older-than", "30d", "--yes", token=READER).returncode == 2
        pruned = gw.cli("prune", "--url", url, "--older-than", "30d", "--yes", "--batch", "3")
        assert pruned.returncode == 0, pruned.stderr
        assert "pruned 7 saga(s)" in pruned.stdout and pruned.stderr == ""  # no bar off a TTY
        again = gw.cli("prune", "--url", url, "--older-than", "30d", "--yes", "--json")
        assert json.loads(again.stdout)["pruned"] == 0
        assert _metric(url, "saga_pruned_sagas_total") == 7
        with gw.client() as c:
            left = {s["saga_id"] for s in c.list_sagas(limit=1000)["sagas"]}
        assert left == {"old-parked", "recent-0"}

        dest = tmp_path / "online-backup"
        done = gw.cli("backup", "--url", url, str(dest), "--json")
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["dest"] == str(dest) and result["bytes"] > 0 and done.stderr == ""
        assert gw.cli("backup", "--url", url, str(dest)).returncode == 2  # not empty any more
    report = verify(str(dest))
    assert report.ok and report.sagas == 2, report.to_dict()


def test_local_backup_and_verify_print_results_without_bars_off_a_tty(tmp_path) -> None:
    import subprocess

    from .conftest import CLI

    old_store(tmp_path / "data")
    run = lambda *a: subprocess.run([*CLI, *a], check=False, capture_output=True, text=True, timeout=120)
    done = run("backup", "--data-dir", str(tmp_path / "data"), str(tmp_path / "copy"), "--json")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert json.loads(done.stdout)["bytes"] > 0
    checked = run("verify", "--data-dir", str(tmp_path / "copy"))
    assert checked.returncode == 0 and checked.stderr == ""
    assert "9 sagas, 0 corrupt, 0 inconsistent" in checked.stdout


def test_progress_bars_are_drawn_on_a_terminal(tmp_path) -> None:
    import os
    import pty
    import subprocess

    from .conftest import CLI

    old_store(tmp_path / "data")
    out = {}
    for name, args in (("verify", ["verify", "--data-dir", str(tmp_path / "data")]),
                       ("backup", ["backup", "--data-dir", str(tmp_path / "data"), str(tmp_path / "copy")]),
                       ("prune", ["prune", "--data-dir", str(tmp_path / "data"), "--older-than", "30d", "--yes"])):
        master, slave = pty.openpty()
        proc = subprocess.run([*CLI, *args], check=False, stdout=subprocess.PIPE, stderr=slave, text=True, timeout=120,
                              env={**os.environ, "COLUMNS": "120", "TERM": "xterm"})
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other side is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(master)
        assert proc.returncode == 0, name
        out[name] = b"".join(chunks).decode(errors="replace")
    assert "verifying" in out["verify"] and "backup" in out["backup"] and "pruning" in out["prune"]
    assert "7/7" in out["prune"]
