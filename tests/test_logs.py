"""Structured logs: a WARNING for each failed compensation attempt, each park and each handler
missing at recovery (caplog, real runtime on LMDB), and the formatters' shapes."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import threading

from saga_journey.runtime import ManualClock, SagaOrchestrator
from saga_journey.runtime.logs import JsonFormatter, LoggingObserver, TextFormatter, configure_logging
from saga_journey.runtime.observer import Observers, RuntimeObserver

UC = {"tenant_id": "acme", "user_id": "u1"}
WAIT = 20


class Transitions(RuntimeObserver):
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.kinds: list[str] = []

    def on_transition(self, state, event) -> None:
        with self.cond:
            self.kinds.append(event.kind)
            self.cond.notify_all()

    def wait_for(self, kind: str, n: int = 1) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.kinds.count(kind) >= n, WAIT)


def broken(ctx) -> None:
    raise ConnectionError("refund service down")


def noop(ctx) -> None:
    return None


def fail_at_inventory(orch, journey_id: str, saga_id: str) -> None:
    orch.execute_saga_journey_sync(journey_id, "u1", {}, UC, saga_id=saga_id)
    for m in ("create_order", "process_payment"):
        orch.advance_saga_step_sync(saga_id, None, "u1", {"status": "complete", "milestone_id": m}, UC)
    orch.advance_saga_step_sync(
        saga_id, None, "u1", {"status": "failed", "milestone_id": "reserve_inventory", "error": "out of stock"}, UC
    )


def saga_records(caplog, level=logging.WARNING):
    return [r for r in caplog.records if r.name.startswith("saga_journey.") and r.levelno == level]


def test_failed_attempts_and_the_park_are_warnings_with_fields(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="saga_journey")
    clock, seen = ManualClock(), Transitions()
    handlers = {"cancel_order": noop, "refund_payment": broken, "release_inventory": noop, "cancel_shipment": noop}
    with SagaOrchestrator.open(str(tmp_path / "d"), clock=clock, handlers=handlers,
                               observer=Observers(seen, LoggingObserver())) as orch:
        orch.design_saga_journey_sync(
            "order_processing", {"retry": {"max_attempts": 2, "initial_delay_s": 5}},
            user_context=UC, journey_id="orders",
        )
        fail_at_inventory(orch, "orders", "o-1")
        assert seen.wait_for("compensation_attempt_failed")
        clock.advance(5)
        assert seen.wait_for("compensation_exhausted")
    warnings = saga_records(caplog)
    attempts = [r for r in warnings if r.event in ("compensation_attempt_failed", "compensation_exhausted")
                and "failed (attempt" in r.getMessage()]
    assert [(r.saga_id, r.milestone_id, r.attempt) for r in attempts] == [
        ("o-1", "process_payment", 1), ("o-1", "process_payment", 2)]
    assert all("refund service down" in r.error and r.tenant_id == "acme" for r in attempts)
    assert "retry in 5s" in attempts[0].getMessage() and "no retry left" in attempts[1].getMessage()
    parks = [r for r in warnings if "parked at" in r.getMessage()]
    assert len(parks) == 1
    park = parks[0]
    assert (park.saga_id, park.milestone_id, park.journey_type) == ("o-1", "process_payment", "order_processing")
    assert "retry budget spent" in park.reason and "refund service down" in park.error
    info = [r.getMessage() for r in saga_records(caplog, logging.INFO)]
    assert any("o-1: milestone_failed (out of stock)" in m for m in info)


def test_a_handler_missing_at_recovery_is_a_warning(tmp_path, caplog) -> None:
    clock, seen = ManualClock(), Transitions()
    data = str(tmp_path / "d")
    everything = {"cancel_order": noop, "refund_payment": broken, "release_inventory": noop, "cancel_shipment": noop}
    with SagaOrchestrator.open(data, clock=clock, observer=seen, handlers=everything) as orch:
        orch.design_saga_journey_sync(
            "order_processing", {"retry": {"max_attempts": 3, "initial_delay_s": 3600}},
            user_context=UC, journey_id="orders",
        )
        fail_at_inventory(orch, "orders", "o-2")
        assert seen.wait_for("compensation_attempt_failed")  # retried in an hour: still owed
    caplog.set_level(logging.INFO, logger="saga_journey")
    with SagaOrchestrator.open(data, clock=clock, handlers={"cancel_order": noop}):
        pass
    missing = [r for r in saga_records(caplog) if r.name == "saga_journey.recovery"]
    assert [r.handler for r in missing] == ["refund_payment"]
    assert missing[0].saga_ids == ["o-2"] and "not registered" in missing[0].getMessage()


def test_json_lines_carry_ts_level_logger_msg_and_fields() -> None:
    record = logging.LogRecord("saga_journey.saga", logging.WARNING, __file__, 1, "saga %s parked", ("o-1",), None)
    record.saga_id, record.attempt = "o-1", 3
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "WARNING" and line["logger"] == "saga_journey.saga"
    assert line["msg"] == "saga o-1 parked" and line["saga_id"] == "o-1" and line["attempt"] == 3
    assert line["ts"].endswith("Z")
    text = TextFormatter().format(record)
    assert "WARNING" in text and "saga o-1 parked" in text and "attempt=3" in text
    assert "saga_id=" not in text  # the message shows it already


def test_configure_logging_replaces_its_own_handler_only() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    try:
        first = configure_logging("DEBUG", "json", io.StringIO())
        stream = io.StringIO()
        second = configure_logging("WARNING", "json", stream)
        assert first not in root.handlers and second in root.handlers
        logging.getLogger("saga_journey.test").warning("hello", extra={"saga_id": "s"})
        assert json.loads(stream.getvalue().splitlines()[-1])["saga_id"] == "s"
    finally:
        root.handlers[:] = before
        root.setLevel(level)


def test_importing_the_library_installs_no_handler() -> None:
    code = (
        "import logging, saga_journey.runtime.orchestrator, saga_journey.http.server, saga_journey.runtime.logs\n"
        "assert not logging.getLogger().handlers, logging.getLogger().handlers\n"
        "assert not logging.getLogger('saga_journey').handlers\nprint('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr
