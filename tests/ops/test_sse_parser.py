"""The event-stream framing the client decodes (WHATWG server-sent events), line by line."""

from __future__ import annotations

from saga_journey.client.sse import SseParser


def feed(parser: SseParser, text: str) -> list[tuple[str | None, str, str]]:
    return [out for line in text.split("\n") if (out := parser.feed(line.removesuffix("\r"))) is not None]


def test_events_ids_comments_and_multiline_data() -> None:
    p = SseParser()
    stream = ": ping\n\nid: 1\nevent: saga_started\ndata: {\"a\":\ndata: 1}\n\n: ping\n\nevent: x\ndata:{}\n\n"
    assert feed(p, stream) == [("1", "saga_started", '{"a":\n1}'), ("1", "x", "{}")]  # the id carries over
    assert p.last_id == "1"


def test_crlf_lines_and_an_event_without_data_is_not_dispatched() -> None:
    p = SseParser(last_id="7")
    assert feed(p, "id: 8\r\nevent: nothing\r\n\r\nid: 9\r\ndata: {}\r\n\r\n") == [("9", "message", "{}")]
    assert p.last_id == "9"
