"""The read side of ``SagaOrchestrator``: status, history, listings, journeys, and the wait
for a saga to finish (or pass a version). Reads see committed state only."""

from __future__ import annotations

import asyncio
import math
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from saga_journey.actors.directory import view_of
from saga_journey.persistence.keys import scoped_key
from saga_journey.persistence.ports import Queries
from saga_journey.persistence.query import ORDERS, Query

from .api_base import ApiBase
from .errors import CorruptRecordError, InvalidInputError, NotFoundError, SagaError
from .inputs import UserContext
from .isotime import entry_with_iso
from .journeys import check_id, template_definitions
from .model import SAGA_STATES

def find_views(
    store: Queries, query: Query, limit: int, after: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of status views for ``query`` and the next cursor: the one listing the gateway,
    the embedded API and the CLI's local ``--data-dir`` reads all share."""
    snaps, next_cursor = store.find_sagas(query, limit=limit, after=after)
    views = []
    for snap in snaps:
        try:
            views.append(view_of(snap, store))
        except CorruptRecordError:
            continue  # quarantined; one bad record must not hide the others
    return views, next_cursor


class QueryApi(ApiBase):
    """The reads of ``SagaOrchestrator`` (a mixin: its parts are built by the composition root)."""

    def get_journey_sync(
        self, journey_id: str, user_context: UserContext = None, *, version: int | None = None
    ) -> dict[str, Any]:
        return self.journeys.for_tenant(journey_id, self._tenant(user_context), version).to_dict()

    async def get_journey(
        self, journey_id: str, user_context: UserContext = None, *, version: int | None = None
    ) -> dict[str, Any]:
        return self.get_journey_sync(journey_id, user_context, version=version)

    def list_journeys_sync(self, user_context: UserContext = None) -> list[dict[str, Any]]:
        return self.store.list_journeys(self._tenant(user_context))

    async def list_journeys(self, user_context: UserContext = None) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.list_journeys_sync, user_context)

    @staticmethod
    def journey_templates() -> list[dict[str, Any]]:
        return template_definitions()

    # --- reads -------------------------------------------------------------------------

    def _snapshot(self, saga_id: str, user_context: UserContext) -> tuple[str, dict[str, Any]]:
        """(internal key, committed snapshot) of the caller's tenant's saga ``saga_id``."""
        self._check_open()
        tenant = self._tenant(user_context)
        check_id(saga_id, "saga_id")
        key = scoped_key(tenant, saga_id)
        snap = self.store.load_saga(key)
        if snap is None or snap.get("tenant_id") != tenant:
            raise NotFoundError(f"saga {saga_id} not found", saga_id=saga_id)
        return key, snap

    def get_saga_status_sync(self, saga_id: str, user_context: UserContext = None) -> dict[str, Any]:
        """The committed status of a saga (what every acknowledged write has produced)."""
        return view_of(self._snapshot(saga_id, user_context)[1], self.store)

    async def get_saga_status(self, saga_id: str, user_context: UserContext = None) -> dict[str, Any]:
        return self.get_saga_status_sync(saga_id, user_context)

    def get_saga_execution_history_sync(
        self, saga_id: str, user_context: UserContext = None, *, after_seq: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]:
        key, _ = self._snapshot(saga_id, user_context)
        return [entry_with_iso(e) for e in self.store.load_history(key, after_seq=after_seq, limit=limit)]

    async def get_saga_execution_history(
        self, saga_id: str, user_context: UserContext = None, *, after_seq: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            None,
            lambda: self.get_saga_execution_history_sync(
                saga_id, user_context, after_seq=after_seq, limit=limit
            ),
        )

    def list_sagas_sync(
        self,
        status: str | None = None,
        journey_type: str | None = None,
        user_context: UserContext = None,
        *,
        limit: int = 100,
        cursor: str | None = None,
        parked: bool | None = None,
        journey_id: str | None = None,
        user_id: str | None = None,
        updated_after: float | None = None,
        updated_before: float | None = None,
        order: str = "newest",
    ) -> dict[str, Any]:
        """A page of sagas by ``updated_at`` (``order``: "newest" first, or "oldest"), filtered:
        ``{"sagas": [...], "next_cursor"}``. ``updated_after`` is inclusive, ``updated_before``
        exclusive (epoch seconds). A cursor never repeats or skips a saga that did not change."""
        self._check_open()
        tenant = self._tenant(user_context)
        if status is not None and status not in SAGA_STATES:
            raise InvalidInputError(f"status must be one of {list(SAGA_STATES)}, got {status!r}")
        for name, value in (("journey_type", journey_type), ("journey_id", journey_id), ("user_id", user_id)):
            if value is not None:
                check_id(value, name)
        if parked is not None and not isinstance(parked, bool):
            raise InvalidInputError("parked must be true or false")
        for name, bound in (("updated_after", updated_after), ("updated_before", updated_before)):
            if bound is not None and (isinstance(bound, bool) or not isinstance(bound, (int, float))
                                      or not math.isfinite(bound)):
                raise InvalidInputError(f"{name} must be a finite number of epoch seconds")
        if order not in ORDERS:
            raise InvalidInputError(f"order must be one of {list(ORDERS)}, got {order!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidInputError("limit must be an integer from 1 to 1000")
        query = Query(tenant, status, parked, journey_type, journey_id, user_id,
                      updated_after, updated_before, order)
        views, next_cursor = find_views(self.store, query, limit, cursor)
        return {"sagas": views, "next_cursor": next_cursor}

    async def list_sagas(
        self,
        status: str | None = None,
        journey_type: str | None = None,
        user_context: UserContext = None,
        **filters: Any,
    ) -> dict[str, Any]:
        """Async twin of ``list_sagas_sync`` (same keyword filters)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            None, lambda: self.list_sagas_sync(status, journey_type, user_context, **filters)
        )

    def _submit_wait(
        self, saga_id: str, user_context: UserContext, version: int | None
    ) -> tuple[str, Future[dict[str, Any]]]:
        """(directory key, future of the awaited status); the future is done if already satisfied."""
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 0):
            raise InvalidInputError("version must be an integer >= 0")
        self._check_open()
        tenant = self._tenant(user_context)
        check_id(saga_id, "saga_id")
        key = scoped_key(tenant, saga_id)
        # Registered before the one read: a commit after the read answers the waiter, a commit
        # before it is in what the read returns; nothing is missed.
        fut = self._directory.add_waiter(key, version)
        try:
            snap = self.store.load_saga(key)
            if snap is None or snap.get("tenant_id") != tenant:
                raise NotFoundError(f"saga {saga_id} not found", saga_id=saga_id)
            view = view_of(snap, self.store)
        except BaseException:
            self._directory.drop_waiter(key, fut)
            raise
        if view["status"] in ("COMPLETED", "FAILED") or (
            version is not None and int(view.get("version", 0)) > version
        ):
            self._directory.drop_waiter(key, fut)
            done: Future[dict[str, Any]] = Future()
            done.set_result(view)
            return key, done
        return key, fut

    def _waited_out(
        self, saga_id: str, key: str, user_context: UserContext, fut: Future[dict[str, Any]],
        timeout: float, return_on_timeout: bool,
    ) -> dict[str, Any]:
        self._directory.drop_waiter(key, fut)
        if return_on_timeout:
            return self.get_saga_status_sync(saga_id, user_context)
        raise SagaError(f"saga {saga_id} did not finish within {timeout}s") from None

    def wait_for_saga_sync(
        self,
        saga_id: str,
        user_context: UserContext = None,
        *,
        timeout: float = 30.0,
        version: int | None = None,
        return_on_timeout: bool = False,
    ) -> dict[str, Any]:
        """Block until the saga is COMPLETED or FAILED, or (with ``version``) its version is
        greater than ``version``; return its status. At the timeout: raise SagaError, or with
        ``return_on_timeout`` return the status as it is then."""
        key, fut = self._submit_wait(saga_id, user_context, version)
        try:
            return fut.result(timeout=timeout)
        except FutureTimeout:
            return self._waited_out(saga_id, key, user_context, fut, timeout, return_on_timeout)

    async def wait_for_saga(
        self,
        saga_id: str,
        user_context: UserContext = None,
        *,
        timeout: float = 30.0,
        version: int | None = None,
        return_on_timeout: bool = False,
    ) -> dict[str, Any]:
        """Async twin of ``wait_for_saga_sync`` (a long-poll: it never blocks the loop)."""
        key, fut = self._submit_wait(saga_id, user_context, version)
        if fut.done():
            return fut.result()
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), timeout)
        except asyncio.TimeoutError:
            return self._waited_out(saga_id, key, user_context, fut, timeout, return_on_timeout)

