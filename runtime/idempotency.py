"""Idempotency keys: a request carrying one runs at most once per (tenant, key); a repeat
replays the stored response, the same key with another request is refused."""

from __future__ import annotations

import hashlib
import threading
from typing import Any, Callable

import msgpack

from saga_journey.persistence.keys import scoped_key

from .errors import IdempotencyKeyReusedError, InvalidInputError, RequestInFlightError
from .replies import Reply
from .values import check_value

Release = Callable[[Reply | None], None]  # frees an idempotency key once its request is answered
Submit = Callable[[tuple[str, str] | None, Release | None], Reply]


class IdempotencyGuard:
    """Keys in flight in this process, and the stored responses (``get_idempotency``)."""

    def __init__(self, get_idempotency: Callable[[str], dict[str, Any] | None]) -> None:
        self._get = get_idempotency
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()

    def run(self, tenant: str, key: str | None, request: list[Any], submit: Submit) -> Reply:
        """Run ``submit`` at most once per (tenant, key); repeats replay the stored response.

        The response is stored by the saga actor in the same commit as the transition, so a
        retry after a crash either finds it or finds nothing applied.
        """
        if key is None:
            return submit(None, None)
        if not isinstance(key, str) or not 0 < len(key) <= 255:
            raise InvalidInputError("idempotency key must be a string of 1-255 characters")
        check_value(key, "idempotency key")
        store_key = scoped_key(tenant, key)
        fingerprint = hashlib.sha256(msgpack.packb(request, use_bin_type=True)).hexdigest()
        with self._lock:
            if store_key in self._in_flight:
                raise RequestInFlightError(
                    f"a request with idempotency key {key!r} is still in progress; retry later"
                )
            record = self._get(store_key)
            if record is None:
                self._in_flight.add(store_key)
        if record is not None:
            if record.get("fingerprint") != fingerprint:
                raise IdempotencyKeyReusedError(
                    f"idempotency key {key!r} was already used for a different request"
                )
            return Reply.resolved({**record["response"], "replayed": True})

        def release(_: Reply | None = None) -> None:
            with self._lock:
                self._in_flight.discard(store_key)

        try:
            return submit((store_key, fingerprint), release)
        except BaseException:
            release()
            raise
