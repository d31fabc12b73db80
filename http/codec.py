"""Request bodies in, response bodies out: JSON by default, msgpack on request.

Reading a body is bounded in size (413) and time (408) and never blocks the loop.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Iterable

import msgpack
from aiohttp import web

try:
    import orjson as _orjson
except ImportError:  # optional speed-up; the default install has it
    _orjson = None  # type: ignore[assignment]

from .problems import Problem

JSON = "application/json"
MSGPACK = "application/msgpack"
_MSGPACK_TYPES = frozenset({MSGPACK, "application/x-msgpack", "application/vnd.msgpack"})
_MAX_DEPTH = 64


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _check_value(value: Any, level: int = 0) -> None:
    """JSON-like data only: bounded depth, finite floats, string keys, no raw bytes."""
    if level > _MAX_DEPTH:
        raise Problem(400, "malformed_body", f"body nests deeper than {_MAX_DEPTH} levels")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise Problem(400, "malformed_body", "object keys must be strings")
            _check_value(v, level + 1)
    elif isinstance(value, list):
        for v in value:
            _check_value(v, level + 1)
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise Problem(400, "malformed_body", "numbers must be finite")
    elif isinstance(value, (bytes, bytearray)):
        raise Problem(400, "malformed_body", "binary values are not accepted; send strings")


async def read_body(request: web.Request, max_bytes: int, timeout_s: float) -> Any:
    """The decoded body, or None when there is none."""
    length = request.content_length
    if length is not None and length > max_bytes:
        raise Problem(
            413,
            "body_too_large",
            f"request body is {length} bytes; the limit is {max_bytes}",
            close=True,
            limit=max_bytes,
        )
    if not request.body_exists:
        return None
    ctype = request.content_type  # aiohttp: lower-cased, without parameters
    if ctype not in (JSON, "application/octet-stream") and ctype not in _MSGPACK_TYPES and not ctype.endswith("+json"):
        raise Problem(
            415,
            "unsupported_media_type",
            f"content type {ctype!r} is not supported; send {JSON} or {MSGPACK}",
            close=True,
        )
    try:
        if request.content.is_eof():  # the whole body came with the headers: nothing to wait for
            raw = await _read_limited(request, max_bytes)
        else:
            async with asyncio.timeout(timeout_s):
                raw = await _read_limited(request, max_bytes)
    except TimeoutError:
        raise Problem(
            408, "body_timeout", f"the request body did not arrive within {timeout_s:g}s", close=True
        ) from None
    if not raw:
        return None
    if ctype in _MSGPACK_TYPES:
        try:
            value = msgpack.unpackb(raw, raw=False, strict_map_key=True)
        except Exception as exc:  # msgpack raises several unrelated types on bad input
            raise Problem(400, "malformed_body", f"body is not valid msgpack: {exc}") from None
    else:
        try:
            value = json.loads(raw, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise Problem(400, "malformed_body", f"body is not valid JSON: {exc}") from None
    _check_value(value)
    return value


async def _read_limited(request: web.Request, max_bytes: int) -> bytes:
    chunks = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > max_bytes:
            raise Problem(
                413, "body_too_large", f"request body exceeds the limit of {max_bytes} bytes",
                close=True, limit=max_bytes,
            )
        chunks.append(chunk)
    return b"".join(chunks)


def fields(
    body: Any,
    *,
    required: Iterable[str] = (),
    optional: Iterable[str] = (),
) -> dict[str, Any]:
    """Check a body is an object with exactly the allowed keys; unknown keys are an error (422)."""
    required = tuple(required)
    allowed = set(required) | set(optional)
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise Problem(422, "invalid_input", f"body must be an object, got {type(body).__name__}")
    unknown = sorted(str(k) for k in body if k not in allowed)
    if unknown:
        raise Problem(
            422, "invalid_input", f"unknown fields {unknown}; allowed: {sorted(allowed)}",
            unknown=unknown,
        )
    missing = [k for k in required if k not in body]
    if missing:
        raise Problem(422, "invalid_input", f"missing required fields {missing}", missing=missing)
    return body


def wants_msgpack(request: web.Request) -> bool:
    accept = request.headers.get("Accept")
    return accept is not None and "msgpack" in accept


def render(request: web.Request, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    if wants_msgpack(request):
        return web.Response(
            status=status, body=msgpack.packb(data, use_bin_type=True), content_type=MSGPACK, headers=headers
        )
    return web.Response(status=status, body=dumps(data), content_type=JSON, headers=headers)


def dumps(data: Any) -> bytes:
    """JSON bytes: orjson (~10x json.dumps on a status view) where installed and able, else json."""
    if _orjson is not None:
        try:
            return _orjson.dumps(data, option=_orjson.OPT_NON_STR_KEYS)
        except TypeError:  # e.g. an integer past 64 bits: json.dumps renders what it always did
            pass
    return json.dumps(data).encode("ascii")
