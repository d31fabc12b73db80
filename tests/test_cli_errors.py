"""Command-line mistakes are one-line errors (exit 2) that create nothing; real subprocesses."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from saga_journey.http.auth import hash_token
from saga_journey.http.settings import load_config, toml_string

CLI = [sys.executable, "-m", "saga_journey.runtime.cli"]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def assert_refused(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit 2 with exactly one line on stderr (no traceback), naming what was wrong."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("saga-journey: "), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.mark.parametrize(
    "command",
    [["backup", "--data-dir", "{data}", "{dest}"], ["verify", "--data-dir", "{data}"],
     ["quarantine", "--data-dir", "{data}"], ["serve", "--data-dir", "{data}", "--port", "0", "--insecure-dev"]],
    ids=lambda c: c[0],
)
def test_a_data_folder_without_a_store_is_refused_and_not_created(tmp_path, command) -> None:
    data, dest = tmp_path / "typo" / "data", tmp_path / "dest"
    proc = run_cli(*(a.format(data=data, dest=dest) for a in command))
    assert_refused(proc, str(data), "no saga-journey store")
    if command[0] == "serve":
        assert "--create" in proc.stderr
    assert not (tmp_path / "typo").exists() and not dest.exists()


STORE_COMMANDS = [["demo"], ["backup", "{dest}"], ["verify"], ["quarantine"], ["migrate"],
                  ["prune", "--older-than", "1d", "--yes"], ["serve", "--create", "--port", "0", "--insecure-dev"]]


@pytest.mark.parametrize("command", STORE_COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize(("url", "words"), [
    ("postgresql://db/sagas", ["unsupported scheme 'postgresql'", "supported schemes: lmdb"]),
    ("./data", ["has no scheme", "lmdb"]),
    ("lmdb://host/data", ["no host"]),
    ("lmdb:", ["names no folder"]),
], ids=["unknown-scheme", "no-scheme", "host", "empty"])
def test_a_bad_store_url_is_refused_before_anything_is_created(tmp_path, command, url, words) -> None:
    proc = run_cli(*(a.format(dest=tmp_path / "dest") for a in command), "--store", url, cwd=tmp_path)
    assert_refused(proc, *words)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", STORE_COMMANDS[1:], ids=lambda c: c[0])
def test_a_store_url_and_a_data_dir_together_are_refused(tmp_path, command) -> None:
    args = [a.format(dest=tmp_path / "dest") for a in command]
    proc = run_cli(*args, "--data-dir", str(tmp_path / "d"), "--store", f"lmdb:{tmp_path / 'd'}")
    assert_refused(proc, "not both")
    assert list(tmp_path.iterdir()) == []


def test_every_store_command_takes_a_store_url(tmp_path) -> None:
    """demo creates the store at the URL; backup, verify, quarantine, migrate, prune read it."""
    url = f"lmdb://{tmp_path / 'data'}"  # lmdb:///abs/path
    assert run_cli("demo", "--store", url).returncode == 0
    assert (tmp_path / "data" / "data.mdb").is_file()
    verified = run_cli("verify", "--store", url)
    assert verified.returncode == 0 and verified.stdout.startswith(f"{url}: ") and "0 corrupt" in verified.stdout
    assert run_cli("quarantine", "--store", url).returncode == 0
    assert "already at stored format" in run_cli("migrate", "--store", url).stdout
    assert "nothing to prune" in run_cli("prune", "--older-than", "1d", "--yes", "--store", url).stdout
    backup = run_cli("backup", "--store", f"lmdb:{tmp_path / 'data'}", str(tmp_path / "copy"))
    assert backup.returncode == 0 and (tmp_path / "copy" / "data.mdb").is_file()
    relative = run_cli("verify", "--store", "lmdb:copy", cwd=tmp_path)  # lmdb:relative/path
    assert relative.returncode == 0, relative.stderr


@pytest.mark.parametrize("port", ["-1", "65536", "99999", "http", "8080.5", ""])
def test_serve_refuses_an_invalid_port_before_creating_anything(tmp_path, port) -> None:
    proc = run_cli("serve", "--create", "--data-dir", str(tmp_path / "data"), "--port", port, "--insecure-dev")
    assert_refused(proc, "--port must be an integer from 0 to 65535")
    assert not (tmp_path / "data").exists()


def test_serve_refuses_a_busy_port_before_creating_anything(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        proc = run_cli("serve", "--create", "--data-dir", str(tmp_path / "data"), "--port", port, "--insecure-dev")
    assert_refused(proc, f"cannot listen on 127.0.0.1:{port}", "in use")
    assert not (tmp_path / "data").exists()


@pytest.mark.skipif(importlib.util.find_spec("uvloop") is not None, reason="uvloop is installed here")
def test_serve_loop_uvloop_without_uvloop_is_refused(tmp_path) -> None:
    proc = run_cli("serve", "--create", "--data-dir", str(tmp_path / "data"), "--port", "0", "--loop", "uvloop")
    assert_refused(proc, "uvloop is not installed")
    assert not (tmp_path / "data").exists()


def test_serve_refuses_a_bad_config_before_creating_anything(tmp_path) -> None:
    (tmp_path / "saga.toml").write_text('[gateway]\nmax_in_flight = "many"\n')
    proc = run_cli("serve", "--create", "--data-dir", str(tmp_path / "data"), "--port", "0",
                   "--config", str(tmp_path / "saga.toml"))
    assert_refused(proc, "gateway.max_in_flight")
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [(["--roles", "superuser"], ["superuser", "allowed: read, write, admin"]),
     (["--roles", "read,Admin"], ["Admin", "allowed"]),
     (["--roles", ","], ["no role given"]),
     (["--tenant", 'ac"me'], ["--tenant", "letters, digits"]),
     (["--user", "a\nb"], ["--user"]),
     (["--tenant", ""], ["--tenant"]),
     (["--token", ""], ["--token"])],
)
def test_hash_key_refuses_what_serve_would_refuse(args, words) -> None:
    proc = run_cli("hash-key", *args)
    assert_refused(proc, *words)
    assert proc.stdout == ""


def test_hash_key_entry_parses_and_loads_with_the_server_config_loader(tmp_path) -> None:
    proc = run_cli("hash-key", "--tenant", "acme.eu-1", "--user", "ops:alice", "--roles", "read, admin")
    assert proc.returncode == 0, proc.stderr
    token = proc.stderr.strip().rsplit(" ", 1)[-1]
    assert tomllib.loads(proc.stdout)["api_keys"][0]["tenant_id"] == "acme.eu-1"
    cfg = tmp_path / "saga.toml"
    cfg.write_text(proc.stdout)
    (key,) = load_config(str(cfg)).gateway.api_keys
    assert (key.sha256, key.tenant_id, key.user_id) == (hash_token(token), "acme.eu-1", "ops:alice")
    assert key.roles == {"read", "admin"}


@given(st.text())
def test_toml_string_round_trips_any_text(value: str) -> None:
    assert tomllib.loads(f"k = {toml_string(value)}\n")["k"] == value


def test_demo_refuses_an_unknown_milestone_listing_the_valid_ones(tmp_path) -> None:
    proc = run_cli("demo", "--data-dir", str(tmp_path / "data"), "--fail-at", "bogus")
    assert_refused(proc, "'bogus'", "upload_content, analyze_content, transform_data, validate_results")
    assert proc.stdout == "" and not (tmp_path / "data").exists()
