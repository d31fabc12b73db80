"""``serve --insecure-dev`` extras: logging no-op compensation handlers for the built-in templates.

So that a trial with ``curl`` can run a template end to end (fail a saga, watch it compensate)
without writing a compensation service first. Never used without ``--insecure-dev``; a handler
declared under ``[webhooks.NAME]`` always wins.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping

from saga_journey.runtime.handlers import CompensationContext
from saga_journey.runtime.journeys import TEMPLATES

log = logging.getLogger("saga_journey.devmode")


def _noop(name: str) -> Callable[[CompensationContext], None]:
    def undo(ctx: CompensationContext) -> None:
        log.info(
            "no-op compensation handler %s(%s) for saga %s (--insecure-dev)", name, ctx.milestone_id,
            ctx.saga_id,
            extra={"handler": name, "saga_id": ctx.saga_id, "tenant_id": ctx.tenant_id,
                   "milestone_id": ctx.milestone_id, "attempt": ctx.attempt},
        )

    return undo


def template_noop_handlers(declared: Mapping[str, Any]) -> dict[str, Callable[[CompensationContext], None]]:
    """A logging no-op for every built-in template's handler name not in ``declared``."""
    names = sorted({h for steps in TEMPLATES.values() for _, h in steps} - set(declared))
    return {name: _noop(name) for name in names}
