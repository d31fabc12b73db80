"""A small HTTP/1.1 client for the hop between workers: pooled keep-alive unix-socket
connections, one request at a time on each.

Why not aiohttp's client: measured on this machine class, it spends ~230 µs of CPU per request
over a unix socket, against ~35 µs for this (the hop runs on every forwarded request, on a worker
that is busy serving its own). The peer is always our own aiohttp server, so the subset of
HTTP/1.1 needed is small: a Content-Length or chunked body, keep-alive, ``Connection: close``.

An idle connection is dropped before the peer's keep-alive timeout could close it, so a request
is never written on a connection the peer is closing (which would leave unknown whether it ran):
a failure is reported, never retried.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

MAX_IDLE = 256  # idle connections kept per peer
IDLE_S = 5.0  # below the gateway's header (keep-alive) timeout, 15 s by default
MAX_HEADER_LINES = 100
MAX_BODY = 64 * 1024 * 1024

Headers = list[tuple[str, str]]


class HopProtocolError(Exception):
    """The peer's answer was not HTTP/1.1 this client reads (or the connection ended early)."""


class _Conn:
    __slots__ = ("reader", "writer", "idle_since")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    def close(self) -> None:
        self.writer.close()

    def rest(self) -> None:
        self.idle_since = time.monotonic()


class HopClient:
    """Requests to one peer at the unix socket ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._idle: deque[_Conn] = deque()
        self._closed = False

    async def _connection(self) -> _Conn:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()  # the most recently used first
            if now - conn.idle_since < IDLE_S and not conn.reader.at_eof():
                return conn
            conn.close()
        reader, writer = await asyncio.open_unix_connection(self.path, limit=1 << 20)
        return _Conn(reader, writer)

    def _release(self, conn: _Conn) -> None:
        if self._closed or len(self._idle) >= MAX_IDLE:
            conn.close()
            return
        conn.rest()
        self._idle.append(conn)

    async def request(self, method: str, target: str, headers: Headers, body: bytes | None,
                      *, connect_timeout_s: float, timeout_s: float) -> tuple[int, Headers, bytes]:
        """``method target`` with ``headers`` (without Host/Content-Length: added here) and
        ``body``; the status, headers and body of the answer. Raises OSError, TimeoutError or
        HopProtocolError when there is no (complete) answer."""
        conn = await asyncio.wait_for(self._connection(), connect_timeout_s)
        try:
            async with asyncio.timeout(timeout_s):
                head = [f"{method} {target} HTTP/1.1", "Host: worker"]
                head += [f"{k}: {v}" for k, v in headers]
                payload = body or b""
                if payload or method in ("POST", "PUT", "PATCH"):
                    head.append(f"Content-Length: {len(payload)}")
                conn.writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
                status, answer_headers, data, keep = await _read_answer(conn.reader, method)
        except BaseException:
            conn.close()
            raise
        if keep:
            self._release(conn)
        else:
            conn.close()
        return status, answer_headers, data

    async def close(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()


async def _read_answer(reader: asyncio.StreamReader, method: str) -> tuple[int, Headers, bytes, bool]:
    line = await reader.readline()
    if not line:
        raise HopProtocolError("the peer closed the connection without answering")
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise HopProtocolError(f"not an HTTP/1.1 status line: {line[:80]!r}")
    status = int(parts[1])
    headers: Headers = []
    length: int | None = None
    chunked = False
    keep = parts[0] == b"HTTP/1.1"
    for _ in range(MAX_HEADER_LINES):
        raw = await reader.readline()
        if raw in (b"\r\n", b"\n"):
            break
        if not raw:
            raise HopProtocolError("the connection ended inside the answer's headers")
        name, sep, value = raw.decode("latin-1").partition(":")
        if not sep:
            raise HopProtocolError(f"bad header line {raw[:80]!r}")
        name, value = name.strip(), value.strip()
        low = name.lower()
        if low == "content-length":
            length = int(value)
        elif low == "transfer-encoding":
            chunked = "chunked" in value.lower()
        elif low == "connection":
            keep = keep and "close" not in value.lower()
        headers.append((name, value))
    else:
        raise HopProtocolError("too many header lines in the answer")
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return status, headers, b"", keep
    if chunked:
        body = await _read_chunked(reader)
    elif length is not None:
        if length > MAX_BODY:
            raise HopProtocolError(f"answer body of {length} bytes is over {MAX_BODY}")
        body = await reader.readexactly(length)
    else:  # read to the end of the connection
        body = await reader.read(MAX_BODY)
        keep = False
    return status, headers, body, keep


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    out = bytearray()
    while True:
        size_line = await reader.readline()
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return bytes(out)
        if len(out) + size > MAX_BODY:
            raise HopProtocolError(f"chunked answer body is over {MAX_BODY} bytes")
        out += await reader.readexactly(size)
        await reader.readexactly(2)
