"""Structured logs: saga events as log records, and the formatters ``serve`` installs.

The library only creates loggers under ``saga_journey.*`` and never installs a handler on
import; ``configure_logging`` (called by the CLI) does, on the root logger. Structured fields
travel as ``extra`` attributes of each record (saga_id, tenant_id, journey_type, milestone_id,
attempt, error, ...): the JSON formatter writes them as keys, the text formatter as
``key=value`` after the message.

``LoggingObserver`` is a ``RuntimeObserver``: composed with the metrics observer
(``observer.Observers``), it logs a WARNING for each failed compensation attempt and each park,
INFO when a rollback starts and ends, DEBUG for every other transition.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TextIO

from .model import COMP_FAILED, FAILED, CompensationAttemptFailed, CompensationExhausted, Event, SagaState
from .observer import RuntimeObserver

if TYPE_CHECKING:
    from .orchestrator import SagaOrchestrator

log = logging.getLogger("saga_journey.saga")
_recovery_log = logging.getLogger("saga_journey.recovery")

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("text", "json")
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields a record carries (its ``extra``)."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, then the record's structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _iso(record.created), "level": record.levelname, "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in fields_of(record).items():
            out.setdefault(key, value)
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``ts LEVEL logger: msg key=value ...`` for people."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        # fields the message already shows are not repeated
        extra = " ".join(
            f"{k}={v}" for k, v in fields_of(record).items() if v is not None and str(v) not in msg
        )
        line = f"{_iso(record.created)} {record.levelname:<7} {record.name}: {msg}"
        if extra:
            line += f"  [{extra}]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: str = "INFO", fmt: str = "text", stream: TextIO | None = None) -> logging.Handler:
    """Send every log record at ``level`` or above to ``stream`` (stderr) in ``fmt``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_saga_journey", False)]:
        root.removeHandler(old)
    handler._saga_journey = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler


def _saga_fields(state: SagaState, **more: Any) -> dict[str, Any]:
    return {"saga_id": state.saga_id, "tenant_id": state.tenant_id,
            "journey_type": state.journey_type, "journey_id": state.journey_id, **more}


class LoggingObserver(RuntimeObserver):
    """Saga transitions as log records (hooks never raise)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or log

    def on_transition(self, state: SagaState, event: Event) -> None:
        try:
            self._transition(state, event)
        except Exception:  # noqa: BLE001 - logging must never break the runtime
            pass

    def _transition(self, state: SagaState, event: Event) -> None:
        kind, lg = event.kind, self.log
        milestone = getattr(event, "milestone_id", None)
        base = _saga_fields(state, event=kind, milestone_id=milestone)
        if isinstance(event, (CompensationAttemptFailed, CompensationExhausted)):
            retry = getattr(event, "retry_at", None)
            then = f"retry in {max(0.0, retry - event.at):.3g}s" if retry is not None else "no retry left"
            lg.warning(
                "saga %s: compensation of %s failed (attempt %d, %s): %s",
                state.saga_id, milestone, event.attempt, then, event.error,
                extra={**base, "attempt": event.attempt, "error": event.error},
            )
        if state.status == FAILED and state.compensation_status == COMP_FAILED and kind in (
            "compensation_exhausted", "compensation_parked", "saga_faulted"
        ):
            reason = state.parked_reason or state.compensation_error
            parked_at = state.pending_compensations[0] if state.pending_compensations else milestone
            lg.warning(
                "saga %s parked at %s, waiting for an operator: %s", state.saga_id, parked_at, reason,
                extra={**base, "milestone_id": parked_at, "reason": reason,
                       "error": state.compensation_error},
            )
        elif kind in ("milestone_failed", "saga_aborted"):
            reason = getattr(event, "reason", None)
            lg.info("saga %s: %s (%s); compensating %s", state.saga_id, kind, reason,
                    list(state.pending_compensations), extra={**base, "reason": reason})
        elif state.is_terminal and kind != "saga_faulted":
            lg.info("saga %s finished %s (compensation %s)", state.saga_id, state.status,
                    state.compensation_status, extra={**base, "status": state.status,
                                                      "compensation_status": state.compensation_status})
        elif lg.isEnabledFor(logging.DEBUG):
            lg.debug("saga %s: %s -> %s", state.saga_id, kind, state.status,
                     extra={**base, "status": state.status, "version": state.version})

    def on_internal_error(self, journey_type: str) -> None:
        pass  # the actor logs the exception itself; the park is logged by on_transition


def warn_missing_handlers(orch: SagaOrchestrator) -> dict[str, list[str]]:
    """One WARNING per compensation handler that sagas being recovered need but nobody registered.

    Returns ``{handler: [saga ids]}``. Their attempts fail (and are retried, then park) until the
    handler is registered or an operator skips the step.
    """
    from saga_journey.persistence.keys import scoped_key  # a leaf module

    missing: dict[str, list[str]] = {}
    try:
        for key in orch.store.sagas_with_work_owed():
            snap = orch.store.load_saga(key)
            if not snap or not snap.get("pending_compensations"):
                continue
            journey = orch.journeys.load(
                scoped_key(snap["tenant_id"], snap["journey_id"]), int(snap["journey_version"])
            )
            for milestone in snap["pending_compensations"]:
                handler = journey.milestone(milestone).compensation_handler
                if handler and orch.handlers.get(handler) is None:
                    missing.setdefault(handler, []).append(snap["saga_id"])
    except Exception as exc:  # noqa: BLE001 - a diagnostic must not stop the start-up
        _recovery_log.warning("could not check the handlers of recovered sagas: %s", exc)
    for handler, sagas in sorted(missing.items()):
        shown = ", ".join(sagas[:5]) + (" ..." if len(sagas) > 5 else "")
        _recovery_log.warning(
            "compensation handler %r is not registered; %d saga(s) being recovered need it (%s): "
            "their attempts fail, are retried, then park", handler, len(sagas), shown,
            extra={"handler": handler, "sagas": len(sagas), "saga_ids": sagas[:20]},
        )
    return missing
