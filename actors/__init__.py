"""Actor shell of the runtime: saga actors, compensator actors and the directory of live sagas.

Names are re-exported lazily (PEP 562), so importing one actor module never pulls in the rest.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "CompensatorActor": ".compensator_actor",
    "Directory": ".directory",
    "LoopActor": ".loop_actor",
    "RuntimeLoop": ".loop_actor",
    "SagaActor": ".saga_actor",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value
