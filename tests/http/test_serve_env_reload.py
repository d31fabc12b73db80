"""`saga-journey serve` in a subprocess: options from SAGA_JOURNEY_* (a flag wins) and API keys
reloaded on SIGHUP without dropping an open connection (a bad file keeps the old keys)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import aiohttp

from saga_journey.http.auth import hash_token

from .test_events import read_events
from .test_serve_subprocess import free_port

OLD, NEW = "tok-old", "tok-new"


def _config(token: str) -> str:
    return "\n".join(["[gateway]", "shutdown_timeout_s = 5", "", "[[api_keys]]", f'sha256 = "{hash_token(token)}"',
                      'tenant_id = "acme"', 'user_id = "ops"', 'roles = ["admin"]', ""])


async def _line(proc, text: bytes) -> bytes:
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line, f"server exited before printing {text!r}"
        if text in line:
            return line


async def test_env_vars_and_sighup_key_reload(tmp_path):
    cfg = tmp_path / "saga.toml"
    cfg.write_text(_config(OLD))
    port, env_port = free_port(), free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "SAGA_JOURNEY_DATA_DIR": str(tmp_path / "data"),
           "SAGA_JOURNEY_CREATE": "true", "SAGA_JOURNEY_CONFIG": str(cfg), "SAGA_JOURNEY_HOST": "127.0.0.1",
           "SAGA_JOURNEY_PORT": str(env_port)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "saga_journey.runtime.cli", "serve", "--port", str(port),  # the flag wins
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        line = await _line(proc, b"listening on")
        assert f":{port} (data {tmp_path / 'data'}".encode() in line and b"1 API keys" in line
        async with aiohttp.ClientSession() as http:
            old = {"Authorization": f"Bearer {OLD}"}
            new = {"Authorization": f"Bearer {NEW}"}
            r = await http.post(f"{base}/v1/journeys", json={"journey_type": "plain", "journey_id": "o",
                                                              "requirements": {"milestones": ["a", "b"]}},
                                headers=old)
            assert r.status == 201
            stream = await http.get(f"{base}/v1/events", headers=old)  # stays open across the reload
            assert stream.status == 200
            cfg.write_text(_config(NEW))
            proc.send_signal(signal.SIGHUP)
            await _line(proc, b"reloaded 1 API keys")
            assert (await http.get(f"{base}/v1/sagas", headers=old)).status == 401
            r = await http.post(f"{base}/v1/sagas", json={"journey_id": "o", "saga_id": "after-reload"}, headers=new)
            assert r.status == 201
            got = await read_events(stream, 1)  # the old connection was not dropped
            assert got[0]["data"]["saga_id"] == "after-reload"
            cfg.write_text("[[api_keys]]\nsha256 = 'not-a-hash'\n")
            proc.send_signal(signal.SIGHUP)
            await _line(proc, b"not reloaded")
            assert (await http.get(f"{base}/v1/sagas", headers=new)).status == 200  # old keys stay
            stream.close()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_bad_env_value_is_a_clear_error(tmp_path):
    env = {**os.environ, "SAGA_JOURNEY_CREATE": "maybe"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "saga_journey.runtime.cli", "serve", "--data-dir", str(tmp_path / "d"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2 and b"SAGA_JOURNEY_CREATE='maybe'" in err
