"""ISO 8601 UTC strings beside the epoch fields of status views and history entries."""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

_VIEW_FIELDS = ("started_at", "updated_at")


def _iso_slow(at: float) -> str | None:
    try:
        moment = _dt.datetime.fromtimestamp(at, tz=_dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_SECONDS: dict[int, str] = {}  # whole second -> "YYYY-MM-DDTHH:MM:SS" (strftime costs ~5-10 us)
_SECONDS_MAX = 4096


def iso(at: Any) -> str | None:
    """``2026-01-01T00:00:00.000000Z`` for epoch seconds ``at``; None for a missing or odd value.

    The same string as ``datetime.fromtimestamp(at, utc).strftime(...)``: microseconds are
    rounded half-even as CPython rounds them there, and each second's text is formatted once.
    """
    kind = type(at)
    if kind is not float and kind is not int:
        if isinstance(at, bool) or not isinstance(at, (int, float)):
            return None
        at = float(at)
    if not -1e11 < at < 1e11:  # outside datetime's years or not finite: the exact slow path
        return _iso_slow(at)
    frac, whole = math.modf(at)
    us = round(frac * 1e6)
    if us >= 1_000_000:
        us -= 1_000_000
        whole += 1.0
    elif us < 0:
        us += 1_000_000
        whole -= 1.0
    second = int(whole)
    text = _SECONDS.get(second)
    if text is None:
        try:
            text = _dt.datetime.fromtimestamp(second, tz=_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        except (OverflowError, OSError, ValueError):
            return None
        if len(_SECONDS) >= _SECONDS_MAX:
            _SECONDS.clear()
        _SECONDS[second] = text
    return f"{text}.{us:06d}Z"


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
