"""Which sagas this runtime writes, and where a new one goes.

One process owns every saga of its store. A worker of ``serve --workers N`` owns a subset of
the shards of a sharded folder (``persistence.shard_map``): it changes only sagas of those
shards (a command for another is refused with ``NotOwnerError``; the gateway forwards such
requests to their owner before they get here) and gives every saga it creates an id that lands
in one of them. A create with an Idempotency-Key and no saga id is placed in the key's shard,
where its idempotency record lives, so that every retry of it reaches the same owner.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from saga_journey.persistence.shard_map import CATALOG_SHARD, idempotency_shard, pick_id, saga_shard

from .errors import NotOwnerError


@dataclass(frozen=True)
class Placement:
    shards: int = 1
    owned: frozenset[int] | None = None  # None: every shard (one process)

    @property
    def owns_all(self) -> bool:
        return self.owned is None or len(self.owned) == self.shards

    def owns(self, tenant_id: str, saga_id: str) -> bool:
        return self.owns_all or saga_shard(tenant_id, saga_id, self.shards) in self.owned  # type: ignore[operator]

    @property
    def writes_journeys(self) -> bool:
        return self.owns_all or CATALOG_SHARD in self.owned  # type: ignore[operator]

    def check_owner(self, tenant_id: str, saga_id: str) -> None:
        if not self.owns(tenant_id, saga_id):
            raise NotOwnerError(
                f"saga {saga_id} is in shard {saga_shard(tenant_id, saga_id, self.shards)}, which "
                f"another worker owns (this one owns {sorted(self.owned or ())}): send it to the gateway",
                saga_id=saga_id,
            )

    def check_journey_writer(self) -> None:
        if not self.writes_journeys:
            raise NotOwnerError(f"journeys are designed by the owner of shard {CATALOG_SHARD}: send it to the gateway")

    def new_saga_id(self, tenant_id: str, idempotency_key: str | None, make: Callable[[], str]) -> str:
        """A fresh id in an owned shard (the Idempotency-Key's shard when there is a key)."""
        if self.owns_all:
            return make()
        if idempotency_key is not None:
            shard = idempotency_shard(tenant_id, idempotency_key, self.shards)
            if shard not in self.owned:  # type: ignore[operator]
                raise NotOwnerError(
                    f"a create with this Idempotency-Key is placed in shard {shard}, which another "
                    "worker owns: send it to the gateway")
            return pick_id(tenant_id, (shard,), self.shards, make)
        return pick_id(tenant_id, self.owned, self.shards, make)  # type: ignore[arg-type]
