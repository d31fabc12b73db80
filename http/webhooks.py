"""Compensation handlers served over HTTP, declared in the config file.

Each one is an async handler registered on the orchestrator. The runtime runs async handlers on
its own loop thread; the aiohttp ``ClientSession`` belongs to the gateway's loop, so each call is
handed over to that loop and awaited from the runtime's.

Outcome of one attempt: 2xx is done. 408, 425, 429, 5xx, timeouts and connection errors raise
``WebhookError`` and the runtime retries with the milestone's backoff policy. Other 4xx answers
mean the endpoint rejected the request itself (bad URL, credentials, payload); retrying the same
request cannot fix that, so they raise ``NonRetryableError`` and the compensation fails at once
with the saga FAILED and ``compensation_error`` set -- unless the webhook sets
``retry_client_errors = true``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from saga_journey.runtime.errors import NonRetryableError
from saga_journey.runtime.handlers import CompensationContext

from .settings import WebhookSpec

RETRYABLE_4XX = frozenset({408, 425, 429})


class WebhookError(Exception):
    """A retryable webhook failure."""


def payload(ctx: CompensationContext) -> dict[str, Any]:
    return {
        "saga_id": ctx.saga_id,
        "journey_id": ctx.journey_id,
        "journey_type": ctx.journey_type,
        "tenant_id": ctx.tenant_id,
        "milestone_id": ctx.milestone_id,
        "step_result": dict(ctx.step_result),
        "context": dict(ctx.context),
        "attempt": ctx.attempt,
        "idempotency_key": ctx.idempotency_key,
    }


class WebhookHandler:
    def __init__(self, spec: WebhookSpec, session: aiohttp.ClientSession, loop: asyncio.AbstractEventLoop) -> None:
        self.spec = spec
        self._session = session
        self._loop = loop

    async def __call__(self, ctx: CompensationContext) -> None:
        if asyncio.get_running_loop() is self._loop:
            await self._post(ctx)
            return
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._post(ctx), self._loop))

    async def _post(self, ctx: CompensationContext) -> None:
        spec = self.spec
        headers = {
            **spec.headers,
            "Content-Type": "application/json",
            "Idempotency-Key": ctx.idempotency_key,
        }
        body = json.dumps(payload(ctx)).encode("utf-8")
        try:
            async with self._session.post(
                spec.url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=spec.timeout_s)
            ) as resp:
                status = resp.status
                text = (await resp.read())[:200].decode("utf-8", "replace")
        except asyncio.TimeoutError:
            raise WebhookError(f"{spec.name}: no answer from {spec.url} within {spec.timeout_s:g}s") from None
        except aiohttp.ClientError as exc:
            raise WebhookError(f"{spec.name}: {type(exc).__name__}: {exc}") from None
        if 200 <= status < 300:
            return
        message = f"{spec.name}: {spec.url} answered {status}: {text}"
        if 400 <= status < 500 and status not in RETRYABLE_4XX and not spec.retry_client_errors:
            raise NonRetryableError(message, status=status)
        raise WebhookError(message)


def build_webhooks(
    specs: tuple[WebhookSpec, ...], session: aiohttp.ClientSession, loop: asyncio.AbstractEventLoop
) -> dict[str, WebhookHandler]:
    """Handlers by name, to pass to ``SagaOrchestrator.open(handlers=...)`` before recovery runs."""
    return {spec.name: WebhookHandler(spec, session, loop) for spec in specs}
