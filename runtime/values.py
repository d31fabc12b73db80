"""The one rule for values the API accepts: what is stored must read back through JSON and msgpack.

An *admissible value* is JSON-like data that both encodings carry losslessly: ``None``,
``bool``, integers from -2**63 to 2**63-1, finite floats, strings that are valid Unicode (no
lone surrogates, so UTF-8 can encode them), lists, and dicts with string keys, nested at most
``MAX_DEPTH`` levels. Everything else (bytes, msgpack ExtType/Timestamp, tuples, sets, non-string
keys, huge integers, NaN/Infinity, objects) is refused with ``InvalidInputError`` before anything
is stored. Pure: no I/O.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import InvalidInputError

MAX_DEPTH = 64
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
RULE = (
    "values must be JSON-like: null, true/false, integers from -2**63 to 2**63-1, finite "
    "numbers, valid Unicode strings, lists, and objects with string keys, at most "
    f"{MAX_DEPTH} levels deep"
)


def _problem(value: Any, path: str) -> str | None:
    """Why ``value`` (a leaf or container) is not admissible, or None when it is (shallowly)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        if value.isascii() or _encodable(value):
            return None
        return f"{path} is a string that is not valid Unicode (a lone surrogate)"
    if isinstance(value, int):
        if INT_MIN <= value <= INT_MAX:
            return None
        return f"{path} is an integer outside -2**63..2**63-1"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path} is not a finite number ({value!r})"
    if isinstance(value, (list, dict)):
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"{path} is binary data; send a string (e.g. base64)"
    return f"{path} has type {type(value).__name__}, which is not JSON-like"


def _show(value: Any) -> str:
    """A short printable form of any value (repr of a huge int raises ValueError)."""
    try:
        text = repr(value)
    except ValueError:
        return f"<{type(value).__name__}>"
    return text if len(text) <= 40 else text[:37] + "..."


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _plainly_ok(value: Any, depth: int) -> bool:
    """Fast path on exact types: True only if surely admissible (False: ask the full check)."""
    if depth > MAX_DEPTH:
        return False
    kind = type(value)
    if kind is str:
        return value.isascii() or _encodable(value)
    if kind is dict:
        for key, child in value.items():
            if type(key) is not str or not (key.isascii() or _encodable(key)) or not _plainly_ok(child, depth + 1):
                return False
        return True
    if kind is list:
        for child in value:
            if not _plainly_ok(child, depth + 1):
                return False
        return True
    if kind is int:
        in_range: bool = INT_MIN <= value <= INT_MAX
        return in_range
    if kind is float:
        return math.isfinite(value)
    return value is None or kind is bool


def inadmissible(value: Any, path: str = "value") -> str | None:
    """The first reason ``value`` is not admissible (with its path), or None when it is."""
    if _plainly_ok(value, 0):
        return None
    why = _first_problem(value, path)
    return why if why is None or len(why) <= 400 else "..." + why[-397:]


def _first_problem(value: Any, path: str) -> str | None:
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"{where} nests deeper than {MAX_DEPTH} levels"
        why = _problem(item, where)
        if why is not None:
            return why
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    return f"{where} has a key of type {type(key).__name__} ({_show(key)}); keys must be strings"
                why = _problem(key, f"{where} key {_show(key)}")
                if why is not None:
                    return why
                stack.append((child, f"{where}.{key[:40]}", depth + 1))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]", depth + 1) for i, child in enumerate(item))
    return None


def as_text(value: Any, limit: int = 2000) -> str:
    """``str(value)`` made admissible and short (for error texts we record); never raises."""
    try:
        text = str(value)
    except Exception:  # a user's __str__ may raise anything
        text = f"<{type(value).__name__} without printable text>"
    if not (text.isascii() or _encodable(text)):
        text = text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates -> "?"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_value(value: Any, what: str) -> Any:
    """``value`` itself if admissible; otherwise InvalidInputError saying where and why."""
    why = inadmissible(value, what)
    if why is not None:
        raise InvalidInputError(f"{why}; {RULE}", field=what)
    return value


def readable(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` in which every inadmissible part is replaced by a marker string.

    For rendering data stored before the rule existed: one bad value must not make a whole
    reply (or a whole list) unreadable.
    """
    if depth > MAX_DEPTH + 16:
        return "<value nested too deep>"
    if isinstance(value, dict):
        return {
            (k if isinstance(k, str) and _problem(k, "") is None else _show(k)): readable(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list) or type(value) is tuple:  # not namedtuples such as msgpack's ExtType
        return [readable(v, depth + 1) for v in value]
    if _problem(value, "") is None:
        return value
    return f"<unreadable {type(value).__name__} value>"


__all__ = ["INT_MAX", "INT_MIN", "MAX_DEPTH", "RULE", "as_text", "check_value", "inadmissible", "readable"]
