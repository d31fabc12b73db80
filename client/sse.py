"""Server-Sent Events framing (the WHATWG event-stream format), as a pure incremental parser."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class SagaEvent:
    """One event of ``/v1/events`` or ``/v1/sagas/{id}/events``: ``data`` is the decoded JSON."""

    id: str | None
    type: str
    data: Any

    @property
    def saga_id(self) -> str | None:
        return self.data.get("saga_id") if isinstance(self.data, dict) else None


@dataclass
class SseParser:
    """Feed lines (without their line break); complete events come back from ``feed``."""

    _data: list[str] = field(default_factory=list)
    _type: str = ""
    _id: str | None = None
    last_id: str | None = None  # the id to resume from (kept across events, as the spec says)

    def feed(self, line: str) -> tuple[str | None, str, str] | None:
        """(id, event type, data text) when ``line`` ends an event, else None."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: the keep-alive ": ping"
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._type = value
        elif name == "id" and "\0" not in value:
            self._id = value
        return None

    def _dispatch(self) -> tuple[str | None, str, str] | None:
        if self._id is not None:
            self.last_id = self._id
        data, kind = "\n".join(self._data), self._type or "message"
        had_data = bool(self._data)
        self._data, self._type, self._id = [], "", None
        return (self.last_id, kind, data) if had_data else None
