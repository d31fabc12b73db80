"""Durable advances over HTTP vs a bare aiohttp "hello" server, measured the same way in one run.

Both servers run as subprocesses on 127.0.0.1; load comes from Debian's ``wrk`` (another
process) with a Lua script, bounded by --duration. Prints req/s of both, their ratio, latency
p50/p99 and the machine. Usage:

    python bench/bench_http.py [--duration 10] [--connections 100] [--loop auto|asyncio|uvloop]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from typing import Any

HELLO = """
import sys
from aiohttp import web
async def hello(request):
    return web.Response(text="hello")
app = web.Application()
app.router.add_get("/", hello)
loop = sys.argv[2]
if loop == "uvloop":
    import uvloop
    uvloop.install()
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""

STUB = """
import sys
from aiohttp import web
from saga_journey.http.app import create_app
from saga_journey.http.auth import hash_token
from saga_journey.http.settings import ApiKey, GatewaySettings
from saga_journey.runtime import RuntimeObserver
from saga_journey.runtime.events import TransitionHub
VIEW = {"saga_id": "s", "journey_id": "j", "journey_version": 1, "journey_type": "b", "tenant_id": "bench",
        "user_id": "u", "status": "IN_PROGRESS", "current_milestone": "m3",
        "milestones": [f"m{i}" for i in range(25)], "completed_milestones": ["m0", "m1", "m2"],
        "compensated_milestones": [], "pending_compensations": [], "compensation_status": "none",
        "compensation_attempts": 0, "compensation_error": None, "failure": None, "context": {},
        "started_at": 1.0, "updated_at": 2.0, "version": 4, "event": "milestone_completed"}
class StubRuntime:
    observer = RuntimeObserver()
    transitions = TransitionHub()  # the gateway's event feed subscribes to it
    async def advance_saga_step(self, *args, **kwargs):
        return VIEW
    @staticmethod
    def journey_templates():
        return []
keys = (ApiKey(hash_token(sys.argv[3]), "bench", "bench", frozenset(["admin"])),)
app = create_app(StubRuntime(), GatewaySettings(api_keys=keys))
if sys.argv[2] == "uvloop":
    import uvloop
    uvloop.install()
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""

LUA = """
local ids = {%(ids)s}
local i = 0
local headers = {["Authorization"] = "Bearer %(token)s", ["Content-Type"] = "application/json"}
local body = '{"step_result": {"status": "complete"}}'
request = function()
  i = i + 1
  return wrk.format("POST", "/v1/sagas/" .. ids[(i %% #ids) + 1] .. "/advance", headers, body)
end
"""


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resolve_loop(name: str) -> str:
    """``--loop auto``: uvloop where installed, else asyncio."""
    if name != "auto":
        return name
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def wait_url(url: str, timeout: float = 30.0) -> None:
    """Until ``url`` answers (or ``timeout`` passes: the caller's next request then fails)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.05)


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


def call(port: int, method: str, path: str, token: str, body: Any = None) -> Any:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def run_wrk(url: str, duration: int, connections: int, script: str | None) -> dict[str, Any]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=duration + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)

    def pct(p: str) -> str:
        m = re.search(rf"^\s+{p}%\s+(\S+)", out, re.M)
        return m.group(1) if m else "?"

    return {
        "rps": rps,
        "p50": pct("50"),
        "p99": pct("99"),
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "none",
        "raw": out,
    }


INPROC = """
import asyncio, sys, tempfile, time
from saga_journey.runtime import SagaOrchestrator
async def main(concurrency, milestones, seconds, loop_name):
    orch = SagaOrchestrator.open(tempfile.mkdtemp(prefix="sj-inproc-"))
    uc = {"tenant_id": "b", "user_id": "u"}
    j = await orch.design_saga_journey("b", {"milestones": [f"m{i}" for i in range(milestones)]}, user_context=uc)
    done = 0
    deadline = time.perf_counter() + seconds
    async def worker():
        nonlocal done
        while time.perf_counter() < deadline:
            sid = (await orch.execute_saga_journey(j["journey_id"], "u", {}, uc))["saga_id"]
            for _ in range(milestones):
                if time.perf_counter() >= deadline:
                    return
                await orch.advance_saga_step(sid, None, None, {"status": "complete"}, uc)
                done += 1
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    print(done / (time.perf_counter() - started))
    await asyncio.get_running_loop().run_in_executor(None, orch.close)
args = [int(a) for a in sys.argv[1:4]]
if sys.argv[4] == "uvloop":
    import uvloop
    uvloop.run(main(*args, sys.argv[4]))
else:
    asyncio.run(main(*args, sys.argv[4]))
"""


def fsync_probe(folder: str, n: int = 200) -> tuple[float, float]:
    """p50/p99 of fsync after a 500-byte write in ``folder``, in ms: the disk's commit latency."""
    path = os.path.join(folder, "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    times = []
    try:
        for _ in range(n):
            os.write(fd, b"x" * 500)
            t = time.perf_counter()
            os.fsync(fd)
            times.append((time.perf_counter() - t) * 1000)
    finally:
        os.close(fd)
        os.unlink(path)
    times.sort()
    return times[n // 2], times[int(n * 0.99)]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=100)
    ap.add_argument("--sagas", type=int, default=2000)
    ap.add_argument("--milestones", type=int, default=25)
    ap.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    loop = resolve_loop(args.loop)
    work = tempfile.mkdtemp(prefix="sj-bench-")
    token = "bench-token"
    from saga_journey.http.auth import hash_token

    with open(os.path.join(work, "saga.toml"), "w") as f:
        f.write(
            f'[[api_keys]]\nsha256 = "{hash_token(token)}"\ntenant_id = "bench"\n'
            'user_id = "bench"\nroles = ["admin"]\n'
        )
    results: dict[str, dict[str, Any]] = {}
    procs: list[subprocess.Popen] = []
    fsync_p50, fsync_p99 = fsync_probe(work)
    try:
        # 1. bare aiohttp hello
        port = free_port()
        hello = subprocess.Popen([sys.executable, "-c", HELLO, str(port), loop])
        procs.append(hello)
        wait_port(port, hello)
        run_wrk(f"http://127.0.0.1:{port}/", 2, args.connections, None)  # warm-up
        results["hello"] = run_wrk(f"http://127.0.0.1:{port}/", args.duration, args.connections, None)
        stop(hello)

        # 2. the gateway, durable advances
        port = free_port()
        gw = subprocess.Popen(
            [sys.executable, "-m", "saga_journey.runtime.cli", "serve", "--data-dir",
             os.path.join(work, "data"), "--port", str(port), "--config",
             os.path.join(work, "saga.toml"), "--loop", loop, "--create"],
            stdout=subprocess.DEVNULL,
        )
        procs.append(gw)
        wait_port(port, gw)
        journey = call(port, "POST", "/v1/journeys", token, {
            "journey_type": "bench_long",
            "requirements": {"milestones": [f"m{i}" for i in range(args.milestones)]},
        })
        with ThreadPoolExecutor(16) as pool:
            ids = list(pool.map(
                lambda _: call(port, "POST", "/v1/sagas", token, {"journey_id": journey["journey_id"]})["saga_id"],
                range(args.sagas),
            ))
        script = os.path.join(work, "advance.lua")
        with open(script, "w") as f:
            f.write(LUA % {"ids": ", ".join(json.dumps(i) for i in ids), "token": token})
        run_wrk(f"http://127.0.0.1:{port}", 2, args.connections, script)  # warm-up
        results["advance"] = run_wrk(f"http://127.0.0.1:{port}", args.duration, args.connections, script)
        with ThreadPoolExecutor(16) as pool:
            completed = sum(pool.map(
                lambda sid: len(call(port, "GET", f"/v1/sagas/{sid}", token)["completed_milestones"]), ids
            ))
        stop(gw)

        # 3. the gateway over a stub runtime that answers at once: the gateway's own cost
        port = free_port()
        stub = subprocess.Popen([sys.executable, "-c", STUB, str(port), loop, token])
        procs.append(stub)
        wait_port(port, stub)
        results["stub"] = run_wrk(f"http://127.0.0.1:{port}", args.duration, args.connections, script)
        stop(stub)

        # 4. the same advances through the Python API, in-process, same concurrency: the runtime's
        # own ceiling on this machine, to separate gateway overhead from runtime/disk limits.
        inproc = subprocess.run(
            [sys.executable, "-c", INPROC, str(args.connections), str(args.milestones), str(args.duration), loop],
            capture_output=True, text=True, timeout=args.duration + 120, check=True,
        )
        inproc_rps = float(inproc.stdout.strip().splitlines()[-1])
    finally:
        for p in procs:
            stop(p)
        shutil.rmtree(work, ignore_errors=True)

    import aiohttp

    hello, adv = results["hello"], results["advance"]
    print(f"machine: {platform.platform()}, {os.cpu_count()} cpus, Python {platform.python_version()}, "
          f"aiohttp {aiohttp.__version__}, loop {loop}")
    print(f"load: wrk -t1 -c{args.connections} -d{args.duration}s (separate process), 127.0.0.1")
    print(f"bare aiohttp hello      : {hello['rps']:>9.0f} req/s  p50 {hello['p50']:>8}  p99 {hello['p99']:>8}  "
          f"non-2xx {hello['non_2xx']}  socket errors {hello['socket_errors']}")
    print(f"durable advance via HTTP: {adv['rps']:>9.0f} req/s  p50 {adv['p50']:>8}  p99 {adv['p99']:>8}  "
          f"non-2xx {adv['non_2xx']}  socket errors {adv['socket_errors']}")
    print(f"ratio advance/hello     : {adv['rps'] / hello['rps']:.2f} (target >= 0.50)")
    stub = results["stub"]
    print(f"gateway over a stub runtime (answers at once): {stub['rps']:.0f} req/s, p50 {stub['p50']}, "
          f"{stub['rps'] / hello['rps']:.2f} of hello")
    print(f"runtime alone, in-process, {args.connections} concurrent advances: {inproc_rps:.0f} advances/s "
          f"-> HTTP reaches {adv['rps'] / inproc_rps:.2f} of the runtime's own ceiling")
    print(f"disk: fsync of 500 B p50 {fsync_p50:.2f} ms, p99 {fsync_p99:.2f} ms; "
          f"load average {os.getloadavg()[0]:.1f} (other processes share these {os.cpu_count()} cpus)")
    print(f"milestones completed in the store: {completed} ({args.sagas} sagas x {args.milestones} milestones)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
