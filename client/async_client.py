"""``AsyncSagaClient``: the embedded API's names and return values, over the HTTP gateway.

Writes (every POST) carry an ``Idempotency-Key``, generated once per call, so a write retried
after a dropped connection, a 5xx or a 429 is the same request to the gateway and is applied
at most once. Retries are bounded (``retries``) with exponential backoff and jitter, and honour
``Retry-After``. Errors are the project's typed exceptions (``saga_journey.runtime.errors``),
mapped from the problem+json ``code``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp
from saga_journey.runtime.errors import ConnectionFailedError, SagaError

from .errors import error_from_problem
from .sse import SagaEvent, SseParser

DEFAULT_URL = "http://127.0.0.1:8080"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
TERMINAL = ("COMPLETED", "FAILED")
MAX_WAIT_S = 60.0  # the gateway's cap on one long-poll
_TRANSPORT_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError)

Params = list[tuple[str, str]]


def _params(**values: Any) -> Params:
    """Query pairs, None left out, booleans as true/false, iterables repeated."""
    out: Params = []
    for name, value in values.items():
        if value is None:
            continue
        items = value if isinstance(value, (list, tuple, set, frozenset)) else [value]
        for item in items:
            out.append((name, ("true" if item else "false") if isinstance(item, bool) else str(item)))
    return out


def _finished(status: Mapping[str, Any], version: int | None) -> bool:
    if version is not None:
        return int(status.get("version", 0)) > version or status.get("status") in TERMINAL
    return status.get("status") in TERMINAL


class AsyncSagaClient:
    """A client of one gateway. Use as ``async with AsyncSagaClient(url, token) as c:``.

    ``url``/``token`` default to ``SAGA_JOURNEY_URL``/``SAGA_JOURNEY_TOKEN`` (then
    http://127.0.0.1:8080, no token). ``retries``: attempts after the first, for any request.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout_s: float = 30.0,
        retries: int = 4,
        backoff_s: float = 0.2,
        max_backoff_s: float = 10.0,
        stream_idle_s: float = 45.0,
    ) -> None:
        self.url = (url or os.environ.get("SAGA_JOURNEY_URL") or DEFAULT_URL).rstrip("/")
        self.token = token if token is not None else os.environ.get("SAGA_JOURNEY_TOKEN")
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.stream_idle_s = stream_idle_s  # three missed keep-alives: the stream is dead
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AsyncSagaClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    def _headers(self, idempotency_key: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    def _backoff(self, attempt: int) -> float:
        base = min(self.max_backoff_s, self.backoff_s * (2 ** min(attempt, 30)))
        return base * (0.5 + random.random() / 2)

    def _retry_delay(self, resp: aiohttp.ClientResponse, payload: Any, attempt: int) -> float | None:
        """Seconds to wait before retrying this answer, or None: not retryable."""
        code = payload.get("code") if isinstance(payload, dict) else None
        if resp.status not in RETRY_STATUSES and code != "request_in_flight":
            return None
        after = resp.headers.get("Retry-After", "")
        if after.isdigit():
            return min(float(after), self.max_backoff_s)
        return self._backoff(attempt)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Params | None = None,
        idempotency_key: str | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        if method == "POST" and idempotency_key is None:
            idempotency_key = uuid.uuid4().hex  # one key for every attempt of this call
        headers = self._headers(idempotency_key)
        timeout = aiohttp.ClientTimeout(total=timeout_s or self.timeout_s)
        for attempt in range(self.retries + 1):
            try:
                async with self._http().request(
                    method, self.url + path, json=body, params=params, headers=headers, timeout=timeout
                ) as resp:
                    payload = await _payload(resp)
                    if resp.status < 400:
                        return payload
                    error: SagaError = error_from_problem(resp.status, payload)
                    delay = self._retry_delay(resp, payload, attempt)
            except _TRANSPORT_ERRORS as exc:
                error = ConnectionFailedError(
                    f"{method} {self.url}{path}: {type(exc).__name__}: {exc}".rstrip(": "), url=self.url
                )
                delay = self._backoff(attempt)
            if delay is None or attempt == self.retries:
                raise error
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    # --- journeys ------------------------------------------------------------------

    async def journey_templates(self) -> list[dict[str, Any]]:
        return (await self._request("GET", "/v1/journey-templates"))["templates"]

    async def design_saga_journey(
        self,
        journey_type: str,
        requirements: Mapping[str, Any] | None = None,
        compensation_handlers: Mapping[str, Any] | None = None,
        *,
        journey_id: str | None = None,
        allow_unregistered_handlers: bool = False,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"journey_type": journey_type}
        if requirements is not None:
            body["requirements"] = dict(requirements)
        if compensation_handlers is not None:
            body["compensation_handlers"] = dict(compensation_handlers)
        if journey_id is not None:
            body["journey_id"] = journey_id
        if allow_unregistered_handlers:
            body["allow_unregistered_handlers"] = True
        return await self._request("POST", "/v1/journeys", body=body, idempotency_key=idempotency_key)

    async def list_journeys(self) -> list[dict[str, Any]]:
        return (await self._request("GET", "/v1/journeys"))["journeys"]

    async def get_journey(self, journey_id: str, *, version: int | None = None) -> dict[str, Any]:
        return await self._request("GET", f"/v1/journeys/{quote(journey_id, safe='')}", params=_params(version=version))

    # --- sagas ---------------------------------------------------------------------

    async def execute_saga_journey(
        self,
        journey_id: str,
        user_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        *,
        saga_id: str | None = None,
        journey_version: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"journey_id": journey_id}
        for name, value in (("user_id", user_id), ("saga_id", saga_id), ("journey_version", journey_version)):
            if value is not None:
                body[name] = value
        if context is not None:
            body["context"] = dict(context)
        return await self._request("POST", "/v1/sagas", body=body, idempotency_key=idempotency_key)

    async def advance_saga_step(
        self,
        saga_id: str,
        journey_id: str | None = None,
        user_id: str | None = None,
        step_result: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """``user_id`` is accepted for symmetry with the embedded API; the credential decides."""
        body: dict[str, Any] = {"step_result": dict(step_result or {})}
        if journey_id is not None:
            body["journey_id"] = journey_id
        return await self._request("POST", _saga(saga_id, "/advance"), body=body, idempotency_key=idempotency_key)

    async def compensate_saga(
        self, saga_id: str, reason: str = "aborted by request", *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        return await self._request(
            "POST", _saga(saga_id, "/compensate"), body={"reason": reason}, idempotency_key=idempotency_key
        )

    async def retry_compensation(self, saga_id: str, reason: str) -> dict[str, Any]:
        return await self._request("POST", _saga(saga_id, "/retry-compensation"), body={"reason": reason})

    async def skip_compensation(self, saga_id: str, milestone_id: str, reason: str) -> dict[str, Any]:
        body = {"milestone_id": milestone_id, "reason": reason}
        return await self._request("POST", _saga(saga_id, "/skip-compensation"), body=body)

    # --- operations (admin role) ----------------------------------------------------

    async def backup(self, dest: str, *, timeout_s: float = 3600.0) -> dict[str, Any]:
        """A consistent compacted copy of the server's store in ``dest``, a folder on the server
        (absolute; absent or empty), written while it serves: ``{"dest", "bytes", "seconds"}``."""
        return await self._request("POST", "/v1/admin/backup", body={"dest": dest}, timeout_s=timeout_s)

    async def prune(self, older_than_s: float, *, limit: int = 500, dry_run: bool = False) -> dict[str, Any]:
        """One bounded round of pruning finished sagas older than ``older_than_s`` (store-wide);
        ``{"pruned", "records", "more", ...}``: call again while ``more``. ``dry_run``: only
        ``{"expired": n}``."""
        body: dict[str, Any] = {"older_than_s": older_than_s, "limit": limit}
        if dry_run:
            body = {"older_than_s": older_than_s, "dry_run": True}
        return await self._request("POST", "/v1/admin/prune", body=body)

    async def get_saga_status(self, saga_id: str) -> dict[str, Any]:
        return await self._request("GET", _saga(saga_id))

    async def get_saga_execution_history(
        self, saga_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]:
        params = _params(after_seq=after_seq or None, limit=limit)
        return (await self._request("GET", _saga(saga_id, "/history"), params=params))["events"]

    async def list_sagas(
        self,
        status: str | None = None,
        journey_type: str | None = None,
        *,
        parked: bool | None = None,
        journey_id: str | None = None,
        user_id: str | None = None,
        updated_after: float | str | None = None,
        updated_before: float | str | None = None,
        order: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """One page: ``{"sagas": [status views], "next_cursor": str | None}`` (newest first)."""
        params = _params(
            status=status, journey_type=journey_type, parked=parked, journey_id=journey_id,
            user_id=user_id, updated_after=updated_after, updated_before=updated_before,
            order=order, limit=limit, cursor=cursor,
        )
        return await self._request("GET", "/v1/sagas", params=params)

    async def iter_sagas(self, *, page_size: int = 100, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        """Every saga matching ``filters`` (those of ``list_sagas``), following the cursors."""
        cursor = None
        while True:
            page = await self.list_sagas(limit=page_size, cursor=cursor, **filters)
            for view in page["sagas"]:
                yield view
            cursor = page.get("next_cursor")
            if not cursor:
                return

    async def wait_for_saga(
        self,
        saga_id: str,
        *,
        version: int | None = None,
        timeout: float = 30.0,
        return_on_timeout: bool = False,
    ) -> dict[str, Any]:
        """Until the saga is COMPLETED or FAILED (or, with ``version``, past that version):
        long-polls of at most 60 s each (``GET /v1/sagas/{id}?wait=S&version=N``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            wait = min(max(deadline - loop.time(), 0.0), MAX_WAIT_S)
            status = await self._request(
                "GET", _saga(saga_id), params=_params(wait=f"{wait:.3f}", version=version),
                timeout_s=wait + self.timeout_s,
            )
            if _finished(status, version):
                return status
            if loop.time() >= deadline:
                if return_on_timeout:
                    return status
                raise SagaError(f"saga {saga_id} did not finish within {timeout}s", saga_id=saga_id)

    # --- live events ----------------------------------------------------------------

    def events(
        self,
        *,
        status: str | None = None,
        parked: bool | None = None,
        journey_type: str | None = None,
        journey_id: str | None = None,
        user_id: str | None = None,
        updated_after: float | str | None = None,
        updated_before: float | str | None = None,
        saga_ids: Iterable[str] = (),
        last_event_id: str | None = None,
        reconnect: bool = True,
    ) -> AsyncIterator[SagaEvent]:
        """Live transitions of the sagas matching the filters (``GET /v1/events``), from now or
        after ``last_event_id``; reconnects with ``Last-Event-ID`` so nothing is missed."""
        params = _params(
            status=status, parked=parked, journey_type=journey_type, journey_id=journey_id,
            user_id=user_id, updated_after=updated_after, updated_before=updated_before,
            saga_id=list(saga_ids) or None,
        )
        return self._stream("/v1/events", params, last_event_id, reconnect)

    def saga_events(
        self, saga_id: str, *, last_event_id: str | None = None, reconnect: bool = True
    ) -> AsyncIterator[SagaEvent]:
        """One saga's history (from seq 1, or after ``last_event_id``), then its live events."""
        return self._stream(_saga(saga_id, "/events"), [], last_event_id, reconnect)

    async def _stream(
        self, path: str, params: Params, last_id: str | None, reconnect: bool
    ) -> AsyncIterator[SagaEvent]:
        failures = 0
        timeout = aiohttp.ClientTimeout(total=None, connect=self.timeout_s, sock_read=self.stream_idle_s)
        while True:
            headers = self._headers()
            headers["Accept"] = "text/event-stream"
            if last_id is not None:
                headers["Last-Event-ID"] = last_id
            try:
                async with self._http().get(self.url + path, params=params, headers=headers, timeout=timeout) as resp:
                    if resp.status >= 400:
                        payload = await _payload(resp)
                        if self._retry_delay(resp, payload, failures) is None:
                            raise error_from_problem(resp.status, payload)
                    else:
                        async for event in _read_events(resp, last_id):
                            failures = 0
                            last_id = event.id
                            yield event
            except _TRANSPORT_ERRORS as exc:
                error = ConnectionFailedError(f"event stream {self.url}{path}: {type(exc).__name__}: {exc}")
            else:
                error = ConnectionFailedError(f"event stream {self.url}{path} ended")
            if not reconnect or failures >= self.retries:
                if not reconnect:
                    return
                raise error
            await asyncio.sleep(self._backoff(failures))
            failures += 1


def _saga(saga_id: str, tail: str = "") -> str:
    return f"/v1/sagas/{quote(saga_id, safe='')}{tail}"


async def _payload(resp: aiohttp.ClientResponse) -> Any:
    raw = await resp.read()
    if "json" in (resp.content_type or ""):
        try:
            return json.loads(raw)
        except ValueError:
            pass
    return raw.decode("utf-8", "replace")


async def _read_events(resp: aiohttp.ClientResponse, last_id: str | None) -> AsyncIterator[SagaEvent]:
    """Decode an event stream; lines of any length (a status view can be large)."""
    parser = SseParser(last_id=last_id)
    buffer = b""
    async for chunk in resp.content.iter_any():
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            done = parser.feed(raw.removesuffix(b"\r").decode("utf-8", "replace"))
            if done is not None:
                event_id, kind, data = done
                yield SagaEvent(event_id, kind, json.loads(data) if data else None)
