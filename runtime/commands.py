"""The write path of ``SagaOrchestrator``: design, execute, advance, compensate and the
operator actions, each as an async method and a ``_sync`` twin.

Every write is checked here (nothing is written for a refused request), admitted
(``Requests``), made idempotent when it carries a key (``IdempotencyGuard``), then sent to the
saga's actor; its reply is settled after the commit.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from typing import Any, Callable

from saga_journey.actors.messages import Command
from saga_journey.persistence.keys import scoped_key

from .api_base import ApiBase
from .errors import HandlerMissingError, InvalidInputError
from .idempotency import Release
from .inputs import UserContext, check_packable, check_reason
from .journeys import check_id
from .model import AbortSaga, ReportStep, RetryCompensation, SkipCompensation, StartSaga
from .replies import Reply

def new_saga_id() -> str:
    """Time-ordered ids (ms timestamp, then 80 random bits): sagas started together share
    B-tree pages in LMDB, so a group commit dirties (and fsyncs) far fewer pages."""
    return f"saga_{time.time_ns() // 1_000_000:012x}{uuid.uuid4().hex[:20]}"


class CommandApi(ApiBase):
    """The writes of ``SagaOrchestrator`` (a mixin: its parts are built by the composition root)."""

    def _ask(self, saga_id: str, command: Command) -> Reply:
        self._check_open()
        check_id(saga_id, "saga_id")
        assert command.reply is not None and command.tenant_id is not None
        self._placement.check_owner(command.tenant_id, saga_id)
        key = scoped_key(command.tenant_id, saga_id)
        return self._requests.admitted(command.reply, lambda: self._directory.send(key, command))

    # --- design ------------------------------------------------------------------------

    def _submit_design(
        self,
        journey_type: str,
        requirements: Mapping[str, Any] | None,
        compensation_handlers: Mapping[str, Any] | None,
        user_context: UserContext,
        journey_id: str | None,
        allow_unregistered_handlers: bool,
        idempotency_key: str | None = None,
    ) -> Reply:
        self._check_open()
        self._placement.check_journey_writer()
        tenant = self._tenant(user_context)
        if requirements is not None and not isinstance(requirements, Mapping):
            raise InvalidInputError("requirements must be an object")
        check_packable(requirements, "requirements")
        check_packable(compensation_handlers, "compensation_handlers")
        request = [
            "design",
            journey_type,
            requirements,
            compensation_handlers,
            journey_id,
            bool(allow_unregistered_handlers),
        ]

        def submit(idem: tuple[str, str] | None, release: Release | None) -> Reply:
            try:
                return Reply.resolved(
                    self.journeys.design(
                        tenant, journey_type, requirements, compensation_handlers, journey_id,
                        allow_unregistered_handlers, idem,
                    )
                )
            finally:
                if release is not None:
                    release(None)

        return self._idem.run(tenant, idempotency_key, request, submit)

    async def design_saga_journey(
        self,
        journey_type: str,
        requirements: Mapping[str, Any] | None = None,
        compensation_handlers: Mapping[str, Any] | None = None,
        user_context: UserContext = None,
        *,
        journey_id: str | None = None,
        allow_unregistered_handlers: bool = False,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Design (or re-version, when ``journey_id`` exists) a journey and store it durably."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            None,
            lambda: self.design_saga_journey_sync(
                journey_type,
                requirements,
                compensation_handlers,
                user_context,
                journey_id=journey_id,
                allow_unregistered_handlers=allow_unregistered_handlers,
                idempotency_key=idempotency_key,
            ),
        )

    def design_saga_journey_sync(
        self,
        journey_type: str,
        requirements: Mapping[str, Any] | None = None,
        compensation_handlers: Mapping[str, Any] | None = None,
        user_context: UserContext = None,
        *,
        journey_id: str | None = None,
        allow_unregistered_handlers: bool = False,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        return self._submit_design(
            journey_type,
            requirements,
            compensation_handlers,
            user_context,
            journey_id,
            allow_unregistered_handlers,
            idempotency_key,
        ).result()


    # --- execute -----------------------------------------------------------------------

    def _submit_execute(
        self,
        journey_id: str,
        user_id: str,
        context: Mapping[str, Any] | None,
        user_context: UserContext,
        saga_id: str | None,
        journey_version: int | None,
        idempotency_key: str | None = None,
        is_async: bool = False,
    ) -> Reply:
        self._check_open()
        tenant = self._tenant(user_context)
        check_id(user_id, "user_id")
        if context is not None and not isinstance(context, Mapping):
            raise InvalidInputError("context must be an object")
        ctx = dict(context or {})
        check_packable(ctx, "context")
        journey = self.journeys.for_tenant(journey_id, tenant, journey_version)
        missing = self.handlers.missing(journey.handler_names())
        if missing:
            raise HandlerMissingError(
                f"journey {journey_id} v{journey.version} needs compensation handlers that are "
                f"not registered: {missing}",
                missing=missing,
            )
        if saga_id is not None:
            check_id(saga_id, "saga_id")
            self._placement.check_owner(tenant, saga_id)
        request = ["execute", journey_id, journey_version, user_id, ctx, saga_id]

        def submit(idem: tuple[str, str] | None, release: Release | None) -> Reply:
            sid = saga_id if saga_id is not None else self._placement.new_saga_id(tenant, idempotency_key, new_saga_id)
            reply = self._requests.new_reply(is_async, "execute", release)
            command = Command(
                build=lambda now: StartSaga(sid, journey, user_id, ctx, now),
                reply=reply,
                tenant_id=tenant,
                idempotency=idem,
            )
            key = scoped_key(tenant, sid)
            return self._requests.admitted(reply, lambda: self._directory.create(key, journey, command, fresh=saga_id is None))

        return self._idem.run(tenant, idempotency_key, request, submit)

    async def execute_saga_journey(
        self,
        journey_id: str,
        user_id: str,
        context: Mapping[str, Any] | None = None,
        user_context: UserContext = None,
        *,
        saga_id: str | None = None,
        journey_version: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Start a saga of the journey's latest version (or ``journey_version``); returns its status."""
        return await self._submit_execute(
            journey_id, user_id, context, user_context, saga_id, journey_version, idempotency_key,
            is_async=True,
        ).wait()

    def execute_saga_journey_sync(
        self,
        journey_id: str,
        user_id: str,
        context: Mapping[str, Any] | None = None,
        user_context: UserContext = None,
        *,
        saga_id: str | None = None,
        journey_version: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        return self._requests.wait(
            self._submit_execute(
                journey_id, user_id, context, user_context, saga_id, journey_version, idempotency_key
            )
        )

    # --- advance / compensate ----------------------------------------------------------

    def _submit_advance(
        self,
        saga_id: str,
        journey_id: str | None,
        user_id: str | None,
        step_result: Mapping[str, Any],
        user_context: UserContext,
        idempotency_key: str | None = None,
        is_async: bool = False,
    ) -> Reply:
        tenant = self._tenant(user_context)
        if journey_id is not None:
            check_id(journey_id, "journey_id")
        check_packable(step_result, "step_result")
        result = dict(step_result) if isinstance(step_result, Mapping) else step_result

        def submit(idem: tuple[str, str] | None, release: Release | None) -> Reply:
            command = Command(
                build=lambda now: ReportStep(result, now),
                reply=self._requests.new_reply(is_async, "advance", release),
                tenant_id=tenant,
                journey_id=journey_id,
                idempotency=idem,
            )
            return self._ask(saga_id, command)

        request = ["advance", saga_id, journey_id, result]
        return self._idem.run(tenant, idempotency_key, request, submit)

    async def advance_saga_step(
        self,
        saga_id: str,
        journey_id: str | None = None,
        user_id: str | None = None,
        step_result: Mapping[str, Any] | None = None,
        user_context: UserContext = None,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Report the current milestone's result: ``{"status": "complete" | "failed", ...}``.

        Name the milestone with ``step_result["milestone_id"]`` (or pass ``idempotency_key``)
        to make retries safe: an exact repeat of a recorded report is answered with
        ``replayed: True`` and applies nothing.
        """
        return await self._submit_advance(
            saga_id, journey_id, user_id, step_result or {}, user_context, idempotency_key,
            is_async=True,
        ).wait()

    def advance_saga_step_sync(
        self,
        saga_id: str,
        journey_id: str | None = None,
        user_id: str | None = None,
        step_result: Mapping[str, Any] | None = None,
        user_context: UserContext = None,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        return self._requests.wait(
            self._submit_advance(
                saga_id, journey_id, user_id, step_result or {}, user_context, idempotency_key
            )
        )

    def _submit_compensate(
        self,
        saga_id: str,
        reason: str,
        user_context: UserContext,
        idempotency_key: str | None = None,
        is_async: bool = False,
    ) -> Reply:
        tenant = self._tenant(user_context)
        if not isinstance(reason, str) or not reason:
            raise InvalidInputError("reason must be a non-empty string")
        check_packable(reason, "reason")
        by = self._actor(user_context)

        def submit(idem: tuple[str, str] | None, release: Release | None) -> Reply:
            command = Command(
                build=lambda now: AbortSaga(reason, by, now),
                reply=self._requests.new_reply(is_async, "compensate", release),
                tenant_id=tenant,
                idempotency=idem,
            )
            return self._ask(saga_id, command)

        request = ["compensate", saga_id, reason]
        return self._idem.run(tenant, idempotency_key, request, submit)

    async def compensate_saga(
        self,
        saga_id: str,
        reason: str = "aborted by request",
        user_context: UserContext = None,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Abort an IN_PROGRESS saga: its completed milestones are compensated in reverse order."""
        return await self._submit_compensate(
            saga_id, reason, user_context, idempotency_key, is_async=True
        ).wait()

    def compensate_saga_sync(
        self,
        saga_id: str,
        reason: str = "aborted by request",
        user_context: UserContext = None,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        return self._requests.wait(self._submit_compensate(saga_id, reason, user_context, idempotency_key))

    # --- operator actions on parked sagas ----------------------------------------------

    def _submit_operator(
        self, saga_id: str, user_context: UserContext, build: Callable[[str, float], Any], is_async: bool
    ) -> Reply:
        tenant = self._tenant(user_context)
        by = self._actor(user_context)
        command = Command(
            build=lambda now: build(by, now),
            reply=self._requests.new_reply(is_async, "operator"),
            tenant_id=tenant,
        )
        return self._ask(saga_id, command)
    def retry_compensation_sync(
        self, saga_id: str, reason: str, user_context: UserContext = None
    ) -> dict[str, Any]:
        """Resume a parked rollback at the compensation that failed, with a fresh budget."""
        reason = check_reason(reason)
        return self._requests.wait(
            self._submit_operator(
                saga_id, user_context, lambda by, now: RetryCompensation(by, reason, now), False
            )
        )

    async def retry_compensation(
        self, saga_id: str, reason: str, user_context: UserContext = None
    ) -> dict[str, Any]:
        reason = check_reason(reason)
        return await self._submit_operator(
            saga_id, user_context, lambda by, now: RetryCompensation(by, reason, now), True
        ).wait()

    def skip_compensation_sync(
        self, saga_id: str, milestone_id: str, reason: str, user_context: UserContext = None
    ) -> dict[str, Any]:
        """Record that the failed compensation of ``milestone_id`` was done by hand; continue."""
        reason = check_reason(reason)
        check_id(milestone_id, "milestone_id")
        return self._requests.wait(
            self._submit_operator(
                saga_id,
                user_context,
                lambda by, now: SkipCompensation(milestone_id, by, reason, now),
                False,
            )
        )

    async def skip_compensation(
        self, saga_id: str, milestone_id: str, reason: str, user_context: UserContext = None
    ) -> dict[str, Any]:
        reason = check_reason(reason)
        check_id(milestone_id, "milestone_id")
        return await self._submit_operator(
            saga_id,
            user_context,
            lambda by, now: SkipCompensation(milestone_id, by, reason, now),
            True,
        ).wait()

