"""The journey catalog: designing (versioning) journeys and the cache of stored versions.

Versions are immutable once stored, so they are cached for good; the latest version of each
journey is cached too, which is authoritative because this process owns the store (folder lock)
and every design goes through here.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from typing import Any

from saga_journey.persistence.keys import local_id, scoped_key
from saga_journey.persistence.ports import RuntimeStore
from saga_journey.persistence.store import JourneyWrite

from .clock import Clock
from .errors import HandlerMissingError, NotFoundError
from .handlers import HandlerRegistry
from .inputs import check_journey_version
from .journeys import build_journey, check_id
from .model import Journey


class JourneyCatalog:
    def __init__(self, store: RuntimeStore, handlers: HandlerRegistry, clock: Clock, *,
                 latest_cached: bool = True) -> None:
        """``latest_cached``: whether this process designs every journey of the store (one
        process, or the catalog's owner among workers); otherwise another process may add a
        version at any time, so the latest version is read from the store on every lookup."""
        self.store = store
        self._latest_cached = latest_cached
        self.handlers = handlers
        self.clock = clock
        self._journeys: dict[tuple[str, int], Journey] = {}
        self._latest: dict[str, Journey] = {}
        self._design_lock = threading.Lock()

    def load(self, journey_key: str, version: int) -> Journey:
        """A journey version by its internal key (``scoped_key(tenant, journey_id)``)."""
        key = (journey_key, version)
        journey = self._journeys.get(key)
        if journey is None:
            raw = self.store.load_journey(journey_key, version)
            if raw is None:
                raise NotFoundError(f"journey {local_id(journey_key)} v{version} not found")
            journey = Journey.from_dict(raw)
            self._journeys[key] = journey
        return journey

    def for_tenant(self, journey_id: str, tenant: str, version: int | None = None) -> Journey:
        """The tenant's journey ``journey_id`` (its latest version unless ``version``)."""
        check_id(journey_id, "journey_id")
        check_journey_version(version)
        key = scoped_key(tenant, journey_id)
        journey = self._latest.get(key) if version is None else None
        if journey is None:
            raw = self.store.load_journey(key, version)
            if raw is not None:
                journey = self.load(key, int(raw["version"]))
                if version is None and self._latest_cached:
                    # This process writes the catalog (folder lock), so the cache stays authoritative.
                    self._latest[key] = journey
        if journey is None or journey.tenant_id != tenant:
            suffix = f" v{version}" if version is not None else ""
            raise NotFoundError(f"journey {journey_id}{suffix} not found", journey_id=journey_id)
        return journey

    def design(
        self,
        tenant: str,
        journey_type: str,
        requirements: Mapping[str, Any] | None,
        compensation_handlers: Mapping[str, Any] | None,
        journey_id: str | None,
        allow_unregistered_handlers: bool,
        idem: tuple[str, str] | None,
    ) -> dict[str, Any]:
        with self._design_lock:
            version = 1
            if journey_id is None:
                journey_id = "jrn_" + uuid.uuid4().hex
            else:
                check_id(journey_id, "journey_id")
                latest = self.store.load_journey(scoped_key(tenant, journey_id))
                if latest is not None:
                    version = int(latest["version"]) + 1
            journey = build_journey(
                journey_id=journey_id,
                version=version,
                journey_type=journey_type,
                tenant_id=tenant,
                requirements=requirements,
                compensation_handlers=compensation_handlers,
                created_at=self.clock.now(),
            )
            missing = self.handlers.missing(journey.handler_names())
            if missing and not allow_unregistered_handlers:
                raise HandlerMissingError(
                    f"no compensation handler is registered under {missing}; register them "
                    "first or pass allow_unregistered_handlers=True",
                    missing=missing,
                )
            record = journey.to_dict()
            response = {**record, "missing_handlers": missing}
            stored = (idem[0], {"fingerprint": idem[1], "response": response}) if idem else None
            self.store.write([JourneyWrite(record, idempotency=stored)])
        self._journeys[(scoped_key(tenant, journey_id), version)] = journey
        self._latest[scoped_key(tenant, journey_id)] = journey
        return response
