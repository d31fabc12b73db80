"""Journey design: built-in templates and validation of user-supplied definitions. Pure."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from typing import Any

from .errors import InvalidInputError
from .model import NO_RETRY, Journey, MilestoneDef, RetryPolicy

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")

# The seed quick reference's three patterns: milestone order and default handler names.
TEMPLATES: dict[str, tuple[tuple[str, str], ...]] = {
    "enterprise_migration": (
        ("upload_content", "delete_uploaded_content"),
        ("analyze_content", "revert_analysis"),
        ("transform_data", "revert_transformation"),
        ("validate_results", "revert_validation"),
    ),
    "order_processing": (
        ("create_order", "cancel_order"),
        ("process_payment", "refund_payment"),
        ("reserve_inventory", "release_inventory"),
        ("ship_product", "cancel_shipment"),
    ),
    "financial_transaction": (
        ("debit_account", "credit_account"),
        ("reserve_funds", "release_funds"),
        ("transfer_funds", "reverse_transfer"),
    ),
}

_RETRY_KEYS = {"max_attempts", "initial_delay_s", "backoff", "max_delay_s", "jitter", "handler_timeout_s"}
_MILESTONE_KEYS = {"id", "name", "compensation_handler", "timeout_s", "retry", "forward_retry"}
# Top-level requirements keys that steer the journey; any other key is the caller's domain data
# (kept with the journey), and "metadata" is the place for free-form data that may use any name.
POLICY_KEYS = frozenset(
    {"milestones", "retry", "forward_retry", "deadline_s", "compensation_deadline_s", "retention_s"}
)
REQUIREMENTS_KEYS = POLICY_KEYS | {"metadata"}


def check_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise InvalidInputError(
            f"{what} must be 1-128 characters of letters, digits, '_', '.', ':' or '-', "
            f"starting with a letter or digit; got {value!r}"
        )
    return value


def template_names() -> list[str]:
    return sorted(TEMPLATES)


def template_definitions() -> list[dict[str, Any]]:
    return [
        {
            "journey_type": name,
            "milestones": [m for m, _ in steps],
            "compensation_handlers": {m: h for m, h in steps},
        }
        for name, steps in sorted(TEMPLATES.items())
    ]


# Bounds of every user-supplied number of a policy: (minimum, maximum, minimum exclusive).
# Delays and timeouts stay well inside what clocks, timers and time_t can represent.
DAY_S = 86_400.0
YEAR_S = 366 * DAY_S
RETRY_BOUNDS: dict[str, tuple[float, float, bool]] = {
    "max_attempts": (1, 1000, False),
    "initial_delay_s": (0.0, DAY_S, False),
    "backoff": (1.0, 100.0, False),
    "max_delay_s": (0.0, DAY_S, False),
    "jitter": (0.0, 1.0, False),
    "handler_timeout_s": (0.0, DAY_S, True),
}
SECONDS_BOUNDS = (0.0, YEAR_S, True)
"""Milestone timeouts and saga/compensation deadlines: more than 0, at most a year."""
RETENTION_BOUNDS = (0.0, 100 * YEAR_S, True)
"""``requirements.retention_s`` (and the runtime's ``retention_s``): more than 0, at most 100 years."""


def _shown(value: Any) -> Any:
    """``value`` as it can appear in an error body (JSON has no NaN, inf or huge ints)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return repr(value)[:100]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, int) and abs(value) > 2**53:
        return repr(value)[:100]
    return value


def _within(value: Any, low: float, high: float, exclusive: bool, integer: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, float) and not (math.isfinite(value) and (not integer or value.is_integer())):
        return False
    # int/float comparisons are exact in Python: a huge int never converts (or overflows)
    return (low < value if exclusive else low <= value) and value <= high


def check_number(
    value: Any, where: str, bounds: tuple[float, float, bool], *, integer: bool = False
) -> float:
    """``value`` if it is a number within ``bounds``; else an error naming field, value, range."""
    low, high, exclusive = bounds
    kind = "an integer" if integer else "a number"
    expected = f"{kind} in {'(' if exclusive else '['}{low:g}, {high:g}]"
    if not _within(value, low, high, exclusive, integer):
        raise InvalidInputError(
            f"{where} must be {expected}; got {repr(value)[:100]}",
            field=where,
            value=_shown(value),
            minimum=low,
            maximum=high,
            exclusive_minimum=exclusive,
        )
    number: float = value  # _within: an int or a float in bounds
    return number


def parse_retry(raw: Any, where: str, default: RetryPolicy) -> RetryPolicy:
    """The policy object at field path ``where`` (None: ``default``), every number bounded."""
    if raw is None:
        return default
    if not isinstance(raw, Mapping):
        raise InvalidInputError(f"{where} must be an object with keys {sorted(_RETRY_KEYS)}")
    unknown = set(raw) - _RETRY_KEYS
    if unknown:
        raise InvalidInputError(f"{where} has unknown keys {sorted(unknown)}; allowed {sorted(_RETRY_KEYS)}")
    values = default.to_dict()
    for key, value in raw.items():
        if key == "handler_timeout_s" and value is None:
            values.pop(key, None)
            continue
        check_number(value, f"{where}.{key}", RETRY_BOUNDS[key], integer=key == "max_attempts")
        values[key] = value
    if "initial_delay_s" in raw and "max_delay_s" in raw and raw["initial_delay_s"] > raw["max_delay_s"]:
        # Both given and contradictory: most likely swapped; the caller must say which it meant.
        raise InvalidInputError(
            f"{where}.initial_delay_s ({raw['initial_delay_s']:g}) must not exceed "
            f"{where}.max_delay_s ({raw['max_delay_s']:g})",
            field=f"{where}.initial_delay_s",
            value=raw["initial_delay_s"],
            minimum=RETRY_BOUNDS["initial_delay_s"][0],
            maximum=raw["max_delay_s"],
        )
    values["max_attempts"] = int(values["max_attempts"])
    return RetryPolicy.from_dict(values)


def parse_seconds(value: Any, what: str) -> float | None:
    if value is None:
        return None
    return float(check_number(value, what, SECONDS_BOUNDS))


def _parse_milestone(
    raw: Any, index: int, default_retry: RetryPolicy, default_forward: RetryPolicy
) -> MilestoneDef:
    where = f"requirements.milestones[{index}]"
    if isinstance(raw, str):
        raw = {"id": raw}
    if not isinstance(raw, Mapping):
        raise InvalidInputError(f"{where} must be a milestone id or an object with an 'id'")
    unknown = set(raw) - _MILESTONE_KEYS
    if unknown:
        raise InvalidInputError(f"{where} has unknown keys {sorted(unknown)}; allowed {sorted(_MILESTONE_KEYS)}")
    mid = check_id(raw.get("id"), f"{where}.id")
    name = raw.get("name", mid)
    if not isinstance(name, str) or not 0 < len(name) <= 256:
        raise InvalidInputError(f"{where}.name must be a string of 1-256 characters")
    timeout = parse_seconds(raw.get("timeout_s"), f"{where}.timeout_s")
    handler = raw.get("compensation_handler")
    if handler is not None:
        check_id(handler, f"{where}.compensation_handler")
    return MilestoneDef(
        id=mid,
        name=name,
        compensation_handler=handler,
        timeout_s=timeout,
        retry=parse_retry(raw.get("retry"), f"{where}.retry", default_retry),
        forward_retry=parse_retry(raw.get("forward_retry"), f"{where}.forward_retry", default_forward),
    )


# Words that only a policy key would use: a top-level key holding one of them that is not a policy
# key is a typo (``deadline_sec``, ``max_retries``, ``milestone``), never domain data.
_POLICY_STEMS = ("milestone", "retr", "deadline", "timeout", "backoff", "attempt", "delay", "jitter",
                 "compensat", "handler", "retention")


def _looks_like_policy_key(key: str) -> str | None:
    """The policy key ``key`` was probably meant to be, or None if it reads as domain data."""
    close = difflib.get_close_matches(key, POLICY_KEYS, n=1, cutoff=0.7)
    if close:
        return close[0]
    folded = key.lower()
    if any(stem in folded for stem in _POLICY_STEMS):
        close = difflib.get_close_matches(key, POLICY_KEYS, n=1, cutoff=0.0)
        return close[0] if close else "?"
    return None


def _check_requirement_keys(requirements: Mapping[Any, Any]) -> None:
    """A top-level key is a policy key, ``metadata``, or the caller's domain data (the seed's
    ``{"source": ..., "target": ...}``). A key that reads like a mistyped policy key is refused,
    never stored: a typo (``deadline_sec``) must not silently do nothing."""
    bad = [k for k in requirements if not isinstance(k, str)]
    if bad:
        raise InvalidInputError("requirements keys must be strings")
    suspects = sorted(
        (k[:64], guess) for k in requirements
        if k not in REQUIREMENTS_KEYS and (guess := _looks_like_policy_key(k)) is not None
    )[:20]
    if suspects:
        unknown = [k for k, _ in suspects]
        hints = [f"{k!r} -> {g!r}" for k, g in suspects if g != "?"]
        raise InvalidInputError(
            f"requirements has unknown policy keys {unknown}"
            + (f" (did you mean {', '.join(hints)}?)" if hints else "")
            + f"; policy keys: {sorted(POLICY_KEYS)}; domain data may use any other key, or go under "
            "requirements.metadata",
            unknown=unknown,
            allowed=sorted(REQUIREMENTS_KEYS),
        )
    metadata = requirements.get("metadata")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise InvalidInputError("requirements.metadata must be an object (free-form data kept with the journey)")


def build_journey(
    *,
    journey_id: str,
    version: int,
    journey_type: str,
    tenant_id: str,
    requirements: Mapping[str, Any] | None,
    compensation_handlers: Mapping[str, Any] | None,
    created_at: float,
) -> Journey:
    """Validate a design request and return the journey it defines."""
    check_id(journey_type, "journey_type")
    requirements = dict(requirements or {})
    _check_requirement_keys(requirements)
    if not isinstance(compensation_handlers, (Mapping, type(None))):
        raise InvalidInputError("compensation_handlers must map milestone ids to handler names")
    default_retry = parse_retry(requirements.pop("retry", None), "requirements.retry", RetryPolicy())
    default_forward = parse_retry(
        requirements.pop("forward_retry", None), "requirements.forward_retry", NO_RETRY
    )
    deadline = parse_seconds(requirements.pop("deadline_s", None), "requirements.deadline_s")
    comp_deadline = parse_seconds(
        requirements.pop("compensation_deadline_s", None), "requirements.compensation_deadline_s"
    )
    retention = requirements.pop("retention_s", None)
    if retention is not None:
        retention = float(check_number(retention, "requirements.retention_s", RETENTION_BOUNDS))
    raw_milestones = requirements.pop("milestones", None)
    if raw_milestones is None:
        steps = TEMPLATES.get(journey_type)
        if steps is None:
            raise InvalidInputError(
                f"journey_type {journey_type!r} is not a built-in template, so "
                "requirements.milestones must list the milestones; templates: "
                f"{template_names()}",
                templates=template_names(),
            )
        milestones = [
            MilestoneDef(
                id=m, name=m, compensation_handler=h, retry=default_retry,
                forward_retry=default_forward,
            )
            for m, h in steps
        ]
    else:
        if not isinstance(raw_milestones, list) or not raw_milestones:
            raise InvalidInputError("requirements.milestones must be a non-empty list")
        if len(raw_milestones) > 1000:
            raise InvalidInputError("a journey has at most 1000 milestones")
        milestones = [
            _parse_milestone(r, i, default_retry, default_forward)
            for i, r in enumerate(raw_milestones)
        ]
    ids = [m.id for m in milestones]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise InvalidInputError(f"milestone ids must be unique; repeated: {dupes}")
    for mid, handler in (compensation_handlers or {}).items():
        if mid not in ids:
            raise InvalidInputError(
                f"compensation_handlers names milestone {mid!r}, which is not in the journey; "
                f"milestones: {ids}"
            )
        if handler is not None:
            check_id(handler, f"compensation_handlers[{mid!r}]")
        idx = ids.index(mid)
        m = milestones[idx]
        milestones[idx] = MilestoneDef(m.id, m.name, handler, m.timeout_s, m.retry, m.forward_retry)
    return Journey(
        journey_id=journey_id,
        version=version,
        journey_type=journey_type,
        tenant_id=tenant_id,
        milestones=tuple(milestones),
        requirements=requirements,
        created_at=created_at,
        deadline_s=deadline,
        compensation_deadline_s=comp_deadline,
        retention_s=retention,
    )
