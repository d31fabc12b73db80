"""Schemathesis against /openapi.json of a live `saga-journey serve`, all checks, two tenants.

The server runs as a subprocess with two admin API keys (tenants acme and globex) and webhook
handlers for every template handler name (served by a sink in this process that answers 200),
so designed template journeys can run. The CLI run must report zero failures.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import re
import signal
import sys

import aiohttp
from aiohttp import web

from saga_journey.http.auth import hash_token
from saga_journey.runtime.journeys import TEMPLATES

from .test_serve_subprocess import free_port

HERE = pathlib.Path(__file__).parent
ST = pathlib.Path(sys.executable).with_name("st")
MAX_TIME_S = int(os.environ.get("SAGA_ST_MAX_TIME", "150"))
# Server-Sent Event streams never end on their own: schemathesis reads a response to its end,
# so each generated request would hang until its timeout. They are tested in test_events.py.
# The backup route writes a copy of the store to whatever server folder it is given: fuzzed,
# it would fill the file system with copies. It is tested in test_backup_route.py.
EXCLUDED = ("events", "saga_events", "backup")


async def test_schemathesis_zero_failures(tmp_path):
    async def done(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    sink = web.Application()
    sink.router.add_post("/{name}", done)
    runner = web.AppRunner(sink)
    await runner.setup()
    sink_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", sink_port).start()
    tokens = {"acme": "st-acme-token", "globex": "st-globex-token"}
    lines = []
    for tenant, token in tokens.items():
        lines += ["[[api_keys]]", f'sha256 = "{hash_token(token)}"', f'tenant_id = "{tenant}"',
                  f'user_id = "{tenant}-user"', 'roles = ["admin"]', ""]
    for handler in sorted({h for steps in TEMPLATES.values() for _, h in steps}):
        lines += [f"[webhooks.{handler}]", f'url = "http://127.0.0.1:{sink_port}/{handler}"', ""]
    (tmp_path / "saga.toml").write_text("\n".join(lines))
    wfc = {"auth": [{"name": t, "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {tok}"}]}
                    for t, tok in tokens.items()]}
    (tmp_path / "wfc.json").write_text(json.dumps(wfc))
    st_config = (HERE / "schemathesis.toml").read_text()
    st_config += f'\n[auth.wfc]\npath = "{tmp_path / "wfc.json"}"\npeers = ["acme", "globex"]\n'
    (tmp_path / "schemathesis.toml").write_text(st_config)
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "saga_journey.runtime.cli", "serve", "--create", "--data-dir", str(tmp_path / "data"),
        "--host", "127.0.0.1", "--port", str(port), "--config", str(tmp_path / "saga.toml"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = await asyncio.wait_for(server.stdout.readline(), 60)
        assert b"listening on" in line
        env = {**os.environ, "SCHEMATHESIS_HOOKS": "st_hooks", "PYTHONPATH": str(HERE)}
        st = await asyncio.create_subprocess_exec(
            str(ST), "--no-color", "--config-file", str(tmp_path / "schemathesis.toml"), "run",
            f"http://127.0.0.1:{port}/openapi.json", "--checks", "all",
            *(arg for op in EXCLUDED for arg in ("--exclude-operation-id", op)),
            "--max-examples", "25", "--max-time", str(MAX_TIME_S), "--seed", "20261126",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env, cwd=str(tmp_path),
        )
        out, _ = await asyncio.wait_for(st.communicate(), MAX_TIME_S + 240)
        text = out.decode("utf-8", "replace")
        summary = text[text.find("SUMMARY"):]
        print(summary)  # visible with pytest -s: phases, checks, case counts
        assert st.returncode == 0, text[-6000:]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/openapi.json") as resp:
                spec = await resp.json()
        operations = sum(len(methods) for methods in spec["paths"].values())
        selected = re.search(r"Selected: (\d+)/(\d+)", summary)
        tested = re.search(r"Tested: (\d+)", summary)
        assert selected and tested and "Stateful" in summary, summary
        # every operation schemathesis selected was tested, and its selection covers the
        # document (it counts one operation fewer than the document lists: 16 of 17 here)
        assert int(tested.group(1)) == int(selected.group(1)) == int(selected.group(2)) - len(EXCLUDED)
        assert int(selected.group(2)) >= operations - 1
    finally:
        if server.returncode is None:
            server.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(server.wait(), 30)
            except asyncio.TimeoutError:
                server.kill()
                await server.wait()
        await runner.cleanup()
