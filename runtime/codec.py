"""Plain-dict forms of saga state and events: for snapshots, history and API replies. Pure."""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Mapping
from typing import Any

from .model import CompletedMilestone, Event, Failure, SagaState


def state_to_dict(s: SagaState) -> dict[str, Any]:
    return {
        "saga_id": s.saga_id,
        "journey_id": s.journey_id,
        "journey_version": s.journey_version,
        "journey_type": s.journey_type,
        "tenant_id": s.tenant_id,
        "user_id": s.user_id,
        "context": dict(s.context),
        "milestone_ids": list(s.milestone_ids),
        "status": s.status,
        "completed": [[c.milestone_id, dict(c.result), c.at] for c in s.completed],
        "compensated": list(s.compensated),
        "pending_compensations": list(s.pending_compensations),
        "compensation_status": s.compensation_status,
        "compensation_attempts": s.compensation_attempts,
        "next_compensation_at": s.next_compensation_at,
        "compensation_error": s.compensation_error,
        "failure": _failure_to_dict(s.failure),
        "started_at": s.started_at,
        "updated_at": s.updated_at,
        "compensation_started_at": s.compensation_started_at,
        "version": s.version,
        "milestone_due_at": s.milestone_due_at,
        "deadline_at": s.deadline_at,
        "compensation_deadline_at": s.compensation_deadline_at,
        "forward_attempts": s.forward_attempts,
        "forward_retry_at": s.forward_retry_at,
        "manually_compensated": list(s.manually_compensated),
        "parked_reason": s.parked_reason,
        "last_compensation_error": s.last_compensation_error,
    }


def state_from_dict(d: Mapping[str, Any]) -> SagaState:
    f = d.get("failure")
    return SagaState(
        saga_id=d["saga_id"],
        journey_id=d["journey_id"],
        journey_version=int(d["journey_version"]),
        journey_type=d["journey_type"],
        tenant_id=d["tenant_id"],
        user_id=d["user_id"],
        context=d.get("context") or {},
        milestone_ids=tuple(d["milestone_ids"]),
        status=d["status"],
        completed=tuple(CompletedMilestone(m, r, at) for m, r, at in d["completed"]),
        compensated=tuple(d["compensated"]),
        pending_compensations=tuple(d["pending_compensations"]),
        compensation_status=d["compensation_status"],
        compensation_attempts=int(d["compensation_attempts"]),
        next_compensation_at=d.get("next_compensation_at"),
        compensation_error=d.get("compensation_error"),
        failure=(
            Failure(f["kind"], f.get("milestone_id"), f["reason"], f["at"], f.get("result"))
            if f
            else None
        ),
        started_at=d["started_at"],
        updated_at=d["updated_at"],
        compensation_started_at=d.get("compensation_started_at"),
        version=int(d["version"]),
        milestone_due_at=d.get("milestone_due_at"),
        deadline_at=d.get("deadline_at"),
        compensation_deadline_at=d.get("compensation_deadline_at"),
        forward_attempts=int(d.get("forward_attempts", 0)),
        forward_retry_at=d.get("forward_retry_at"),
        manually_compensated=tuple(d.get("manually_compensated", ())),
        parked_reason=d.get("parked_reason"),
        last_compensation_error=d.get("last_compensation_error"),
    )


def _failure_to_dict(f: Failure | None) -> dict[str, Any] | None:
    if f is None:
        return None
    return {
        "kind": f.kind,
        "milestone_id": f.milestone_id,
        "reason": f.reason,
        "at": f.at,
        "result": dict(f.result) if f.result is not None else None,
    }


_FIELDS: dict[type, tuple[tuple[str, ...], Any]] = {}
_SCALARS = frozenset({str, int, float, bool, type(None)})


def event_to_dict(event: Event, *, seq: int, status_after: str) -> dict[str, Any]:
    """A history entry: the event's fields plus its type, sequence number and resulting status."""
    d: dict[str, Any] = {"seq": seq, "type": event.kind}
    fields = _FIELDS.get(type(event))
    if fields is None:
        names = tuple(f.name for f in dataclasses.fields(event))
        fields = _FIELDS[type(event)] = (names, operator.attrgetter(*names) if len(names) > 1 else None)
    names, getter = fields
    values = getter(event) if getter is not None else tuple(getattr(event, n) for n in names)
    for name, value in zip(names, values):
        kind = type(value)
        if kind in _SCALARS:
            pass
        elif kind is tuple or isinstance(value, tuple):
            value = list(value)
        elif kind is dict or isinstance(value, Mapping):
            value = dict(value)
        d[name] = value
    d["status_after"] = status_after
    return d


def status_view(s: SagaState) -> dict[str, Any]:
    """The public status of a saga, as returned by ``get_saga_status``."""
    return {
        "saga_id": s.saga_id,
        "journey_id": s.journey_id,
        "journey_version": s.journey_version,
        "journey_type": s.journey_type,
        "tenant_id": s.tenant_id,
        "user_id": s.user_id,
        "status": s.status,
        "current_milestone": s.current_milestone,
        "milestones": list(s.milestone_ids),
        "completed_milestones": [c.milestone_id for c in s.completed],
        "compensated_milestones": list(s.compensated),
        "pending_compensations": list(s.pending_compensations),
        "compensation_status": s.compensation_status,
        "compensation_attempts": s.compensation_attempts,
        "compensation_error": s.compensation_error,
        "last_compensation_error": s.last_compensation_error,
        "parked": s.is_parked,
        "parked_reason": s.parked_reason,
        "failed_compensation": s.pending_compensations[0] if s.is_parked else None,
        "manually_compensated": list(s.manually_compensated),
        "failure": _failure_to_dict(s.failure),
        "milestone_attempts": s.forward_attempts,
        "milestone_retry_at": s.forward_retry_at,
        "milestone_due_at": s.milestone_due_at,
        "deadline_at": s.deadline_at,
        "compensation_deadline_at": s.compensation_deadline_at,
        "context": dict(s.context),
        "started_at": s.started_at,
        "updated_at": s.updated_at,
        "version": s.version,
    }
