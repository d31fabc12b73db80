"""Slow clients cannot hold the gateway: raw sockets trickling headers or bodies."""

from __future__ import annotations

import asyncio

from .conftest import TOKENS  # noqa: F401  (keys are configured by the fixture)


async def _read_all(reader: asyncio.StreamReader, timeout: float) -> bytes:
    return await asyncio.wait_for(reader.read(), timeout)


async def test_slow_body_gets_408_and_close(make_client):
    client = await make_client(body_timeout_s=0.3)
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(
        b"POST /v1/journeys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer acme-admin\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"journey_type\""
    )
    await writer.drain()
    data = await _read_all(reader, 10)  # the server answers and closes: read() hits EOF
    assert data.startswith(b"HTTP/1.1 408"), data[:200]
    assert b"body_timeout" in data
    writer.close()


async def test_slow_headers_connection_is_closed(make_client):
    client = await make_client(header_timeout_s=0.3)
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # headers never finish
    await writer.drain()
    data = await _read_all(reader, 10)
    assert data == b""  # closed without a response
    writer.close()
    # a connection that sends nothing at all is closed too
    reader, writer = await asyncio.open_connection(client.host, client.port)
    assert await _read_all(reader, 10) == b""
    writer.close()
    # well-behaved clients are unaffected
    assert (await client.get("/healthz")).status == 200
