"""Gateway settings and the TOML config file (``saga-journey serve --config saga.toml``).

The file has three optional parts: ``[gateway]`` limits and timeouts, ``[runtime]`` overrides of
``RuntimeConfig``, ``[[api_keys]]`` (hashed bearer tokens) and ``[webhooks.NAME]`` (compensation
handlers served over HTTP). Unknown keys are errors, so a typo never silently changes nothing.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any, Mapping

from saga_journey.runtime.config import RuntimeConfig
from saga_journey.runtime.errors import InvalidInputError
from saga_journey.runtime.journeys import RETENTION_BOUNDS, check_id, check_number

ROLES = ("read", "write", "admin")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One bearer token, stored only as the sha256 hex digest of the token."""

    sha256: str
    tenant_id: str
    user_id: str
    roles: frozenset[str]
    name: str = ""


@dataclass(frozen=True, slots=True)
class WebhookSpec:
    """A compensation handler served by an HTTP endpoint."""

    name: str
    url: str
    timeout_s: float = 10.0
    headers: Mapping[str, str] = field(default_factory=dict)
    retry_client_errors: bool = False
    """False: a 4xx other than 408/425/429 stops retrying (NonRetryableError). True: retry it too."""


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    max_body_bytes: int = 1024 * 1024
    max_in_flight: int = 2048
    """Requests being processed at once; past it the gateway answers 429 at once."""
    max_queued_per_saga: int = 64
    """Writes waiting on one saga at once; past it that saga's writes get 429."""
    header_timeout_s: float = 15.0
    """A connection must deliver complete request headers this soon after it opens or after its
    previous response (this also closes idle keep-alive connections)."""
    body_timeout_s: float = 10.0
    """The whole body must arrive this soon after the headers, or 408."""
    reply_timeout_s: float = 30.0
    """No reply from the runtime in this long: 503 (the request may still apply; retry with the
    same Idempotency-Key)."""
    retry_after_s: int = 1
    shutdown_timeout_s: float = 30.0
    insecure_dev: bool = False
    api_keys: tuple[ApiKey, ...] = ()
    webhooks: tuple[WebhookSpec, ...] = ()
    grafana_url: str | None = None
    """The Grafana dashboard the console's overview links to (``serve --grafana-url``)."""


def check_grafana_url(url: str) -> str:
    """An absolute http(s) URL (the console renders it as a link: no other scheme gets through)."""
    if not re.fullmatch(r"https?://[^\s\x00-\x1f]{1,2000}", url):
        raise InvalidInputError(f"--grafana-url {url[:80]!r}: expected an absolute http:// or https:// URL")
    return url


@dataclass(frozen=True, slots=True)
class ServeConfig:
    gateway: GatewaySettings
    runtime: RuntimeConfig


def _number(value: Any, where: str, *, integer: bool = False) -> Any:
    """A finite number > 0 (an integer when ``integer``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInputError(f"{where} must be a number")
    if integer and int(value) != value:
        raise InvalidInputError(f"{where} must be an integer")
    if value <= 0:
        raise InvalidInputError(f"{where} must be > 0")
    return int(value) if integer else float(value)


def _table(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise InvalidInputError(f"{where} must be a table")
    return raw


def _check_keys(raw: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(raw) - allowed
    if unknown:
        raise InvalidInputError(f"{where} has unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")


def parse_api_key(raw: Any, index: int) -> ApiKey:
    where = f"api_keys[{index}]"
    raw = _table(raw, where)
    _check_keys(raw, {"sha256", "tenant_id", "user_id", "roles", "name"}, where)
    digest = raw.get("sha256")
    if not isinstance(digest, str) or not _HEX64.match(digest.lower()):
        raise InvalidInputError(
            f"{where}.sha256 must be the 64-hex-digit sha256 of the token "
            "(make one with `saga-journey hash-key`)"
        )
    roles = raw.get("roles", ["read"])
    if not isinstance(roles, list) or not roles or any(r not in ROLES for r in roles):
        raise InvalidInputError(f"{where}.roles must be a non-empty list drawn from {list(ROLES)}")
    name = raw.get("name", "")
    if not isinstance(name, str):
        raise InvalidInputError(f"{where}.name must be a string")
    return ApiKey(
        sha256=digest.lower(),
        tenant_id=check_id(raw.get("tenant_id"), f"{where}.tenant_id"),
        user_id=check_id(raw.get("user_id"), f"{where}.user_id"),
        roles=frozenset(roles),
        name=name,
    )


def parse_webhook(name: str, raw: Any) -> WebhookSpec:
    where = f"webhooks.{name}"
    check_id(name, f"{where} (handler name)")
    raw = _table(raw, where)
    _check_keys(raw, {"url", "timeout_s", "headers", "retry_client_errors"}, where)
    url = raw.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise InvalidInputError(f"{where}.url must be an http:// or https:// URL")
    headers = _table(raw.get("headers", {}), f"{where}.headers")
    for key, value in headers.items():
        if not _HEADER_NAME.match(key) or not isinstance(value, str) or "\n" in value or "\r" in value:
            raise InvalidInputError(f"{where}.headers.{key} must be a valid header name with a string value")
    retry = raw.get("retry_client_errors", False)
    if not isinstance(retry, bool):
        raise InvalidInputError(f"{where}.retry_client_errors must be true or false")
    return WebhookSpec(
        name=name,
        url=url,
        timeout_s=_number(raw.get("timeout_s", 10.0), f"{where}.timeout_s"),
        headers=dict(headers),
        retry_client_errors=retry,
    )


_RUNTIME_SECONDS = {"retention_s": RETENTION_BOUNDS}
_GATEWAY_INT = {"max_body_bytes", "max_in_flight", "max_queued_per_saga", "retry_after_s"}
_GATEWAY_FLOAT = {"header_timeout_s", "body_timeout_s", "reply_timeout_s", "shutdown_timeout_s"}


def parse_config(raw: Mapping[str, Any], *, insecure_dev: bool = False) -> ServeConfig:
    _check_keys(raw, {"gateway", "runtime", "api_keys", "webhooks"}, "config")
    values: dict[str, Any] = {}
    gw = _table(raw.get("gateway", {}), "gateway")
    _check_keys(gw, _GATEWAY_INT | _GATEWAY_FLOAT, "gateway")
    for key, value in gw.items():
        values[key] = _number(value, f"gateway.{key}", integer=key in _GATEWAY_INT)
    rt = _table(raw.get("runtime", {}), "runtime")
    rt_fields = {f.name: f for f in dataclasses.fields(RuntimeConfig)}
    _check_keys(rt, set(rt_fields), "runtime")
    rt_values: dict[str, Any] = {}
    for key, value in rt.items():
        default = getattr(RuntimeConfig(), key)
        if key in _RUNTIME_SECONDS:  # optional durations (default None): a bounded number
            rt_values[key] = float(check_number(value, f"runtime.{key}", _RUNTIME_SECONDS[key]))
            continue
        if type(value) is not type(default) and not (isinstance(default, float) and type(value) is int):
            raise InvalidInputError(f"runtime.{key} must be a {type(default).__name__}")
        rt_values[key] = value
    keys = raw.get("api_keys", [])
    if not isinstance(keys, list):
        raise InvalidInputError("api_keys must be an array of tables ([[api_keys]])")
    api_keys = tuple(parse_api_key(k, i) for i, k in enumerate(keys))
    digests = [k.sha256 for k in api_keys]
    if len(set(digests)) != len(digests):
        raise InvalidInputError("api_keys: the same token hash is declared twice")
    hooks = _table(raw.get("webhooks", {}), "webhooks")
    webhooks = tuple(parse_webhook(name, spec) for name, spec in hooks.items())
    return ServeConfig(
        gateway=GatewaySettings(
            **values, insecure_dev=insecure_dev, api_keys=api_keys, webhooks=webhooks
        ),
        runtime=RuntimeConfig(**rt_values),
    )


def load_config(path: str | None, *, insecure_dev: bool = False) -> ServeConfig:
    """Read and validate the TOML file at ``path`` (None: all defaults)."""
    if path is None:
        return parse_config({}, insecure_dev=insecure_dev)
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except OSError as exc:
        raise InvalidInputError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInputError(f"config file {path} is not valid TOML: {exc}") from None
    return parse_config(raw, insecure_dev=insecure_dev)


def toml_string(value: str) -> str:
    """``value`` as a TOML basic string: quote, backslash and control characters escaped."""
    out = []
    for ch in value:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch < " " or ch == "\x7f":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def api_key_entry(digest: str, tenant_id: str, user_id: str, roles: list[str]) -> str:
    """The ``[[api_keys]]`` table for one key, checked by the same parser ``serve`` uses."""
    lines = [
        "[[api_keys]]",
        f"sha256 = {toml_string(digest)}",
        f"tenant_id = {toml_string(tenant_id)}",
        f"user_id = {toml_string(user_id)}",
        "roles = [" + ", ".join(toml_string(r) for r in roles) + "]",
    ]
    text = "\n".join(lines) + "\n"
    parse_config(tomllib.loads(text))  # raises InvalidInputError, naming the field, if serve would refuse it
    return text
