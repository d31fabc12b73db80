"""How the saga commands print for people: rich tables, a status card and a two-lane timeline.

``--json`` output does not come through here (the commands print JSON themselves).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

STATUS_STYLE = {"IN_PROGRESS": "cyan", "COMPENSATING": "yellow", "COMPLETED": "green", "FAILED": "red"}
FORWARD = frozenset({"saga_started", "milestone_completed", "milestone_attempt_failed",
                     "milestone_failed", "saga_aborted", "saga_faulted"})


def iso(ts: Any) -> str:
    if not isinstance(ts, (int, float)):
        return "-"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def age(ts: Any, now: float | None = None) -> str:
    """``3m ago`` style, for the list."""
    if not isinstance(ts, (int, float)):
        return "-"
    secs = max(0.0, (now if now is not None else time.time()) - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{int(secs // size)}{unit} ago"
    return f"{int(secs)}s ago"


def status_text(view: Mapping[str, Any]) -> Text:
    status = str(view.get("status"))
    label = f"{status} (parked)" if view.get("parked") else status
    return Text(label, style=("bold red" if view.get("parked") else STATUS_STYLE.get(status, "")))


def sagas_table(views: Iterable[Mapping[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("SAGA", "JOURNEY TYPE", "STATUS", "AT MILESTONE", "USER", "UPDATED", "V"):
        table.add_column(name, no_wrap=name != "AT MILESTONE")
    now = time.time()
    for v in views:
        where = v.get("failed_compensation") or v.get("current_milestone") or "-"
        table.add_row(str(v.get("saga_id")), str(v.get("journey_type")), status_text(v), str(where),
                      str(v.get("user_id")), age(v.get("updated_at"), now), str(v.get("version")))
    return table


def journeys_table(journeys: Iterable[Mapping[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("JOURNEY", "TYPE", "V", "MILESTONES", "CREATED"):
        table.add_column(name)
    for j in journeys:
        table.add_row(str(j.get("journey_id")), str(j.get("journey_type")), str(j.get("version")),
                      " > ".join(m.get("id", "?") for m in j.get("milestones", [])), iso(j.get("created_at")))
    return table


def _card(rows: list[tuple[str, Any]]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for key, value in rows:
        if value not in (None, "", [], {}):
            grid.add_row(key, value if isinstance(value, Text) else str(value))
    return grid


def saga_card(v: Mapping[str, Any]) -> Table:
    def names(key: str) -> str:
        return ", ".join(v.get(key) or []) or "-"

    failure = v.get("failure") or {}
    return _card([
        ("saga", v.get("saga_id")),
        ("journey", f"{v.get('journey_type')} {v.get('journey_id')} v{v.get('journey_version')}"),
        ("tenant / user", f"{v.get('tenant_id')} / {v.get('user_id')}"),
        ("status", status_text(v)),
        ("milestones", " > ".join(v.get("milestones") or [])),
        ("current milestone", v.get("current_milestone")),
        ("completed", names("completed_milestones")),
        ("failure", f"{failure.get('kind')} at {failure.get('milestone_id') or '-'}: {failure.get('reason')}"
         if failure else None),
        ("compensation", f"{v.get('compensation_status')}, {v.get('compensation_attempts')} attempt(s)"),
        ("compensated", names("compensated_milestones") if v.get("compensated_milestones") else None),
        ("pending", names("pending_compensations") if v.get("pending_compensations") else None),
        ("parked", f"at {v.get('failed_compensation')}: {v.get('parked_reason')}" if v.get("parked") else None),
        ("last error", v.get("last_compensation_error") or v.get("compensation_error")),
        ("done by hand", names("manually_compensated") if v.get("manually_compensated") else None),
        ("started", iso(v.get("started_at"))),
        ("updated", f"{iso(v.get('updated_at'))} (version {v.get('version')})"),
    ])


def _wait(e: Mapping[str, Any]) -> str:
    retry_at, at = e.get("retry_at"), e.get("at")
    if isinstance(retry_at, (int, float)) and isinstance(at, (int, float)):
        return f"; backoff {max(0.0, retry_at - at):.2f}s"
    return ""


def lane_text(e: Mapping[str, Any]) -> Text:
    """One history entry as the text of its lane (forward or compensation)."""
    kind, m = e.get("type") or e.get("event"), e.get("milestone_id") or ""
    ms = f" ({float(e['duration_s']) * 1000:.1f} ms)" if isinstance(e.get("duration_s"), (int, float)) else ""
    texts: dict[str, tuple[str, str]] = {
        "saga_started": (f"started: {len(e.get('milestone_ids') or [])} milestones", "cyan"),
        "milestone_completed": (f"done {m}", "green"),
        "milestone_attempt_failed": (f"attempt {e.get('attempt')} of {m} failed: {e.get('error')}{_wait(e)}", "yellow"),
        "milestone_failed": (f"FAILED {m}: {e.get('reason')}", "bold red"),
        "saga_aborted": (f"aborted by {e.get('by')}: {e.get('reason')}", "bold red"),
        "saga_faulted": (f"fault while {e.get('while_handling')}: {e.get('reason')}", "bold red"),
        "compensation_succeeded": (f"undone {m}, attempt {e.get('attempt')}{ms}", "green"),
        "compensation_attempt_failed": (f"attempt {e.get('attempt')} to undo {m} failed: {e.get('error')}{ms}{_wait(e)}", "yellow"),
        "compensation_exhausted": (f"gave up undoing {m} after {e.get('attempt')} attempt(s): {e.get('error')}", "bold red"),
        "compensation_parked": (f"PARKED at {m}: {e.get('reason')}", "bold red"),
        "compensation_retried": (f"retry of {m} by {e.get('by')}: {e.get('reason')}", "magenta"),
        "compensation_skipped": (f"skipped {m} by {e.get('by')}: {e.get('reason')}", "magenta"),
    }
    text, style = texts.get(str(kind), (f"{kind} {m}".strip(), ""))
    return Text(text, style=style)


def timeline(history: Iterable[Mapping[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False, title_justify="left")
    table.add_column("TIME (UTC)", no_wrap=True)
    table.add_column("#", justify="right")
    table.add_column("FORWARD")
    table.add_column("COMPENSATION")
    table.add_column("STATUS AFTER", no_wrap=True)
    for e in history:
        lane = lane_text(e)
        forward = (e.get("type") or e.get("event")) in FORWARD
        after = str(e.get("status_after") or e.get("status") or "")
        table.add_row(iso(e.get("at"))[11:], str(e.get("seq")), lane if forward else "",
                      "" if forward else lane, Text(after, style=STATUS_STYLE.get(after, "")))
    return table


def event_line(data: Mapping[str, Any]) -> Text:
    """One live event as one line: time, saga, what happened, status after."""
    line = Text(f"{iso(data.get('at'))}  {data.get('saga_id')}  #{data.get('seq')}  ")
    line.append_text(lane_text(data))
    after = str(data.get("status") or data.get("status_after") or "")
    line.append("  -> ")
    line.append(after, style=STATUS_STYLE.get(after, ""))
    return line


def console(stderr: bool = False) -> Console:
    """Colours on a terminal only; a pipe gets plain text 200 columns wide (or ``COLUMNS``)."""
    out = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = 200
    return out
