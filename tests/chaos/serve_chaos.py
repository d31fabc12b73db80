"""Chaos against ``saga-journey serve --workers 2``: SIGKILL one worker at a time, at named crash
points (armed in that worker only, through ``crashpoints.ARM_DIR_ENV``) or at random times,
sometimes again during its recovery (before or right after it is back), while a client drives
sagas of both workers' shards through the shared port; the supervisor restarts the worker. At
the end every saga is driven to its end, the supervisor stopped, and I1-I6 checked over the whole
sharded folder (read-only). Used by tests/chaos/test_chaos_workers.py and
``bench/chaos.py --client http --workers 2``.

It also measures the gap for the *other* worker: every request the client makes is timed (from
its first attempt to its answer, retries included) and tagged with the worker owning the saga
(``saga_shard(tenant, saga_id, S) % 2``). A request of the surviving worker's sagas that overlaps
the other worker's down time (kill to ready again) counts in the gap figures: the longest such
wait, and how many of its attempts failed (503, 5xx, timeouts, refused) - apart from attempts on
a connection reset because it was on the killed worker when it died (counted separately, the
client retries those at once).

The client retries 503 ``owner_unavailable`` (the killed worker's sagas) every 0.1 s instead of
the 1 s of Retry-After, to keep the load up; every write carries an Idempotency-Key, so a retry
after a reset is answered from the original outcome. The harness itself is never killed: its
ack log is written (not fsynced) here; the ledger is written, fsynced, by the webhook endpoint
(``webhook.py``) in its own process.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import statistics
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from saga_journey.persistence.shard_map import saga_shard
from saga_journey.runtime import crashpoints

from .harness import _NTH_MAX, RANDOM_KILL
from .invariants import Verdict, check
from .worker import HANDLER, JOURNEY_ID, MILESTONES, RETRY, plan

WEBHOOK = Path(__file__).with_name("webhook.py")
ROOT = Path(__file__).resolve().parent.parent.parent
TENANT = "default"
WORKERS = 2
# The supervisor with its young-death back-off switched off (``--young-s 0``): a worker killed
# every few seconds is restarted after MIN_BACKOFF_S each time instead of up to 10 s.
LAUNCH = ("import sys; import saga_journey.http.supervisor as s; s.YOUNG_S = float(sys.argv.pop(1)); "
          "from saga_journey.runtime.cli import main; sys.exit(main(sys.argv[1:]))")
READY_RE = re.compile(r"saga-journey worker (\d+) of \d+ ready \(pid (\d+)")
DIED_RE = re.compile(r"saga-journey: worker (\d+) \(pid (\d+)\) died \((.*?)\)")
LISTEN_RE = re.compile(r"gateway listening on (http://\S+)")


@dataclass
class Op:
    owner: int
    what: str
    t0: float
    t1: float = 0.0
    failures: int = 0
    resets: int = 0  # reset, or refused: the connection was on a listener that died (the killed worker's)
    ok: bool = False


@dataclass
class Window:
    worker: int
    down: float
    up: float = 0.0
    how: str = ""


@dataclass
class ServeResult:
    injections: Counter = field(default_factory=Counter)
    missed: Counter = field(default_factory=Counter)
    double_crashes: int = 0
    deaths: int = 0
    unexpected_deaths: list[str] = field(default_factory=list)
    verdict: Verdict | None = None
    gap: dict[str, Any] = field(default_factory=dict)
    failure_kinds: Counter = field(default_factory=Counter)  # survivor attempts that failed during kills
    errors: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    probes: dict[str, Any] = field(default_factory=dict)  # harness loop lag, disk fsync latency
    ops: int = 0
    sagas_started: int = 0


class Cluster:
    """The supervisor process: its output parsed into worker pids, deaths and readiness."""

    def __init__(self, work: Path, shards: int, config: Path, young_s: float) -> None:
        self.work, self.shards, self.config, self.young_s = work, shards, config, young_s
        self.arm_dir = work / "arm"
        self.pid: dict[int, int] = {}
        self.up = {i: False for i in range(WORKERS)}
        self.deaths = {i: 0 for i in range(WORKERS)}
        self.readies = {i: 0 for i in range(WORKERS)}
        self.death_codes: list[tuple[int, str]] = []
        self.ready_at: dict[int, float] = {}
        self.died_at: dict[int, float] = {}
        self.base = ""
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[str] = []

    async def start(self) -> None:
        self.arm_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, crashpoints.ARM_DIR_ENV: str(self.arm_dir)}
        env.pop(crashpoints.ENV, None)
        env.pop(crashpoints.MARK_ENV, None)
        argv = [sys.executable, "-c", LAUNCH, str(self.young_s), "serve", "--create", "--workers", str(WORKERS),
                "--shards", str(self.shards), "--data-dir", str(self.work / "data"), "--port", "0",
                "--insecure-dev", "--config", str(self.config)]
        with (self.work / "serve.err").open("ab") as err:  # the child has its own copy
            self.proc = await asyncio.create_subprocess_exec(
                *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=err, start_new_session=True)
        listening: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        asyncio.ensure_future(self._read(listening))
        self.base = await asyncio.wait_for(listening, 120)

    async def _read(self, listening: asyncio.Future[str]) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        with open(self.work / "serve.out", "a") as log:
            while line := (await self.proc.stdout.readline()).decode(errors="replace"):
                now = time.time()
                log.write(f"{now:.3f} {line}")
                log.flush()
                if m := READY_RE.search(line):
                    i = int(m.group(1))
                    self.pid[i], self.ready_at[i] = int(m.group(2)), now
                    self.readies[i] += 1
                    self.up[i] = True
                elif m := DIED_RE.search(line):
                    i = int(m.group(1))
                    self.up[i] = False
                    self.died_at[i] = now
                    self.death_codes.append((i, m.group(3)))
                    self.deaths[i] += 1
                elif (m := LISTEN_RE.search(line)) and not listening.done():
                    listening.set_result(m.group(1))
        if not listening.done():
            listening.set_exception(RuntimeError(f"the supervisor exited; see {self.work / 'serve.err'}"))

    def arm(self, worker: int, spec: str) -> None:
        """Arm (``point:nth``) or disarm ("") the worker's current or next life."""
        tmp = self.arm_dir / f"w{worker}.arm.tmp"
        tmp.write_text(spec)
        os.replace(tmp, self.arm_dir / f"w{worker}.arm")

    def mark(self, worker: int) -> Path:
        return self.arm_dir / f"w{worker}.mark"

    async def stop(self) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), 90)


class Client:
    """Drives sagas over HTTP with retries; every request timed and tagged with its owner."""

    def __init__(self, base: str, shards: int, acks_path: Path, ops: list[Op]) -> None:
        self.base, self.shards = base, shards
        self.acks = acks_path.open("a", encoding="utf-8")  # closed by close()
        self.ops = ops
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=128),
                                             timeout=aiohttp.ClientTimeout(total=45))
        self.failure_log: list[tuple[int, float, str]] = []  # (owner, when, kind)
        self.errors: list[str] = []

    def owner(self, saga_id: str) -> int:
        return saga_shard(TENANT, saga_id, self.shards) % WORKERS

    async def call(self, owner: int, what: str, method: str, path: str, body: Any = None,
                   key: str | None = None, give_up_s: float = 120.0) -> tuple[int, Any]:
        """Until an answer that is not retryable: 2xx or a 4xx other than 408/425/429."""
        op = Op(owner, what, time.time())
        self.ops.append(op)
        headers = {"Idempotency-Key": key} if key else None
        while True:
            try:
                async with self.session.request(method, self.base + path, json=body, headers=headers) as resp:
                    data = await resp.json(content_type=None)
                    status = resp.status
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError) as exc:
                # Refused: the SYN was queued on a listener that closed (the survivor's never
                # does; the supervisor's socket is bound, not listening). Reset: the connection
                # was on the worker that died. Both retried at once, counted apart.
                kind = "refused" if isinstance(exc, aiohttp.ClientConnectorError) else "reset"
                op.resets += 1
                self.failure_log.append((owner, time.time(), kind))
                await asyncio.sleep(0.005)
                kind = ""
            except TimeoutError:
                kind = "timeout"
            else:
                code = data.get("code") if isinstance(data, dict) else None
                if status == 409 and code == "request_in_flight" and op.resets:
                    # The first try, cut off by the reset, is still running at the owner: the
                    # right answer; retried, counted with the resets.
                    self.failure_log.append((owner, time.time(), "in_flight_after_reset"))
                    await asyncio.sleep(0.05)
                    continue
                if status < 300 or (400 <= status < 500 and status not in (408, 425, 429)
                                    and code != "request_in_flight"):
                    op.t1, op.ok = time.time(), status < 300
                    return status, data
                kind = f"{status} {code or ''}".strip()
            if kind:
                op.failures += 1
                self.failure_log.append((owner, time.time(), kind))
                await asyncio.sleep(0.1)
            if time.time() - op.t0 > give_up_s:
                op.t1 = time.time()
                raise RuntimeError(f"{what}: no answer in {give_up_s:.0f}s (last: {kind or 'reset'})")

    def ack(self, op: str, saga_id: str, resp: dict[str, Any]) -> dict[str, Any]:
        self.acks.write(json.dumps({
            "op": op, "saga": saga_id, "version": resp["version"], "status": resp["status"],
            "event": None if resp.get("replayed") else resp.get("event"),
            "completed": resp["completed_milestones"],
        }) + "\n")
        return resp

    async def design(self) -> None:
        body = {"journey_type": "chaos", "journey_id": JOURNEY_ID,
                "requirements": {"milestones": [{"id": m, "compensation_handler": HANDLER} for m in MILESTONES],
                                 "retry": RETRY}}
        status, data = await self.call(0, "design", "GET", f"/v1/journeys/{JOURNEY_ID}")
        if status == 404:
            status, data = await self.call(0, "design", "POST", "/v1/journeys", body, key="design-chaos")
        if status >= 300:
            raise RuntimeError(f"designing the journey: HTTP {status} {data}")

    async def status(self, saga_id: str) -> tuple[int, Any]:
        return await self.call(self.owner(saga_id), "status", "GET", f"/v1/sagas/{saga_id}")

    async def drive(self, saga_id: str, view: dict[str, Any] | None = None) -> None:
        """One saga along its plan from whatever state it is in; ack every 2xx."""
        owner = self.owner(saga_id)
        kind, k = plan(saga_id)
        if view is None:
            body = {"journey_id": JOURNEY_ID, "context": {"n": saga_id}, "saga_id": saga_id, "user_id": "chaos"}
            status, data = await self.call(owner, "create", "POST", "/v1/sagas", body, key=f"{saga_id}/create")
            if status >= 300:
                self.errors.append(f"{saga_id}: create HTTP {status} {data}")
                status, data = await self.status(saga_id)
                if status >= 300:
                    return
            else:
                self.ack("execute", saga_id, data)
            view = data
        for _ in range(50):
            if view["status"] != "IN_PROGRESS":
                return
            done, current = len(view["completed_milestones"]), view["current_milestone"]
            if kind == "abort" and done == k:
                op, path, body = "abort", "compensate", {"reason": "chaos abort"}
            elif kind == "fail" and done == k:
                op, path = "advance", "advance"
                body = {"step_result": {"status": "failed", "milestone_id": current, "error": "planned failure"},
                        "journey_id": JOURNEY_ID}
            else:
                op, path = "advance", "advance"
                body = {"step_result": {"status": "complete", "milestone_id": current,
                                        "out": f"{saga_id}:{current}"}, "journey_id": JOURNEY_ID}
            status, data = await self.call(owner, op, "POST", f"/v1/sagas/{saga_id}/{path}", body,
                                           key=f"{saga_id}/{op}/{current}/{done}")
            if status < 300:
                view = self.ack(op, saga_id, data)
                continue
            self.errors.append(f"{saga_id}: {op} {current} HTTP {status} {data.get('code')}: {data.get('detail')}")
            status, data = await self.status(saga_id)
            if status >= 300:
                return
            view = data
        self.errors.append(f"{saga_id}: still IN_PROGRESS after 50 steps")

    async def listing(self, status: str) -> list[str]:
        out, cursor = [], None
        while True:
            q = f"/v1/sagas?status={status}&limit=500" + (f"&cursor={cursor}" if cursor else "")
            code, page = await self.call(0, "list", "GET", q)
            if code >= 300:
                raise RuntimeError(f"listing {status}: HTTP {code} {page}")
            out += [s["saga_id"] for s in page["sagas"]]
            cursor = page.get("next_cursor")
            if not cursor:
                return out

    async def close(self) -> None:
        self.acks.close()
        await self.session.close()


async def _webhook(work: Path) -> tuple[asyncio.subprocess.Process, int]:
    with (work / "webhook.err").open("ab") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(WEBHOOK), "--ledger", str(work / "ledger.log"),
            stdout=asyncio.subprocess.PIPE, stderr=err)
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    if not line.startswith("listening "):
        raise RuntimeError(f"webhook endpoint did not start; see {work / 'webhook.err'}")
    return proc, int(line.split()[1])


def _config(work: Path, hook_port: int) -> Path:
    path = work / "serve.toml"
    path.write_text(
        "[runtime]\nreply_timeout_s = 30.0\nidle_passivate_s = 5.0\n\n"
        f"[webhooks.{HANDLER}]\nurl = \"http://127.0.0.1:{hook_port}/undo\"\ntimeout_s = 5\n")
    return path


async def _run(work: Path, seed: int, injections: int, drivers_per_worker: int, shards: int,
               random_fraction: float, double_fraction: float, young_s: float,
               wait_s: float, arm_timeout_s: float, progress: bool) -> ServeResult:
    rng = random.Random(seed)
    res = ServeResult()
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    hook, hook_port = await _webhook(work)
    cluster = Cluster(work, shards, _config(work, hook_port), young_s)
    ops: list[Op] = []
    windows: list[Window] = []
    lags: list[tuple[float, float]] = []
    fsyncs: list[tuple[float, float]] = []
    client: Client | None = None
    try:
        await cluster.start()
        client = Client(cluster.base, shards, work / "acks.log", ops)
        await client.design()
        stop = asyncio.Event()
        counter = iter(range(10**9))

        async def driver(target: int) -> None:
            assert client is not None
            while not stop.is_set():
                while True:
                    sid = f"s{seed}-{next(counter):06d}"
                    if client.owner(sid) == target:
                        break
                res.sagas_started += 1
                try:
                    await client.drive(sid)
                except RuntimeError as exc:
                    client.errors.append(f"{sid}: {exc}")

        drivers = [asyncio.ensure_future(driver(i % WORKERS)) for i in range(drivers_per_worker * WORKERS)]
        lag_probe = asyncio.ensure_future(_loop_lag(lags))
        disk = threading.Thread(target=_fsync_probe, args=(work / "fsync.probe", fsyncs, stop), daemon=True)
        disk.start()
        await _inject(cluster, rng, res, windows, injections, random_fraction, double_fraction,
                      arm_timeout_s, progress)
        stop.set()
        await asyncio.gather(*drivers)
        lag_probe.cancel()
        # Every saga to its end: drive what is left IN_PROGRESS, wait for the compensations.
        for sid in await client.listing("IN_PROGRESS"):
            code, view = await client.status(sid)
            if code < 300:
                await client.drive(sid, view)
        deadline = time.time() + wait_s
        while True:
            left = await client.listing("IN_PROGRESS") + await client.listing("COMPENSATING")
            if not left or time.time() > deadline:
                break
            await asyncio.sleep(0.2)
        res.errors = client.errors
    finally:
        if client is not None:
            await client.close()
        if cluster.proc is not None:
            code = await cluster.stop()
            if code != 0:
                res.errors.append(f"the supervisor exited with {code}")
        hook.send_signal(signal.SIGTERM)
        await hook.wait()
    res.deaths = len(cluster.death_codes)
    res.unexpected_deaths = [f"worker {i}: {how}" for i, how in cluster.death_codes if how != "signal 9"]
    res.ops = len(ops)
    res.verdict = check(str(work / "data"), str(work / "acks.log"), str(work / "ledger.log"), left)
    res.gap, res.failure_kinds = gap_figures(ops, windows, client.failure_log if client else [])
    res.probes = _probe_figures(lags, fsyncs, res.gap["longest_survivor_requests"])
    (work / "gap.json").write_text(json.dumps({**res.gap, **res.probes, "failure_kinds": res.failure_kinds,
                                               "injections": res.injections, "missed": res.missed,
                                               "errors": res.errors[:100]}, indent=1))
    res.elapsed_s = time.time() - started
    return res


async def _loop_lag(out: list[tuple[float, float]]) -> None:
    """How late the harness's own loop wakes up (a stalled client would look like a gap)."""
    while True:
        t = time.monotonic()
        await asyncio.sleep(0.05)
        out.append((time.time(), time.monotonic() - t - 0.05))


def _fsync_probe(path: Path, out: list[tuple[float, float]], stop: asyncio.Event) -> None:
    """fsync latency of the disk under the folders, every 0.1 s (a disk stall holds up commits)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        while not stop.is_set():
            t = time.monotonic()
            os.write(fd, b".")
            os.fsync(fd)
            out.append((time.time(), time.monotonic() - t))
            time.sleep(0.1)
    finally:
        os.close(fd)


def _probe_figures(lags: list[tuple[float, float]], fsyncs: list[tuple[float, float]],
                   longest: list[dict[str, Any]]) -> dict[str, Any]:
    def worst(xs: list[tuple[float, float]], t0: float = 0.0, t1: float = float("inf")) -> float:
        return max((d for t, d in xs if t0 <= t <= t1 + d), default=0.0)

    top = longest[0] if longest else None
    return {
        "loop_lag_max_s": worst(lags), "fsync_max_s": worst(fsyncs),
        "longest_loop_lag_s": worst(lags, top["t0"], top["t0"] + top["s"]) if top else 0.0,
        "longest_fsync_s": worst(fsyncs, top["t0"], top["t0"] + top["s"]) if top else 0.0,
    }


async def _until(cond: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


async def _inject(cluster: Cluster, rng: random.Random, res: ServeResult, windows: list[Window],
                  injections: int, random_fraction: float, double_fraction: float, arm_timeout_s: float,
                  progress: bool) -> None:
    points = list(crashpoints.POINTS)
    turn = kills = 0

    def killed(w: int, how: str, at: float | None = None) -> None:
        nonlocal kills
        mark = cluster.mark(w)
        if mark.exists():
            how, at = mark.read_text(), mark.stat().st_mtime
            mark.unlink()
        windows.append(Window(w, at if at is not None else cluster.died_at[w], how=how))
        res.injections[how] += 1
        kills += 1

    async def back(w: int) -> None:
        if not await _until(lambda: cluster.up[w], 90):
            raise RuntimeError(f"worker {w} not back within 90s")
        for win in windows:
            if win.worker == w and not win.up:
                win.up = cluster.ready_at[w]

    async def kill_now(w: int) -> None:
        n = cluster.deaths[w]
        at = time.time()
        os.kill(cluster.pid[w], signal.SIGKILL)
        if not await _until(lambda: cluster.deaths[w] > n, 30):
            raise RuntimeError(f"worker {w} killed but its death was not reported")
        killed(w, RANDOM_KILL, at)

    while kills < injections:
        for w in range(WORKERS):
            await back(w)
        await asyncio.sleep(rng.uniform(0.2, 0.5))  # load on both again
        w = rng.randrange(WORKERS)
        cluster.mark(w).unlink(missing_ok=True)
        if rng.random() < random_fraction:
            await asyncio.sleep(rng.uniform(0.05, 0.6))
            await kill_now(w)
        else:
            point = points[turn % len(points)]
            turn += 1
            n = cluster.deaths[w]
            cluster.arm(w, f"{point}:{rng.randint(1, _NTH_MAX[point])}")
            if not await _until(lambda w=w, n=n: cluster.deaths[w] > n, arm_timeout_s):
                cluster.arm(w, "")
                res.missed[point] += 1
                continue
            killed(w, "unknown-kill")
        if kills < injections and rng.random() < double_fraction:
            # Again during its recovery: armed before it restarts (fires while it recovers, or
            # within 1 s of being back), or a kill -9 right after it is back.
            if rng.random() < 0.5:
                n, r = cluster.deaths[w], cluster.readies[w]
                cluster.arm(w, f"{rng.choice(points)}:{rng.randint(1, 4)}")
                await _until(lambda w=w, n=n, r=r: cluster.deaths[w] > n or (
                    cluster.readies[w] > r and time.time() - cluster.ready_at[w] > 1.0), 90)
                if cluster.deaths[w] > n:
                    killed(w, "unknown-kill")
                    res.double_crashes += 1
                else:
                    cluster.arm(w, "")
            else:
                await back(w)
                await asyncio.sleep(rng.uniform(0.0, 0.3))
                await kill_now(w)
                res.double_crashes += 1
        await back(w)
        if progress and kills % 10 == 0:
            print(f"  {kills} injections, {time.strftime('%H:%M:%S')}", file=sys.stderr, flush=True)


def gap_figures(ops: list[Op], windows: list[Window], failure_log: list[tuple[int, float, str]]
                ) -> tuple[dict[str, Any], Counter]:
    """The surviving worker's requests during the other's down windows vs the rest."""
    windows = [w for w in windows if w.up]

    def overlaps(op: Op, worker: int) -> bool:
        return any(w.worker == worker and op.t0 <= w.up and op.t1 >= w.down for w in windows)

    done = [op for op in ops if op.t1]
    survivor = [op for op in done if any(overlaps(op, other) for other in range(WORKERS) if other != op.owner)
                and not overlaps(op, op.owner)]
    own_down = [op for op in done if overlaps(op, op.owner)]
    calm = [op for op in done if not any(overlaps(op, w) for w in range(WORKERS))]

    def lat(sel: list[Op]) -> list[float]:
        return sorted(op.t1 - op.t0 for op in sel)

    def pct(xs: list[float], q: float) -> float:
        return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else 0.0

    s_lat, s_clean = lat(survivor), lat([op for op in survivor if not op.resets])
    o_lat, c_lat = lat(own_down), lat(calm)
    longest = max(survivor, key=lambda op: op.t1 - op.t0, default=None)
    kinds: Counter = Counter()  # the survivor's failed attempts (and resets) during the other's down time
    lag = {"reset": 0.0, "refused": 0.0, "in_flight_after_reset": 0.0}  # the latest of each after its kill
    for owner, when, kind in failure_log:
        hit = [w for w in windows if w.worker != owner and w.down - 0.05 <= when <= w.up]
        if hit:
            kinds[kind] += 1
            if kind in lag:
                lag[kind] = max(lag[kind], min(when - w.down for w in hit))
    down = [w.up - w.down for w in windows]
    gap = {
        "windows": len(windows),
        "down_s_max": max(down, default=0.0), "down_s_median": statistics.median(down) if down else 0.0,
        "survivor_requests": len(survivor),
        "survivor_max_s": s_lat[-1] if s_lat else 0.0,
        "survivor_max_s_without_reset": s_clean[-1] if s_clean else 0.0,
        "survivor_p99_s": pct(s_lat, 0.99), "survivor_median_s": pct(s_lat, 0.5),
        "survivor_longest": f"{longest.what} ({longest.t1 - longest.t0:.3f}s, {longest.failures} failed, "
                            f"{longest.resets} reset)" if longest else "-",
        "survivor_failed_attempts": sum(n for k, n in kinds.items() if k not in lag),
        "survivor_failed_requests": sum(1 for op in survivor if op.failures),
        "survivor_reset_attempts": kinds["reset"], "survivor_refused_attempts": kinds["refused"],
        "survivor_reset_requests": sum(1 for op in survivor if op.resets),
        "survivor_reset_lag_s": lag["reset"], "survivor_refused_lag_s": lag["refused"],
        "survivor_unanswered": sum(1 for op in survivor if not op.ok and op.t1 - op.t0 > 100),
        "owner_down_requests": len(own_down), "owner_down_max_s": o_lat[-1] if o_lat else 0.0,
        "owner_down_failed_attempts": sum(op.failures for op in own_down),
        "calm_requests": len(calm), "calm_max_s": c_lat[-1] if c_lat else 0.0, "calm_p99_s": pct(c_lat, 0.99),
        "calm_failed_attempts": sum(op.failures for op in calm),
        "calm_reset_attempts": sum(op.resets for op in calm),
        "longest_survivor_requests": [
            {"what": op.what, "owner": op.owner, "s": round(op.t1 - op.t0, 4), "t0": op.t0,
             "failures": op.failures, "resets": op.resets}
            for op in sorted(survivor, key=lambda op: op.t0 - op.t1)[:10]],
        "windows_detail": [{"worker": w.worker, "down": w.down, "up": w.up, "how": w.how} for w in windows],
        "survivor_failures_detail": [
            {"owner": o, "at": t, "kind": k, "after_kill_s": min(
                (t - w.down for w in windows if w.worker != o and w.down - 0.05 <= t <= w.up), default=None)}
            for o, t, k in failure_log
            if k not in lag and any(w.worker != o and w.down - 0.05 <= t <= w.up for w in windows)][:50],
    }
    return gap, kinds


def run_serve_chaos(work: Path, seed: int, injections: int, *, drivers_per_worker: int = 8, shards: int = 8,
                    random_fraction: float = 0.15, double_fraction: float = 0.3, young_s: float = 0.0,
                    wait_s: float = 30.0, arm_timeout_s: float = 10.0, progress: bool = False) -> ServeResult:
    return asyncio.run(_run(work, seed, injections, drivers_per_worker, shards, random_fraction,
                            double_fraction, young_s, wait_s, arm_timeout_s, progress))


def serve_table(res: ServeResult) -> str:
    from .invariants import INVARIANTS

    lines = ["crash point                 injections   missed (armed, not hit in time)"]
    for point in (*crashpoints.POINTS, RANDOM_KILL):
        lines.append(f"  {point:<26}{res.injections.get(point, 0):>8}{res.missed.get(point, 0):>9}")
    for k, n in res.injections.items():
        if k not in (*crashpoints.POINTS, RANDOM_KILL):
            lines.append(f"  {k:<26}{n:>8}")
    lines.append(f"  {'total':<26}{sum(res.injections.values()):>8}")
    lines.append(f"double crashes (again during recovery / right after back): {res.double_crashes}")
    lines.append(f"worker deaths seen by the supervisor: {res.deaths}   unexpected (not SIGKILL): "
                 f"{len(res.unexpected_deaths)}")
    v = res.verdict
    assert v is not None
    lines.append(f"sagas: {v.sagas} (started by the client: {res.sagas_started})   requests: {res.ops}   "
                 f"elapsed: {res.elapsed_s:.0f}s")
    lines.append(f"acknowledged responses: {v.acks}   acknowledged transitions: {v.transitions}   "
                 f"ledger lines: {v.ledger_lines}")
    lines.append("invariant   violations")
    for i in INVARIANTS:
        lines.append(f"  {i:<10}{v.counts()[i]:>8}")
    g = res.gap
    lines.append(f"gap for the surviving worker ({g['windows']} down windows; down time: max {g['down_s_max']:.2f}s, "
                 f"median {g['down_s_median']:.2f}s)")
    lines.append(f"  requests of its sagas during the other's down time: {g['survivor_requests']}")
    lines.append(f"  longest wait: {g['survivor_max_s']:.3f}s  (without a reset: "
                 f"{g['survivor_max_s_without_reset']:.3f}s)   p99 {g['survivor_p99_s']:.3f}s   "
                 f"median {g['survivor_median_s']:.3f}s")
    lines.append(f"  longest: {g['survivor_longest']}")
    failed = {k: n for k, n in res.failure_kinds.items() if k not in ("reset", "refused", "in_flight_after_reset")}
    lines.append(f"  failed attempts (503, 5xx, timeouts): {g['survivor_failed_attempts']} "
                 f"(in {g['survivor_failed_requests']} requests)   kinds: {failed or '-'}")
    lines.append(f"  on the killed worker's connections (retried at once): {g['survivor_reset_attempts']} reset "
                 f"(latest {g['survivor_reset_lag_s']:.3f}s after its kill), {g['survivor_refused_attempts']} "
                 f"refused (latest {g['survivor_refused_lag_s']:.3f}s after), in {g['survivor_reset_requests']} requests; "
                 f"then 409 request_in_flight (the cut-off try still running): "
                 f"{res.failure_kinds.get('in_flight_after_reset', 0)}")
    lines.append(f"killed worker's own sagas meanwhile: {g['owner_down_requests']} requests, longest "
                 f"{g['owner_down_max_s']:.3f}s, {g['owner_down_failed_attempts']} failed attempts (503 expected)")
    lines.append(f"no worker down: {g['calm_requests']} requests, longest {g['calm_max_s']:.3f}s, "
                 f"p99 {g['calm_p99_s']:.3f}s, failed attempts {g['calm_failed_attempts']}, "
                 f"resets {g['calm_reset_attempts']}")
    p = res.probes
    lines.append(f"probes: harness loop lag max {p['loop_lag_max_s']:.3f}s, disk fsync max {p['fsync_max_s']:.3f}s; "
                 f"during the longest survivor request: loop lag {p['longest_loop_lag_s']:.3f}s, "
                 f"fsync {p['longest_fsync_s']:.3f}s")
    if res.errors:
        lines.append(f"client errors (non-retryable answers): {len(res.errors)}; first: {res.errors[:3]}")
    return "\n".join(lines)
