"""ISO 8601 UTC strings beside the epoch fields of status views and history entries."""

from __future__ import annotations

import datetime as _dt
from typing import Any

_VIEW_FIELDS = ("started_at", "updated_at")


def iso(at: Any) -> str | None:
    """``2026-01-01T00:00:00.000000Z`` for epoch seconds ``at``; None for a missing or odd value."""
    if isinstance(at, bool) or not isinstance(at, (int, float)):
        return None
    try:
        moment = _dt.datetime.fromtimestamp(at, tz=_dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def with_iso(view: dict[str, Any]) -> dict[str, Any]:
    """The status view with ``started_at_iso`` and ``updated_at_iso`` added (in place)."""
    for name in _VIEW_FIELDS:
        view[name + "_iso"] = iso(view.get(name))
    return view


def entry_with_iso(entry: dict[str, Any]) -> dict[str, Any]:
    """A history entry with ``at_iso`` added (in place)."""
    entry["at_iso"] = iso(entry.get("at"))
    return entry


def parse_time(value: str) -> float:
    """Epoch seconds from ``value``: a number of seconds, or ISO 8601 (no zone: UTC). ValueError if neither."""
    try:
        seconds = float(value)
    except ValueError:
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        moment = _dt.datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=_dt.timezone.utc)
        return moment.timestamp()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise ValueError(f"{value!r} is not a finite number of seconds")
    return seconds
