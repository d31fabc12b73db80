"""`saga-journey serve --log-format json --access-log` in a real subprocess: the start-up line
lists the endpoints and the parked sagas; every stderr log line is one JSON object."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from contextlib import closing

from saga_journey.runtime import SagaOrchestrator
from saga_journey.runtime.journeys import TEMPLATES

READY = "saga-journey ready"


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def broken(ctx) -> None:
    raise ConnectionError("down")


def park_one(data: str) -> None:
    """One parked saga of the tenant --insecure-dev acts as."""
    handlers = {h: broken for _, h in TEMPLATES["order_processing"]}
    with SagaOrchestrator.open(data, handlers=handlers) as orch:
        orch.design_saga_journey_sync("order_processing", {"retry": {"max_attempts": 1}}, journey_id="orders")
        orch.execute_saga_journey_sync("orders", "u1", {}, saga_id="p-1")
        orch.advance_saga_step_sync("p-1", None, "u1", {"status": "complete", "milestone_id": "create_order"})
        orch.advance_saga_step_sync("p-1", None, "u1", {"status": "failed", "milestone_id": "process_payment"})
        assert orch.wait_for_saga_sync("p-1", timeout=20)["parked"]


def test_start_up_line_and_access_log_as_json(tmp_path) -> None:
    data = str(tmp_path / "d")
    park_one(data)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "saga_journey.runtime.cli", "serve", "--data-dir", data, "--port", str(port),
         "--insecure-dev", "--log-format", "json", "--access-log"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "SAGA_JOURNEY_LOG_LEVEL": "info"},
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if READY in line:
                ready.set()
        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(60) and proc.poll() is None, "".join(lines)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as resp:
            assert resp.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        reader.join(10)
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert records, "".join(lines)
    assert all({"ts", "level", "logger", "msg"} <= set(r) for r in records)
    start = next(r for r in records if r["msg"].startswith(READY))
    base = f"http://127.0.0.1:{port}"
    assert (start["api"], start["console"], start["docs"], start["openapi"], start["metrics"]) == (
        f"{base}/v1", f"{base}/ui/", f"{base}/docs", f"{base}/openapi.json", f"{base}/metrics")
    assert start["parked"] == 1 and "1 saga(s) parked waiting for an operator" in start["msg"]
    access = [r for r in records if r["logger"] == "saga_journey.access"]
    assert any(r["path"] == "/healthz" and r["status"] == 200 and r["method"] == "GET" for r in access), access
