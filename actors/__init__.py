"""Actor shell of the runtime: saga actors, compensator actors and the directory of live sagas.

Re-exports are lazy (PEP 562) so that importing one actor module never imports the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from saga_journey.runtime.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "CompensatorActor": "compensator_actor",
    "Directory": "directory",
    "LoopActor": "loop_actor",
    "RuntimeLoop": "loop_actor",
    "SagaActor": "saga_actor",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .compensator_actor import CompensatorActor
    from .directory import Directory
    from .loop_actor import LoopActor, RuntimeLoop
    from .saga_actor import SagaActor


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
