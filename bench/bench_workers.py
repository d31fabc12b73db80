"""``serve --workers 2`` against ``--workers 1`` (and bare aiohttp), measured in one run.

Only ratios measured in the same run count (the VMs are shared and differ 3-6x), so every part
alternates the configurations it compares, and prints the machine, the load average before each
measurement and the CPU that other jobs took meanwhile ("foreign").

  sagas    whole sagas over HTTP: 3 milestones, the third fails, 2 compensations through webhooks
           (a webhook receiver process); N sagas (default 2000), C in flight (default 200); the
           client (another process) long-polls GET /v1/sagas/{id}?wait=30&version=V. Runs
           --workers 1 and --workers 2 alternately, --rounds times. Target: w2/w1 >= 1.7 on 2 cores.
  advance  durable advances over HTTP (wrk, the settings of bench_http.py) against bare aiohttp
           hello: --workers 2 vs 2 hello processes (SO_REUSEPORT), --workers 1 vs 1. Target >= 0.6.
  hop      the added latency of the one hop: the same request sent straight to its owner's hop
           socket (with the hop header: answered there) vs sent to the other worker's hop socket
           without it (that worker forwards it), interleaved, sequential; p50 and mean of each.

The share of requests forwarded is read from every worker's /metrics (asked over its hop socket
with the hop header: its own answer), as deltas over each measured phase.

  python bench/bench_workers.py [--parts sagas,advance,hop] [--rounds 2] [--sagas 2000]
      [--inflight 200] [--duration 10] [--connections 100] [--hop-requests 3000]
      [--configs w1,w2] [--profile DIR]

--configs: w1 = ``serve`` (one process, one LMDB environment), w2 = ``--workers 2 --shards 16``,
w1s = ``--workers 1 --shards 16`` (the supervisor and the sharded folder, one worker), w2s2 =
``--workers 2 --shards 2`` (one shard, so one LMDB environment and one writer, per worker). Each
run prints the servers' CPU per saga or request (event-loop threads vs the others, share in the
kernel) and their LMDB commits (writes per commit), from /proc and /metrics.
--profile DIR: py-spy (``pip install py-spy``) samples every server process during the measured
phase of each sagas run, and the script prints where their CPU went.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_http import LUA, free_port, fsync_probe, resolve_loop, run_wrk, wait_url
from saga_journey.http.hop import HOP_HEADER, WORKER_HEADER, hop_folder, peer_address

TOKEN = "bench-token"
TENANT = "bench"
SHARDS = 16
CONFIGS = {  # name -> extra serve arguments
    "w1": [],
    "w2": ["--workers", "2", "--shards", str(SHARDS)],
    "w1s": ["--workers", "1", "--shards", str(SHARDS)],
    "w2s2": ["--workers", "2", "--shards", "2"],  # one shard (one LMDB environment, one writer) per worker
}

HELLO = """
import sys
from aiohttp import web
async def hello(request):
    return web.Response(text="hello")
app = web.Application()
app.router.add_get("/", hello)
if sys.argv[2] == "uvloop":
    import uvloop
    uvloop.install()
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None, reuse_port=True)
"""

WEBHOOKS = """
import sys
from aiohttp import web
calls = 0
async def compensate(request):
    global calls
    await request.read()
    calls += 1
    return web.json_response({"ok": True})
async def count(request):
    return web.json_response({"calls": calls})
app = web.Application()
app.router.add_post("/compensate/{name}", compensate)
app.router.add_get("/count", count)
if sys.argv[2] == "uvloop":
    import uvloop
    uvloop.install()
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""

# The client of the sagas part, in its own process: WARM sagas, then "warm" on stdout, then the
# measured N once a line arrives on stdin; one JSON line at the end.
CLIENT = r"""
import asyncio, json, math, sys, time
import aiohttp
GW, N, CONC, WARM, LOOP = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
STEPS = ("step1", "step2", "step3")

async def main():
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONC)) as s:
        async def post(path, body, want=200):
            async with s.post(GW + path, json=body) as r:
                out = await r.json(content_type=None)
            assert r.status == want, (path, r.status, out)
            return out
        design = {"journey_type": "sbs_saga", "requirements": {"milestones": [
            {"id": st, "compensation_handler": f"undo_{st}"} for st in STEPS]}}
        journey = await post("/v1/journeys", design, 201)
        assert not journey.get("missing_handlers"), journey
        jid = journey["journey_id"]
        waits = [0]

        async def one():
            sid = (await post("/v1/sagas", {"journey_id": jid, "context": {"k": 1}}, 201))["saga_id"]
            await post(f"/v1/sagas/{sid}/advance", {"step_result": {"status": "complete", "milestone_id": "step1"}})
            await post(f"/v1/sagas/{sid}/advance", {"step_result": {"status": "complete", "milestone_id": "step2"}})
            st = await post(f"/v1/sagas/{sid}/advance",
                            {"step_result": {"status": "failed", "milestone_id": "step3", "error": "step3 failed"}})
            for _ in range(20):  # bounded: 20 long-polls of at most 30 s
                if st["status"] == "FAILED":
                    break
                async with s.get(f"{GW}/v1/sagas/{sid}?wait=30&version={st['version']}") as r:
                    st = await r.json(content_type=None)
                assert r.status == 200, (r.status, st)
                waits[0] += 1
            assert st["status"] == "FAILED" and st["compensation_status"] == "succeeded", st
            assert st["compensated_milestones"] == ["step2", "step1"], st

        async def drive(n):
            sem = asyncio.Semaphore(CONC)
            lat = []
            async def run():
                async with sem:
                    t0 = time.perf_counter()
                    await one()
                    lat.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            await asyncio.gather(*(run() for _ in range(n)))
            return time.perf_counter() - t0, sorted(lat)

        await drive(WARM)
        print("warm", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        waits[0] = 0
        wall, lat = await drive(N)
        pct = lambda p: lat[max(0, min(len(lat) - 1, math.ceil(p / 100 * len(lat)) - 1))]
        print(json.dumps({"wall_s": wall, "sagas_per_s": N / wall, "p50_ms": pct(50) * 1e3,
                          "p99_ms": pct(99) * 1e3, "waits_per_saga": waits[0] / N}), flush=True)

if LOOP == "uvloop":
    import uvloop
    uvloop.run(main())
else:
    asyncio.run(main())
"""


# ---- processes and CPU ------------------------------------------------------------------------

def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def proc_cpu(pid: int, path: str = "/proc/{pid}/stat", only_sys: bool = False) -> float:
    """utime + stime of ``pid`` in seconds (0 for one gone); with ``path`` /proc/{pid}/task/{pid}/stat:
    of its main thread only (the event loop's); ``only_sys``: stime alone (time in the kernel)."""
    try:
        with open(path.format(pid=pid)) as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return ((0 if only_sys else int(rest[11])) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> float:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


MAIN_THREAD = "/proc/{pid}/task/{pid}/stat"


class CpuMeter:
    """CPU seconds of named processes, and of the machine, between start() and stop()."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups

    def start(self) -> None:
        self.t0 = time.perf_counter()
        self.m0 = machine_busy()
        self.c0 = {g: sum(proc_cpu(p) for p in pids) for g, pids in self.groups.items()}
        self.main0 = sum(proc_cpu(p, MAIN_THREAD) for p in self.groups.get("server", []))
        self.sys0 = sum(proc_cpu(p, only_sys=True) for p in self.groups.get("server", []))

    def stop(self) -> dict[str, float]:
        elapsed = time.perf_counter() - self.t0
        out = {g: sum(proc_cpu(p) for p in pids) - self.c0[g] for g, pids in self.groups.items()}
        main = sum(proc_cpu(p, MAIN_THREAD) for p in self.groups.get("server", [])) - self.main0
        out_sys = sum(proc_cpu(p, only_sys=True) for p in self.groups.get("server", [])) - self.sys0
        busy = machine_busy() - self.m0
        out["machine"] = busy
        out["foreign"] = max(0.0, busy - sum(v for k, v in out.items() if k != "machine"))
        out["elapsed"] = elapsed
        out["server_main"] = main  # the event loop threads; the rest: writer, timer, pool threads
        out["server_sys"] = out_sys  # in the kernel (syscalls: socket writes, fsync, futex, epoll)
        return out


def stop(proc: subprocess.Popen, timeout: float = 40) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def http(url: str, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None,
         unix: str | None = None, timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    """One request over TCP, or over the unix socket ``unix`` (then ``url`` is just the path)."""
    data = None if body is None else json.dumps(body).encode()
    hdrs = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json", **(headers or {})}
    if unix is None:
        req = urllib.request.Request(url, method=method, data=data, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()
    import http.client
    import socket

    class UnixConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.settimeout(timeout)
            self.sock.connect(unix)

    conn = UnixConnection("worker", timeout=timeout)
    try:
        conn.request(method, url, body=data, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


@dataclass
class Server:
    """A running ``saga-journey serve`` of one configuration."""

    name: str
    proc: subprocess.Popen
    port: int
    data: str
    workers: int
    log: str
    pids: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hop_socket(self, index: int) -> str:
        return peer_address(self.data, index)

    def hop_counts(self) -> list[dict[str, float]]:
        """Each worker's own saga_http_hops_total / saga_http_hop_seconds_total (and its LMDB
        commits: saga_store_commit_batch_size / _duration_seconds); a one-process server's
        commits only (under the key "commits")."""
        out = []
        for i in range(self.workers):
            if self.name == "w1":
                _, _, body = http(self.url + "/metrics")
            else:
                _, _, body = http("/metrics", headers={HOP_HEADER: "bench"}, unix=self.hop_socket(i))
            text = body.decode()
            row: dict[str, float] = {}

            def value(rx: str) -> float:
                m = re.search(rx, text, re.MULTILINE)
                return float(m.group(1)) if m else 0.0

            for outcome in ("local", "forwarded", "failed"):
                row[outcome] = value(rf'^saga_http_hops_total{{outcome="{outcome}"}} (\S+)')
            row["seconds"] = value(r"^saga_http_hop_seconds_total (\S+)")
            row["commits"] = value(r"^saga_store_commit_batch_size_count (\S+)")
            row["commit_records"] = value(r"^saga_store_commit_batch_size_sum (\S+)")
            row["commit_seconds"] = value(r"^saga_store_commit_duration_seconds_sum (\S+)")
            out.append(row)
        return out


def start_server(name: str, work: str, loop: str, config: str, insecure: bool) -> Server:
    data = os.path.join(work, f"data-{name}-{time.monotonic_ns()}")
    port = free_port()
    log = data + ".log"
    argv = [sys.executable, "-m", "saga_journey.runtime.cli", "serve", "--create", "--data-dir", data,
            "--host", "127.0.0.1", "--port", str(port), "--config", config, "--loop", loop, *CONFIGS[name]]
    if insecure:
        argv.append("--insecure-dev")
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    workers = 2 if name.startswith("w2") else 1
    srv = Server(name, proc, port, data, workers, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}; see {log}")
        with open(log) as f:
            if "listening on" in f.read():
                break
        time.sleep(0.05)
    else:
        stop(proc)
        raise RuntimeError(f"{name} did not start in 60 s; see {log}")
    if name == "w1":
        srv.pids = [proc.pid]
    else:
        with open(os.path.join(hop_folder(data), "workers.json")) as f:
            state = json.load(f)
        srv.pids = [w["pid"] for w in state["workers"]]
    return srv


def stop_server(srv: Server) -> None:
    stop(srv.proc)
    shutil.rmtree(srv.data, ignore_errors=True)


# ---- profiles ---------------------------------------------------------------------------------

def start_profiles(srv: Server, folder: str, tag: str) -> list[tuple[subprocess.Popen, str]]:
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    out = []
    for i, pid in enumerate(srv.pids):
        path = os.path.join(folder, f"{tag}-worker{i}.txt")
        p = subprocess.Popen([spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "200",
                              "--nonblocking", "--duration", "600", "--output", path],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out.append((p, path))
    return out


def stop_profiles(profiles: list[tuple[subprocess.Popen, str]]) -> list[str]:
    for p, _ in profiles:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    for p, _ in profiles:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return [path for _, path in profiles if os.path.exists(path)]


# What a sample is spent on: the first category whose pattern matches a frame of its stack, from
# the innermost frame out (so the most specific owner of the time wins).
CATEGORIES = [
    ("fsync / LMDB commit", re.compile(r"\b(commit|fsync|fdatasync|sync)\b.*\((lmdb|.*persistence)")),
    ("LMDB reads/writes", re.compile(r"persistence/")),
    ("JSON / codec", re.compile(r"(orjson|json/|codec\.py|\bdumps\b|\bloads\b)")),
    ("aiohttp client", re.compile(r"aiohttp/client|aiohttp/connector|aiohappyeyeballs")),
    ("auth", re.compile(r"auth\.py")),
    ("runtime / actors", re.compile(r"(runtime/|actors/|pykka)")),
    ("gateway handlers & middlewares", re.compile(r"http/(routes|middlewares|problems|admission|events)\.py")),
    ("aiohttp server / HTTP parsing", re.compile(r"aiohttp/(web_|http_|base_protocol|streams|helpers|multidict)")),
    ("metrics", re.compile(r"(prometheus|metrics/)")),
    ("uvloop's native loop (incl. waiting in epoll)", re.compile(r"^Runner\.run \(asyncio/runners\.py")),
    ("event loop / asyncio", re.compile(r"(asyncio/|uvloop)")),
]


IDLE = re.compile(r"^(Condition\.wait|Event\.wait|_worker \(concurrent|Thread\._wait_for_tstate_lock|select |"
                  r"Semaphore\.acquire|SimpleQueue|_take )")


# Checked first, over the whole stack: a sample anywhere under these is theirs.
WHOLE_STACK = [
    ("LMDB txn.commit (writer threads; fsync included)", re.compile(r"GroupCommitWriter\._commit \(persistence/lmdb_writer\.py:197\)")),
    ("forwarding a request (routing.forward, client side)", re.compile(r"\bforward \(routing\.py")),
    ("webhook calls (client side)", re.compile(r"webhooks\.py")),
]


def analyse(paths: list[str], top: int = 12) -> str:
    """Where the sampled CPU went, summed over ``paths`` (py-spy raw: 'frame;frame;... count')."""
    total = idle = 0
    cats: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for path in paths:
        with open(path) as f:
            for line in f:
                stack, _, n = line.rstrip("\n").rpartition(" ")
                if not n.isdigit():
                    continue
                count = int(n)
                frames = stack.split(";")
                if IDLE.search(frames[-1]):
                    idle += count
                    continue
                total += count
                leaf[frames[-1]] += count
                for fr in set(frames):
                    inclusive[fr] += count
                whole = next((c for c, rx in WHOLE_STACK if any(rx.search(fr) for fr in frames)), None)
                if whole is not None:
                    cats[whole] += count
                    continue
                for fr in reversed(frames):
                    hit = next((c for c, rx in CATEGORIES if rx.search(fr)), None)
                    if hit is not None:
                        cats[hit] += count
                        break
                else:
                    cats["other"] += count
    if not total:
        return "  (no samples)"
    lines = [f"  {total} samples of threads at work ({idle} more waiting on a lock/condition left out; a thread in "
             f"fsync counts as at work: py-spy sees wall time, not CPU); by category (innermost matching frame):"]
    lines += [f"    {c:<52} {n / total:6.1%}" for c, n in cats.most_common()]
    lines.append("  top self frames:")
    lines += [f"    {n / total:6.1%}  {fr[:150]}" for fr, n in leaf.most_common(top)]
    lines.append("  top inclusive frames (outside the event loop's own):")
    shown = 0
    for fr, n in inclusive.most_common(200):
        if re.search(r"(asyncio/|uvloop|<module>|run_forever|run_until_complete|\brun\b \(|cli\.py|server\.py)", fr):
            continue
        lines.append(f"    {n / total:6.1%}  {fr[:150]}")
        shown += 1
        if shown >= top:
            break
    return "\n".join(lines)


# ---- part 1: whole sagas ----------------------------------------------------------------------

def part_sagas(args: argparse.Namespace, work: str, loop: str) -> None:
    wh_port = free_port()
    wh = subprocess.Popen([sys.executable, "-c", WEBHOOKS, str(wh_port), loop])
    config = os.path.join(work, "sagas.toml")
    with open(config, "w") as f:
        f.writelines(f'[webhooks.undo_{s}]\nurl = "http://127.0.0.1:{wh_port}/compensate/undo_{s}"\n' for s in ("step1", "step2", "step3"))
    results: dict[str, list[dict[str, Any]]] = defaultdict(list)
    configs = args.configs
    print(f"\n== sagas: {args.sagas} sagas (+{args.warm} warm-up), {args.inflight} in flight, 3 milestones, the third "
          f"fails, 2 webhook compensations; client and webhook receiver in their own processes; "
          f"{args.rounds} rounds of {', '.join(configs)} (order alternates)", flush=True)
    try:
        wait_url(f"http://127.0.0.1:{wh_port}/count")
        for r in range(args.rounds):
            order = configs if r % 2 == 0 else list(reversed(configs))
            for name in order:
                srv = start_server(name, work, loop, config, insecure=True)
                try:
                    client = subprocess.Popen(
                        [sys.executable, "-c", CLIENT, srv.url, str(args.sagas), str(args.inflight),
                         str(args.warm), loop], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                    try:
                        line = client.stdout.readline()
                        if line.strip() != "warm":
                            raise RuntimeError(f"client: {line!r}; see {srv.log}")
                        hops0 = srv.hop_counts()
                        la = loadavg()
                        meter = CpuMeter({"server": srv.pids, "client": [client.pid], "webhooks": [wh.pid]})
                        profiles = start_profiles(srv, args.profile, f"sagas-{name}-r{r}") if args.profile else []
                        if profiles:
                            time.sleep(0.5)  # py-spy attaches
                        meter.start()
                        client.stdin.write("go\n")
                        client.stdin.flush()
                        line = client.stdout.readline()
                        cpu = meter.stop()
                        paths = stop_profiles(profiles)
                        client.wait(timeout=60)
                    finally:
                        if client.poll() is None:
                            client.kill()
                            client.wait()
                    if not line.strip():
                        raise RuntimeError(f"client failed (rc {client.returncode}); see {srv.log}")
                    res = json.loads(line)
                    hops1 = srv.hop_counts()
                finally:
                    stop_server(srv)
                res.update(cpu=cpu, load=la, hops=hop_delta(hops0, hops1), profiles=paths)
                results[name].append(res)
                c = cpu
                per = 1000 / args.sagas
                print(f"  round {r + 1} {name:<4} {res['sagas_per_s']:7.1f} sagas/s  p50 {res['p50_ms']:7.1f} ms  "
                      f"p99 {res['p99_ms']:7.1f} ms  long-polls/saga {res['waits_per_saga']:.2f}  "
                      f"load {la}", flush=True)
                print(f"        CPU ms/saga: server {c['server'] * per:.2f}, client {c['client'] * per:.2f}, "
                      f"webhooks {c['webhooks'] * per:.2f}; machine busy {c['machine'] / c['elapsed'] / os.cpu_count():.0%}"
                      f" of {os.cpu_count()} cpus, foreign {c['foreign'] / c['elapsed'] / os.cpu_count():.0%}"
                      + (f"; {describe_hops(res['hops'])}" if srv.workers > 1 else ""), flush=True)
                print(f"        server CPU split: event-loop threads {c['server_main'] * per:.2f} ms/saga, other threads "
                      f"(LMDB writers, timers, pools) {(c['server'] - c['server_main']) * per:.2f}; in the kernel "
                      f"{c['server_sys'] / c['server']:.0%}; "
                      f"{describe_commits(res['hops'], args.sagas)}", flush=True)
    finally:
        stop(wh)
    print("  summary (sagas/s):", flush=True)
    for name in configs:
        rates = [x["sagas_per_s"] for x in results[name]]
        srv_ms = [x["cpu"]["server"] * 1000 / args.sagas for x in results[name]]
        print(f"    {name:<4} mean {statistics.mean(rates):7.1f}  runs {' '.join(f'{v:.1f}' for v in rates)}  "
              f"server CPU {statistics.mean(srv_ms):.2f} ms/saga", flush=True)
    if "w1" in results and "w2" in results:
        pairs = [b["sagas_per_s"] / a["sagas_per_s"] for a, b in zip(results["w1"], results["w2"])]
        ratio = statistics.mean(x["sagas_per_s"] for x in results["w2"]) / statistics.mean(
            x["sagas_per_s"] for x in results["w1"])
        print(f"  RATIO sagas/s workers 2 / workers 1: {ratio:.2f} (per round {' '.join(f'{p:.2f}' for p in pairs)}; "
              f"target >= 1.70 on 2 cores)", flush=True)
        cpu_ratio = statistics.mean(x["cpu"]["server"] for x in results["w2"]) / statistics.mean(
            x["cpu"]["server"] for x in results["w1"])
        print(f"  server CPU per saga workers 2 / workers 1: {cpu_ratio:.2f}", flush=True)
    caps = {}
    for name in configs:
        runs = results[name]
        loop_ms = statistics.mean(x["cpu"]["server_main"] for x in runs) / args.sagas
        total = statistics.mean(x["cpu"]["server"] + x["cpu"]["client"] + x["cpu"]["webhooks"] for x in runs) / args.sagas
        workers = 2 if name.startswith("w2") else 1
        caps[name] = min(workers / loop_ms, (os.cpu_count() or 1) / total)
    print(f"  CPU-bound estimate on {os.cpu_count()} idle cpus (min of workers / event-loop CPU per saga, cpus / all "
          "CPU per saga incl. client and webhooks; from this run's CPU figures, which other jobs' load distorts "
          "less than throughput): " + ", ".join(f"{n} {c:.0f} sagas/s" for n, c in caps.items())
          + (f"; w2/w1 {caps['w2'] / caps['w1']:.2f}" if "w2" in caps and "w1" in caps else ""), flush=True)
    if "w2s2" in results and "w1" in results:
        ratio = statistics.mean(x["sagas_per_s"] for x in results["w2s2"]) / statistics.mean(
            x["sagas_per_s"] for x in results["w1"])
        print(f"  ratio w2s2 (2 workers, 2 shards: one LMDB environment each) / w1: {ratio:.2f}", flush=True)
    if "w1s" in results and "w1" in results:
        ratio = statistics.mean(x["sagas_per_s"] for x in results["w1s"]) / statistics.mean(
            x["sagas_per_s"] for x in results["w1"])
        print(f"  ratio w1s (supervisor + 16 shards, 1 worker) / w1: {ratio:.2f}", flush=True)
    if args.profile:
        for name in configs:
            paths = [p for x in results[name] for p in x["profiles"]]
            print(f"  profile {name} (py-spy, {len(paths)} files, all rounds, all its processes):")
            print(analyse(paths), flush=True)


def describe_commits(rows: list[dict[str, float]], sagas: int) -> str:
    commits = sum(h["commits"] for h in rows)
    records = sum(h["commit_records"] for h in rows)
    secs = sum(h["commit_seconds"] for h in rows)
    if not commits:
        return "LMDB commits: none reported"
    return (f"LMDB commits {commits:.0f} ({commits / sagas:.2f} per saga), {records / commits:.1f} writes per "
            f"commit, mean commit {secs / commits * 1000:.2f} ms")


def hop_delta(before: list[dict[str, float]], after: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: a[k] - b[k] for k in a} for b, a in zip(before, after)]


def describe_hops(hops: list[dict[str, float]]) -> str:
    local = sum(h["local"] for h in hops)
    fwd = sum(h["forwarded"] for h in hops)
    failed = sum(h["failed"] for h in hops)
    secs = sum(h["seconds"] for h in hops)
    total = local + fwd + failed
    share = fwd / total if total else 0.0
    rt = secs / fwd * 1000 if fwd else 0.0
    return (f"forwarded {share:.1%} of {total:.0f} requests ({failed:.0f} failed), "
            f"mean forwarded round trip {rt:.2f} ms")


# ---- part 2: advances vs hello ----------------------------------------------------------------

def create_sagas(srv: Server, n: int, milestones: int) -> list[str]:
    status, _, body = http(srv.url + "/v1/journeys", "POST", {
        "journey_type": "bench_long", "requirements": {"milestones": [f"m{i}" for i in range(milestones)]}})
    assert status == 201, (status, body)
    jid = json.loads(body)["journey_id"]

    def one(_: int) -> str:
        st, _, b = http(srv.url + "/v1/sagas", "POST", {"journey_id": jid})
        assert st == 201, (st, b)
        return json.loads(b)["saga_id"]

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(one, range(n)))


def part_advance(args: argparse.Namespace, work: str, loop: str) -> None:
    config = os.path.join(work, "advance.toml")
    from saga_journey.http.auth import hash_token

    with open(config, "w") as f:
        f.write(f'[[api_keys]]\nsha256 = "{hash_token(TOKEN)}"\ntenant_id = "{TENANT}"\n'
                'user_id = "bench"\nroles = ["admin"]\n')
    print(f"\n== advance: wrk -t1 -c{args.connections} -d{args.duration}s --latency (as bench_http.py), "
          f"{args.sagas} sagas x {args.milestones} milestones, POST /v1/sagas/{{id}}/advance round-robin; "
          f"bare aiohttp hello with 1 and 2 processes (SO_REUSEPORT); {args.rounds} rounds", flush=True)
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    profiled: dict[str, list[str]] = defaultdict(list)
    for r in range(args.rounds):
        order = ["hello1", "hello2", *args.configs]
        order = order if r % 2 == 0 else list(reversed(order))
        for name in order:
            la = loadavg()
            extra = ""
            if name.startswith("hello"):
                port = free_port()
                procs = [subprocess.Popen([sys.executable, "-c", HELLO, str(port), loop])
                         for _ in range(int(name[-1]))]
                try:
                    wait_url(f"http://127.0.0.1:{port}/")
                    time.sleep(0.5)  # the second process binds too
                    url = f"http://127.0.0.1:{port}/"
                    run_wrk(url, 2, args.connections, None)
                    meter = CpuMeter({"server": [p.pid for p in procs]})
                    meter.start()
                    res = run_wrk(url, args.duration, args.connections, None)
                    cpu = meter.stop()
                finally:
                    for p in procs:
                        stop(p)
            else:
                srv = start_server(name, work, loop, config, insecure=False)
                try:
                    ids = create_sagas(srv, args.sagas, args.milestones)
                    script = os.path.join(work, f"advance-{name}.lua")
                    with open(script, "w") as f:
                        f.write(LUA % {"ids": ", ".join(json.dumps(i) for i in ids), "token": TOKEN})
                    run_wrk(srv.url, 2, args.connections, script)
                    hops0 = srv.hop_counts()
                    profiles = start_profiles(srv, args.profile, f"advance-{name}-r{r}") if args.profile else []
                    meter = CpuMeter({"server": srv.pids})
                    meter.start()
                    res = run_wrk(srv.url, args.duration, args.connections, script)
                    cpu = meter.stop()
                    profiled[name] += stop_profiles(profiles)
                    hops = hop_delta(hops0, srv.hop_counts())
                    extra = "; " + describe_commits(hops, max(1, int(res["rps"] * args.duration))).replace(
                        "per saga", "per request")
                    if srv.workers > 1:
                        extra += "; " + describe_hops(hops)
                finally:
                    stop_server(srv)
            res["cpu"] = cpu
            rows[name].append(res)
            per_req = cpu["server"] / (res["rps"] * args.duration) * 1e6 if res["rps"] else 0
            print(f"  round {r + 1} {name:<6} {res['rps']:8.0f} req/s  p50 {res['p50']:>8}  p99 {res['p99']:>8}  "
                  f"non-2xx {res['non_2xx']}  socket errors {res['socket_errors']}  load {la}", flush=True)
            main_us = cpu["server_main"] / (res["rps"] * args.duration) * 1e6 if res["rps"] else 0
            if not name.startswith("hello"):
                extra = (f"; event-loop threads {main_us:.0f} us/req, other threads {per_req - main_us:.0f}, in the kernel "
                         f"{cpu['server_sys'] / max(cpu['server'], 1e-9):.0%}" + extra)
            print(f"         server CPU {per_req:.0f} us/req, machine busy "
                  f"{cpu['machine'] / cpu['elapsed'] / os.cpu_count():.0%}, foreign "
                  f"{cpu['foreign'] / cpu['elapsed'] / os.cpu_count():.0%}{extra}", flush=True)

    def mean(name: str) -> float:
        return statistics.mean(x["rps"] for x in rows[name])

    print("  summary (req/s, mean of rounds): " + ", ".join(f"{n} {mean(n):.0f}" for n in rows))
    for name in args.configs:
        hello = "hello2" if name.startswith("w2") else "hello1"
        label = "RATIO" if name == "w2" else "ratio"
        target = " target >= 0.60;" if name == "w2" else ""
        print(f"  {label} advance {name} / {hello}: {mean(name) / mean(hello):.2f} ({target} per round "
              + " ".join(f"{b['rps'] / a['rps']:.2f}" for a, b in zip(rows[hello], rows[name])) + ")")
    if "w1" in rows and "w2" in rows:
        print(f"  scaling: hello x2 / x1 {mean('hello2') / mean('hello1'):.2f}, advance w2 / w1 "
              f"{mean('w2') / mean('w1'):.2f}" + (f", w2s2 / w1 {mean('w2s2') / mean('w1'):.2f}" if "w2s2" in rows else ""),
              flush=True)
    caps = {}
    for name, runs in rows.items():
        served = sum(x["rps"] * args.duration for x in runs)
        total = sum(x["cpu"]["server"] for x in runs) / served
        main = sum(x["cpu"].get("server_main", x["cpu"]["server"]) for x in runs) / served
        procs = 2 if name in ("hello2",) or name.startswith("w2") else 1
        caps[name] = min(procs / main, (os.cpu_count() or 1) / total)
    print(f"  CPU-bound estimate on {os.cpu_count()} idle cpus (min of processes / event-loop CPU per request, cpus / "
          "server CPU per request; wrk's own CPU not counted): " + ", ".join(f"{n} {c:.0f}" for n, c in caps.items())
          + " req/s" + (f"; w2/hello2 {caps['w2'] / caps['hello2']:.2f}, w1/hello1 {caps['w1'] / caps['hello1']:.2f}"
                        if "w2" in caps and "w1" in caps else ""), flush=True)
    for name, paths in (profiled.items() if args.profile else ()):
        print(f"  profile advance {name} (py-spy, {len(paths)} files, all rounds, all its processes):")
        print(analyse(paths), flush=True)


# ---- part 3: the hop --------------------------------------------------------------------------

async def hop_latency(srv: Server, n: int, milestones: int) -> dict[str, list[float]]:
    import aiohttp
    from saga_journey.persistence.shard_map import owner_of, saga_shard

    auth = {"Authorization": f"Bearer {TOKEN}"}
    sessions = [aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=srv.hop_socket(i)))
                for i in range(srv.workers)]
    try:
        s0, s1 = sessions
        hop = {HOP_HEADER: "bench", **auth}
        async with s0.post("http://w/v1/journeys", json={"journey_type": "bench_hop", "requirements": {
                "milestones": [f"m{i}" for i in range(milestones)]}}, headers=hop) as r:
            assert r.status == 201, await r.text()
            jid = (await r.json())["journey_id"]
        # sagas created at worker 0 (with the hop header: placed in its own shards)
        need = n // milestones + 2
        direct, forwarded = [], []
        for lst in (direct, forwarded):
            for _ in range(need):
                async with s0.post("http://w/v1/sagas", json={"journey_id": jid}, headers=hop) as r:
                    assert r.status == 201, await r.text()
                    sid = (await r.json())["saga_id"]
                assert owner_of(saga_shard(TENANT, sid, SHARDS), 2) == 0, sid
                lst.append(sid)
        times: dict[str, list[float]] = defaultdict(list)
        body = {"step_result": {"status": "complete"}}
        workers_seen: Counter[str] = Counter()

        async def timed(kind: str, session: aiohttp.ClientSession, method: str, path: str, headers: dict[str, str],
                        **kw: Any) -> None:
            t = time.perf_counter()
            async with session.request(method, "http://w" + path, headers=headers, **kw) as r:
                await r.read()
                assert r.status == 200, (kind, r.status, await r.text())
                workers_seen[f"{kind}:{r.headers.get(WORKER_HEADER)}"] += 1
            times[kind].append((time.perf_counter() - t) * 1000)

        for _ in range(50):  # warm both paths (the hop connection pool included)
            await timed("warm", s0, "GET", f"/v1/sagas/{direct[0]}?wait=30&version=0", hop)
            await timed("warm", s1, "GET", f"/v1/sagas/{direct[0]}?wait=30&version=0", auth)
        times.pop("warm")
        # Alternating blocks of BLOCK requests, direct then forwarded, so that drift in the machine's load
        # hits both alike; the CPU of both workers is metered per block (the hop's own cost).
        cpu: dict[str, float] = defaultdict(float)
        block = 250
        for what in ("wait", "advance"):
            done = 0
            while done < n:
                size = min(block, n - done)
                for kind, session, headers, sagas in (("direct", s0, hop, direct), ("forwarded", s1, auth, forwarded)):
                    meter = CpuMeter({"server": srv.pids, "w0": srv.pids[:1], "w1": srv.pids[1:]})
                    meter.start()
                    for i in range(done, done + size):
                        if what == "wait":  # forwarded (a wait) but answered at once: version 0 < the saga's
                            await timed(f"wait {kind}", session, "GET", f"/v1/sagas/{direct[i % len(direct)]}"
                                        "?wait=30&version=0", headers)
                        else:  # durable advances: each saga gets `milestones` of them
                            await timed(f"advance {kind}", session, "POST",
                                        f"/v1/sagas/{sagas[i // milestones]}/advance", headers, json=body)
                    used = meter.stop()
                    cpu[f"{what} {kind}"] += used["server"]
                    cpu[f"{what} {kind} sys"] += used["server_sys"]
                    cpu[f"{what} {kind} w0"] += used["w0"]
                    cpu[f"{what} {kind} w1"] += used["w1"]
                done += size
        times["_cpu"] = cpu  # type: ignore[assignment]
        times["_workers"] = workers_seen  # type: ignore[assignment]
        return times
    finally:
        for s in sessions:
            await s.close()


def part_hop(args: argparse.Namespace, work: str, loop: str) -> None:
    config = os.path.join(work, "hop.toml")
    from saga_journey.http.auth import hash_token

    with open(config, "w") as f:
        f.write(f'[[api_keys]]\nsha256 = "{hash_token(TOKEN)}"\ntenant_id = "{TENANT}"\n'
                'user_id = "bench"\nroles = ["admin"]\n')
    print(f"\n== hop: --workers 2, {args.hop_requests} sequential requests of each kind over the workers' unix "
          "sockets, direct (to the owner, hop header set) and forwarded (to the other worker) in alternating blocks of 250; "
          f"load {loadavg()}", flush=True)
    srv = start_server("w2", work, loop, config, insecure=False)
    try:
        hops0 = srv.hop_counts()
        # worker 1 only forwards here (every saga is worker 0's): its profile is the hop's sending side
        profiles = start_profiles(Server("w2", srv.proc, 0, srv.data, 1, srv.log, srv.pids[1:]), args.profile,
                                  "hop-forwarder") if args.profile else []
        times = asyncio.run(hop_latency(srv, args.hop_requests, args.milestones))
        paths = stop_profiles(profiles)
        hops = hop_delta(hops0, srv.hop_counts())
    finally:
        stop_server(srv)
    seen = times.pop("_workers")
    cpu = times.pop("_cpu")
    print(f"  answered by (X-Saga-Journey-Worker): {dict(seen)}")
    print(f"  worker counters: {describe_hops(hops)}")
    for what in ("wait", "advance"):
        d, f = times[f"{what} direct"], times[f"{what} forwarded"]
        dp, fp = statistics.median(d), statistics.median(f)
        dm, fm = statistics.mean(d), statistics.mean(f)
        q = lambda v, p: sorted(v)[int(len(v) * p)]
        print(f"  {what:<8} direct    p50 {dp:6.3f} ms  mean {dm:6.3f} ms  p90 {q(d, .9):6.3f}  p99 {q(d, .99):6.3f}  (n={len(d)})")
        print(f"  {what:<8} forwarded p50 {fp:6.3f} ms  mean {fm:6.3f} ms  p90 {q(f, .9):6.3f}  p99 {q(f, .99):6.3f}  (n={len(f)})")
        dc, fc = cpu[f"{what} direct"] / len(d) * 1e6, cpu[f"{what} forwarded"] / len(f) * 1e6
        print(f"  {what:<8} HOP: +{fp - dp:.3f} ms at p50, +{fm - dm:.3f} ms mean; server CPU (both workers) "
              f"{dc:.0f} us direct, {fc:.0f} us forwarded: the hop costs {fc - dc:.0f} us of CPU, "
              f"{(cpu[f'{what} forwarded sys'] - cpu[f'{what} direct sys']) / len(f) * 1e6:.0f} us of it in the kernel; "
              f"the owner (worker 0) {cpu[f'{what} direct w0'] / len(d) * 1e6:.0f} -> "
              f"{cpu[f'{what} forwarded w0'] / len(f) * 1e6:.0f} us, the forwarder (worker 1) "
              f"{cpu[f'{what} direct w1'] / len(d) * 1e6:.0f} -> {cpu[f'{what} forwarded w1'] / len(f) * 1e6:.0f} us",
              flush=True)
    if args.profile:
        print("  profile of worker 1, which only forwards here (py-spy; the warm-up and the sagas' creation "
              "excluded only in part):")
        print(analyse(paths), flush=True)


# ---- main -------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="sagas,advance,hop")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--sagas", type=int, default=2000)
    ap.add_argument("--warm", type=int, default=200)
    ap.add_argument("--inflight", type=int, default=200)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=100)
    ap.add_argument("--milestones", type=int, default=25)
    ap.add_argument("--hop-requests", type=int, default=3000)
    ap.add_argument("--configs", default="w1,w2")
    ap.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto")
    ap.add_argument("--profile", default=None, help="folder for py-spy profiles of the sagas part")
    args = ap.parse_args()
    args.configs = args.configs.split(",")
    parts = args.parts.split(",")
    if "advance" in parts and shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    loop = resolve_loop(args.loop)
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
    import aiohttp

    work = tempfile.mkdtemp(prefix="sj-bench-workers-")
    fsync_p50, fsync_p99 = fsync_probe(work)
    with open("/proc/cpuinfo") as f:
        model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    print(f"machine: {platform.platform()}, {os.cpu_count()} cpus ({model}), Python {platform.python_version()}, "
          f"aiohttp {aiohttp.__version__}, loop {loop}")
    print(f"load average at start: {loadavg()}; disk: fsync of 500 B p50 {fsync_p50:.2f} ms, p99 {fsync_p99:.2f} ms")
    try:
        if "sagas" in parts:
            part_sagas(args, work, loop)
        if "advance" in parts:
            part_advance(args, work, loop)
        if "hop" in parts:
            part_hop(args, work, loop)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nload average at end: {loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
