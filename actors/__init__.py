"""Actor shell of the runtime: saga actors, compensator actors and the directory of live sagas."""

from .compensator_actor import CompensatorActor
from .directory import Directory
from .saga_actor import SagaActor

__all__ = ["CompensatorActor", "Directory", "SagaActor"]
