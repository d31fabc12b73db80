"""``serve --workers N``: real supervisor and worker processes over one sharded folder.

Sagas of both workers' shards through the shared port (forwarded to their owner), merged lists
and cursors, idempotent creates, prune across workers, a worker killed with SIGKILL and
restarted while the other keeps answering, SIGTERM, and the folder served again with another
worker count (every saga and timer survives). No sleeps: every wait is on an event (a line on
stdout, an answer) with a bound.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from saga_journey.http.hop import hop_folder
from saga_journey.http.supervisor import STATE_FILE
from saga_journey.persistence.shard_map import saga_shard

SHARDS = 4
TENANT = "default"  # --insecure-dev


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """``saga-journey serve`` in a subprocess; its stdout lines are collected as they come."""

    def __init__(self, data: Path, *args: str) -> None:
        self.data = data
        self.args = args
        self.lines: list[str] = []
        self.changed = asyncio.Event()
        self.port = free_port()

    async def start(self) -> Served:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "saga_journey.runtime.cli", "serve", "--data-dir", str(self.data),
            "--host", "127.0.0.1", "--port", str(self.port), "--insecure-dev", "--log-level", "WARNING", *self.args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._reader = asyncio.ensure_future(self._read())
        await self.line("listening on")
        self.base = f"http://127.0.0.1:{self.port}"
        return self

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.lines.append(raw.decode())
            self.changed.set()

    async def line(self, text: str, after: int = 0, timeout: float = 60) -> str:
        async def find() -> str:
            while True:
                for line in self.lines[after:]:
                    if text in line:
                        return line
                if self.proc.returncode is not None and self._reader.done():
                    err = await self.proc.stderr.read() if self.proc.stderr else b""
                    raise AssertionError(f"serve exited ({self.proc.returncode}) before {text!r}: "
                                         f"{''.join(self.lines)}{err.decode()[-3000:]}")
                self.changed.clear()
                await self.changed.wait()

        return await asyncio.wait_for(find(), timeout)

    def state(self) -> dict[str, Any]:
        return json.loads((Path(hop_folder(str(self.data))) / STATE_FILE).read_text())

    async def stop(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.proc.wait(), 60)
        await self._reader
        return code


async def call(s: aiohttp.ClientSession, method: str, path: str, body: Any = None,
               headers: dict[str, str] | None = None) -> tuple[int, Any, str | None]:
    async with s.request(method, path, json=body, headers=headers) as r:
        return r.status, await r.json(content_type=None), r.headers.get("X-Saga-Journey-Worker")


def worker_of(saga_id: str, workers: int) -> int:
    return saga_shard(TENANT, saga_id, SHARDS) % workers


JOURNEY = {"journey_type": "order_processing", "journey_id": "orders",
           "requirements": {"retry": {"initial_delay_s": 0.01}}}


async def run_saga(s: aiohttp.ClientSession, saga_id: str) -> tuple[dict[str, Any], set[str | None]]:
    """Create, advance twice, fail the third: the two done are compensated, the saga FAILED."""
    answered = set()
    status, saga, w = await call(s, "POST", "/v1/sagas", {"journey_id": "orders", "saga_id": saga_id})
    assert status == 201, saga
    answered.add(w)
    for milestone in ("create_order", "process_payment"):
        status, saga, w = await call(s, "POST", f"/v1/sagas/{saga_id}/advance",
                                     {"step_result": {"status": "complete", "milestone_id": milestone}})
        assert status == 200, saga
        answered.add(w)
    status, saga, w = await call(s, "POST", f"/v1/sagas/{saga_id}/fail",
                                 {"milestone_id": "reserve_inventory", "error": "out of stock"})
    assert status == 200, saga
    while saga["status"] != "FAILED":
        status, saga, _ = await call(s, "GET", f"/v1/sagas/{saga_id}?wait=20&version={saga['version']}")
        assert status == 200, saga
    return saga, answered


async def test_two_workers_share_the_port_and_forward_to_owners(tmp_path: Path) -> None:
    served = await Served(tmp_path / "data", "--create", "--workers", "2", "--shards", str(SHARDS)).start()
    try:
        state = served.state()
        assert [sorted(w["shards"]) for w in state["workers"]] == [[0, 2], [1, 3]]
        async with aiohttp.ClientSession(served.base) as s:
            assert (await call(s, "GET", "/readyz"))[0] == 200
            status, journey, _ = await call(s, "POST", "/v1/journeys", JOURNEY)
            assert status == 201, journey
            ids = [f"o-{i}" for i in range(12)]
            assert {worker_of(i, 2) for i in ids} == {0, 1}  # both workers own some of them
            answered: set[str | None] = set()
            for sid in ids:
                saga, who = await run_saga(s, sid)
                answered |= who
                assert saga["compensated_milestones"] == ["process_payment", "create_order"]  # reverse order
                assert saga["compensation_status"] == "succeeded"
            assert answered == {"0", "1"}, answered  # every saga answered by its owner

            # created without an id: placed in the receiving worker's shards
            for _ in range(6):
                status, saga, w = await call(s, "POST", "/v1/sagas", {"journey_id": "orders"})
                assert status == 201 and str(worker_of(saga["saga_id"], 2)) == w, (saga, w)
                ids.append(saga["saga_id"])
            # an Idempotency-Key's create always reaches the same owner: its retry is the same saga
            first = await call(s, "POST", "/v1/sagas", {"journey_id": "orders"}, {"Idempotency-Key": "k-1"})
            again = await call(s, "POST", "/v1/sagas", {"journey_id": "orders"}, {"Idempotency-Key": "k-1"})
            assert first[1]["saga_id"] == again[1]["saga_id"] and first[2] == again[2]
            ids.append(first[1]["saga_id"])

            # lists merge every shard, with stable cursors
            seen: list[str] = []
            cursor = None
            while True:
                status, page, _ = await call(s, "GET", "/v1/sagas?limit=5" + (f"&cursor={cursor}" if cursor else ""))
                assert status == 200, page
                seen += [x["saga_id"] for x in page["sagas"]]
                cursor = page.get("next_cursor")
                if not cursor:
                    break
            assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
            status, failed, _ = await call(s, "GET", "/v1/sagas?status=FAILED&limit=100")
            assert {x["saga_id"] for x in failed["sagas"]} == {f"o-{i}" for i in range(12)}

            # prune asks every worker for its shards and adds their answers up
            status, dry, _ = await call(s, "POST", "/v1/admin/prune", {"older_than_s": 1e-3, "dry_run": True})
            assert status == 200 and dry["expired"] == 12, dry

            # one scrape on any worker shows every worker's series; their counts add up
            async with s.get("/metrics") as r:
                text = await r.text()
            families = {f.name: f for f in text_string_to_metric_families(text)}
            up = {smp.labels["worker"]: smp.value for smp in families["saga_worker_up"].samples}
            assert up == {"0": 1.0, "1": 1.0}
            hops = Counter()
            for smp in families["saga_http_hops"].samples:
                hops[smp.labels["outcome"]] += smp.value
            assert hops["forwarded"] > 0 and hops["failed"] == 0, hops
            started = {smp.labels["worker"]: smp.value for smp in families["saga_sagas_started"].samples
                       if smp.name.endswith("_total")}
            assert set(started) == {"0", "1"} and sum(started.values()) == len(ids), started
    finally:
        assert await served.stop() == 0
    assert served.proc.returncode == 0
    assert any("gateway stopped" in line for line in served.lines)
    assert not Path(hop_folder(str(tmp_path / "data"))).exists()  # nothing left behind in /tmp


async def test_a_killed_worker_comes_back_while_the_other_keeps_answering(tmp_path: Path) -> None:
    served = await Served(tmp_path / "data", "--create", "--workers", "2", "--shards", str(SHARDS)).start()
    try:
        async with aiohttp.ClientSession(served.base) as s:
            await call(s, "POST", "/v1/journeys", JOURNEY)
            ids = [f"k-{i}" for i in range(10)]
            for sid in ids:
                status, saga, _ = await call(s, "POST", "/v1/sagas", {"journey_id": "orders", "saga_id": sid})
                assert status == 201, saga
            mine = [i for i in ids if worker_of(i, 2) == 0]
            theirs = [i for i in ids if worker_of(i, 2) == 1]
            assert mine and theirs
            victim = served.state()["workers"][1]["pid"]
            mark = len(served.lines)
            os.kill(victim, signal.SIGKILL)
            await served.line("worker 1 (pid", after=mark)
            # worker 1 is down or restarting: worker 0's sagas answer throughout; a request for
            # worker 1's saga is answered 503 with Retry-After (or, once back, 200)
            back = asyncio.ensure_future(served.line("worker 1 is back", after=mark))
            rounds = 0
            while not back.done() or rounds == 0:
                rounds += 1
                for sid in mine:
                    status, saga, _ = await call(s, "POST", f"/v1/sagas/{sid}/advance", {
                        "step_result": {"status": "complete", "milestone_id": "create_order"}},
                        {"Idempotency-Key": f"adv-{sid}"})
                    assert status == 200, saga
                for sid in theirs:
                    try:
                        status, problem, _ = await call(s, "GET", f"/v1/sagas/{sid}?wait=0.01")
                    except aiohttp.ClientConnectionError:
                        continue  # a connection the kernel gave the dying worker
                    assert status in (200, 503), problem
                await asyncio.sleep(0)
            await back
            assert served.state()["workers"][1]["pid"] != victim
            assert served.state()["workers"][1]["restarts"] == 1
            for sid in theirs:  # its sagas are served again, by the new worker 1
                status, saga, w = await call(s, "POST", f"/v1/sagas/{sid}/advance", {
                    "step_result": {"status": "complete", "milestone_id": "create_order"}})
                assert status == 200 and w == "1", saga
    finally:
        assert await served.stop() == 0


async def test_another_worker_count_serves_every_saga_and_timer(tmp_path: Path) -> None:
    data = tmp_path / "data"
    served = await Served(data, "--create", "--workers", "2", "--shards", str(SHARDS)).start()
    timed = {"journey_type": "timed", "journey_id": "timed",
             "requirements": {"milestones": ["a", {"id": "b", "timeout_s": 3}]}}
    try:
        async with aiohttp.ClientSession(served.base) as s:
            await call(s, "POST", "/v1/journeys", JOURNEY)
            await call(s, "POST", "/v1/journeys", timed)
            for i in range(8):
                await run_saga(s, f"done-{i}")
            waiting = [f"t-{i}" for i in range(6)]  # their milestone b times out after the restart
            for sid in waiting:
                status, saga, _ = await call(s, "POST", "/v1/sagas", {"journey_id": "timed", "saga_id": sid})
                assert status == 201, saga
                status, saga, _ = await call(s, "POST", f"/v1/sagas/{sid}/advance",
                                             {"step_result": {"status": "complete", "milestone_id": "a"}})
                assert status == 200 and saga["current_milestone"] == "b", saga
    finally:
        assert await served.stop() == 0
    for workers in ("1", "3"):
        again = await Served(data, "--workers", workers).start()
        try:
            async with aiohttp.ClientSession(again.base) as s:
                status, page, _ = await call(s, "GET", "/v1/sagas?limit=100&journey_type=order_processing")
                assert Counter(x["status"] for x in page["sagas"]) == {"FAILED": 8}
                if workers == "3":  # the timers fired (in whichever worker now owns each saga)
                    for sid in waiting:
                        saga: dict[str, Any] = {"status": "IN_PROGRESS", "version": 0}
                        while saga["status"] != "FAILED":
                            status, saga, _ = await call(s, "GET", f"/v1/sagas/{sid}?wait=20&version={saga['version']}")
                            assert status == 200, saga
                        assert saga["failure"]["kind"] == "timeout", saga
        finally:
            assert await again.stop() == 0


@pytest.mark.parametrize("args, expected", [
    (("--workers", "2"), "one-process store"),
    (("--workers", "2", "--shards", "8"), "one-process store"),
    (("--workers", "many"), "--workers must be"),
])
def test_refusals_on_a_one_process_folder(tmp_path: Path, args: tuple[str, ...], expected: str) -> None:
    import subprocess

    from saga_journey.persistence.lmdb_backend import LmdbBackend

    LmdbBackend(str(tmp_path / "plain")).open().close()
    out = subprocess.run([sys.executable, "-m", "saga_journey.runtime.cli", "serve", "--data-dir",
                          str(tmp_path / "plain"), "--port", "0", "--insecure-dev", *args],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and expected in out.stderr, out.stderr


def test_refusals_on_a_sharded_folder(tmp_path: Path) -> None:
    import subprocess

    from saga_journey.persistence.shard_layout import create_layout

    create_layout(str(tmp_path / "d"), 4)
    for args, expected in ((("--workers", "5"), "more than the 4 shards"),
                           (("--workers", "2", "--shards", "8"), "has 4 shards")):
        out = subprocess.run([sys.executable, "-m", "saga_journey.runtime.cli", "serve", "--data-dir",
                              str(tmp_path / "d"), "--port", "0", "--insecure-dev", *args],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and expected in out.stderr, (args, out.stderr)


async def test_one_supervisor_per_folder(tmp_path: Path) -> None:
    served = await Served(tmp_path / "data", "--create", "--workers", "2", "--shards", str(SHARDS)).start()
    try:
        second = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "saga_journey.runtime.cli", "serve", "--data-dir", str(tmp_path / "data"),
            "--port", "0", "--insecure-dev", "--workers", "2", stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(second.communicate(), 60)
        assert second.returncode == 2 and b"already served" in err, err
    finally:
        assert await served.stop() == 0
