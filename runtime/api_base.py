"""What the halves of ``SagaOrchestrator`` (``commands.CommandApi``, ``queries.QueryApi``)
share: the parts built by the composition root, and who is asking."""

from __future__ import annotations

from typing import TYPE_CHECKING

from saga_journey.persistence.ports import Store

from .config import RuntimeConfig
from .errors import RuntimeClosedError
from .handlers import HandlerRegistry
from .inputs import UserContext, actor_of, tenant_of

if TYPE_CHECKING:
    from saga_journey.actors.directory import Directory

    from .catalog import JourneyCatalog
    from .idempotency import IdempotencyGuard
    from .placement import Placement
    from .requests import Requests


class ApiBase:
    config: RuntimeConfig
    store: Store
    handlers: HandlerRegistry
    journeys: JourneyCatalog
    _closed: bool
    _directory: Directory
    _requests: Requests
    _idem: IdempotencyGuard
    _placement: Placement

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeClosedError("the orchestrator is closed")

    def _tenant(self, user_context: UserContext) -> str:
        return tenant_of(user_context, self.config.default_tenant)

    def _actor(self, user_context: UserContext) -> str:
        return actor_of(user_context)
