"""Request bodies in, response bodies out: JSON by default, msgpack on request.

Reading a body is bounded in size (413) and time (408) and never blocks the loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Iterable

import msgpack
from aiohttp import web

from saga_journey.runtime.values import RULE, inadmissible, readable

try:
    import orjson as _orjson
except ImportError:  # optional speed-up; the default install has it
    _orjson = None  # type: ignore[assignment]

from .problems import Problem

JSON = "application/json"
MSGPACK = "application/msgpack"
_MSGPACK_TYPES = frozenset({MSGPACK, "application/x-msgpack", "application/vnd.msgpack"})
log = logging.getLogger("saga_journey.http")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _reject_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack extension type {code} is not accepted; {RULE}")


def _check_body(value: Any) -> None:
    """The door: a body holding any inadmissible value is refused whole (400), before any use."""
    why = inadmissible(value, "body")
    if why is not None:
        raise Problem(400, "malformed_body", f"{why}; {RULE}")


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
            value = msgpack.unpackb(raw, raw=False, strict_map_key=True, ext_hook=_reject_ext)
        except Exception as exc:  # msgpack raises several unrelated types on bad input
            raise Problem(400, "malformed_body", f"body is not valid msgpack: {exc}") from None
    else:
        try:
            value = json.loads(raw, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise Problem(400, "malformed_body", f"body is not valid JSON: {exc}") from None
    _check_body(value)
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
    as_msgpack = wants_msgpack(request)
    try:
        body = _encode(data, as_msgpack)
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        # Only data stored before values were checked at the door can get here: render what is
        # readable and mark the rest, so one bad value never makes a reply (or a list) fail.
        log.warning("reply to %s %s holds a value it cannot encode (%s); rendering it marked",
                    request.method, request.path, exc)
        body = _encode(readable(data), as_msgpack)
    return web.Response(status=status, body=body, content_type=MSGPACK if as_msgpack else JSON, headers=headers)


def _encode(data: Any, as_msgpack: bool) -> bytes:
    if as_msgpack:
        return msgpack.packb(data, use_bin_type=True, strict_types=False, datetime=False)
    return dumps(data)


def dumps(data: Any) -> bytes:
    """JSON bytes: orjson (~10x json.dumps on a status view) where installed, else json.

    orjson refuses what json.dumps(allow_nan=False) refuses except non-finite floats (it writes
    null): those are checked first, so both paths refuse (and mark) the same values."""
    if _orjson is not None:
        try:
            out = _orjson.dumps(data)
        except TypeError:  # a non-str key, an integer past 64 bits, an unknown type ...
            pass
        else:
            if b"null" not in out or not _has_non_finite(data):
                return out
    return json.dumps(data, allow_nan=False).encode("ascii")


def _has_non_finite(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` holds a NaN or infinity (which orjson would render as null).

    Exact-type loops first (a status view is ~30 scalars): strings, ints, bools and None are
    skipped without a call; everything else takes the general path."""
    kind = type(value)
    if kind is float or isinstance(value, float):
        return value != value or value in (_INF, -_INF)
    if depth > 64:
        return True  # let json.dumps decide (it raises RecursionError when too deep)
    if kind is dict or isinstance(value, dict):
        children: Any = value.values()
    elif kind is list or kind is tuple or isinstance(value, (list, tuple)):
        children = value
    else:
        return False
    for child in children:
        t = type(child)
        if t is float:
            if child != child or child in (_INF, -_INF):
                return True
        elif depth >= 64 or not (t is str or t is int or t is bool or child is None):
            if _has_non_finite(child, depth + 1):
                return True
    return False


_INF = float("inf")
