"""``saga-journey serve``: open the runtime, start the gateway, stop cleanly on SIGTERM/SIGINT.

Order on the way up: webhook handlers exist before the orchestrator opens (so compensations owed
from a previous run find them during recovery), then the listener starts. On the way down: stop
accepting, let in-flight requests finish (up to ``shutdown_timeout_s``), close the orchestrator
(commits what is pending, closes LMDB), then close the webhook client session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TextIO

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from saga_journey.metrics import SagaMetrics, gathered_metrics_handler, metrics_handler
from saga_journey.persistence.factory import backend_for
from saga_journey.persistence.shard_map import owned_shards
from saga_journey.runtime.errors import SagaError
from saga_journey.runtime.handlers import Handler
from saga_journey.runtime.logs import LoggingObserver
from saga_journey.runtime.observer import Observers
from saga_journey.runtime.orchestrator import SagaOrchestrator

from .access_log import ACCESS_LOG, AccessLogger
from .app import GATEWAY, RuntimeContext, create_app
from .auth import Authenticator
from .devmode import template_noop_handlers
from .hop import peer_address
from .routing import HopCollector, WorkerRouter
from .supervisor import READY_FD_ENV
from .settings import ServeConfig, load_config
from .webhooks import build_webhooks

log = logging.getLogger("saga_journey.http")

INSECURE_BANNER = """
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!!  saga-journey is running with --insecure-dev: NO AUTHENTICATION.          !!
!!  Every request acts as tenant 'default' with all roles. Local trials only. !!
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
"""


@dataclass(frozen=True)
class WorkerSpec:
    """A worker of ``serve --workers``: worker ``index`` of ``workers`` over a sharded folder."""

    data_folder: str
    index: int
    workers: int
    shards: int

    @property
    def owned(self) -> frozenset[int]:
        return owned_shards(self.shards, self.workers, self.index)


def runtime_context(store_url: str, config: ServeConfig, metric_obs: SagaMetrics | None,
                    owned: frozenset[int] | None = None) -> RuntimeContext:
    """The app's runtime, opened and closed in ``cleanup_ctx``: the webhook client session, then
    the orchestrator on the app's loop (its handlers exist before it opens, so compensations
    owed from a previous run find them during recovery); closed in the reverse order."""
    settings = config.gateway

    @asynccontextmanager
    async def runtime(_: web.Application) -> AsyncIterator[SagaOrchestrator]:
        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession() as session:
            handlers: dict[str, Handler] = dict(build_webhooks(settings.webhooks, session, loop))
            if settings.insecure_dev:
                handlers = {**template_noop_handlers(handlers), **handlers}
            observer = Observers(*[o for o in (metric_obs, LoggingObserver()) if o is not None])
            orch = SagaOrchestrator.open(store=store_url, config=config.runtime, handlers=handlers, observer=observer,
                                         owned_shards=owned)
            try:
                if metric_obs is not None:
                    metric_obs.attach(orch)
                yield orch
            finally:
                await loop.run_in_executor(None, orch.close)  # commits what is pending, closes LMDB

    return runtime


async def serve(
    store_url: str,
    host: str,
    port: int,
    config: ServeConfig,
    *,
    out: TextIO = sys.stdout,
    metrics: bool = True,
    started: Callable[[int], None] | None = None,
    sockets: Sequence[socket.socket] = (),
    access_log: bool = False,
    config_path: str | None = None,
    worker: WorkerSpec | None = None,
) -> None:
    """Run until SIGTERM/SIGINT; with ``metrics``, Prometheus metrics are served at GET /metrics.
    ``worker``: run as that worker of ``serve --workers`` (its shards, its hop socket).
    On SIGHUP the API keys are read again from ``config_path`` (connections stay open).

    ``sockets``: already bound listeners (``listeners.bind_listeners``) to serve on instead of
    binding ``host``:``port`` here."""
    loop = asyncio.get_running_loop()
    settings = config.gateway
    if settings.insecure_dev:
        print(INSECURE_BANNER, file=sys.stderr, flush=True)
    metric_obs = SagaMetrics(CollectorRegistry()) if metrics else None
    auth = Authenticator(settings.api_keys, insecure_dev=settings.insecure_dev)
    router = None if worker is None else WorkerRouter(worker.data_folder, worker.index, worker.workers, worker.shards)
    handler = None
    if metric_obs is not None:
        if router is None or worker is None:
            handler = metrics_handler(metric_obs.registry)
        else:  # one scrape shows every worker's series
            metric_obs.registry.register(HopCollector(router.stats))
            handler = gathered_metrics_handler(metric_obs.registry, worker.index, router.gather)
    app = create_app(None, settings, metrics_handler=handler, authenticator=auth, router=router,
                     runtime=runtime_context(store_url, config, metric_obs, None if worker is None else worker.owned))
    runner = web.AppRunner(
        app, access_log=ACCESS_LOG if access_log else None, access_log_class=AccessLogger,
        shutdown_timeout=settings.shutdown_timeout_s, handle_signals=False,
    )
    try:
        await runner.setup()  # runs the app's start-up: the runtime opens here
    except BaseException:
        await app.cleanup()  # closes whatever of the runtime did open
        raise
    try:
        sites: list[web.BaseSite] = [web.SockSite(runner, sock, backlog=1024) for sock in sockets] or [
            web.TCPSite(runner, host, port, backlog=1024)
        ]
        if worker is not None:
            hop = peer_address(worker.data_folder, worker.index)
            if os.path.exists(hop):
                os.unlink(hop)  # left by this worker's previous life
            sites.append(web.UnixSite(runner, hop, backlog=1024))
        for site in sites:
            await site.start()
        addresses = runner.addresses
        bound = addresses[0][1] if addresses else port
        orch = app[GATEWAY].orch
        if worker is not None:
            _worker_ready(worker, orch, out)
        else:
            print(
                f"saga-journey gateway listening on http://{host}:{bound} (data {backend_for(store_url).describe()}, "
                f"{len(settings.api_keys)} API keys, {len(settings.webhooks)} webhook handlers, "
                f"{orch.recovered} sagas resumed)",
                file=out,
                flush=True,
            )
        _log_started(orch, host, bound, metrics=handler is not None)
        if started:
            started(bound)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, reload_keys, auth, config_path, settings.insecure_dev, out)
        await stop.wait()
        print("saga-journey gateway stopping", file=out, flush=True)
    finally:
        # stops listening, waits for in-flight requests, then the app's cleanup closes the
        # event feed, the orchestrator and the webhook session
        await runner.cleanup()
        if worker is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(peer_address(worker.data_folder, worker.index))
    print("saga-journey gateway stopped", file=out, flush=True)


def _worker_ready(worker: WorkerSpec, orch: SagaOrchestrator, out: TextIO) -> None:
    """Tell the supervisor (through the pipe it passed) that this worker serves."""
    print(f"saga-journey worker {worker.index} of {worker.workers} ready (pid {os.getpid()}, shards "
          f"{','.join(map(str, sorted(worker.owned)))}, {orch.recovered} sagas resumed)", file=out, flush=True)
    fd = os.environ.get(READY_FD_ENV)
    if fd and fd.isdigit():
        try:
            os.write(int(fd), b"ready\n")
            os.close(int(fd))
        except OSError:
            pass  # no supervisor listening (a worker started by hand)


def _log_started(orch: SagaOrchestrator, host: str, port: int, *, metrics: bool) -> None:
    """The start-up line: where everything is served, and how many sagas wait for an operator."""
    base = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    endpoints = {"api": f"{base}/v1", "console": f"{base}/ui/", "docs": f"{base}/docs",
                 "openapi": f"{base}/openapi.json"}
    if metrics:
        endpoints["metrics"] = f"{base}/metrics"
    parked = sum(orch.store.count_compensation_failed().values())
    log.info(
        "saga-journey ready: %s; %d saga(s) parked waiting for an operator%s",
        ", ".join(f"{k} {v}" for k, v in endpoints.items()), parked,
        f" (list them: GET {base}/v1/sagas?status=FAILED)" if parked else "",
        extra={**endpoints, "parked": parked, "recovered": orch.recovered},
    )


def reload_keys(auth: Authenticator, path: str | None, insecure_dev: bool, out: TextIO) -> None:
    """SIGHUP: read the config file again and swap in its API keys; a bad file keeps the old keys."""
    if path is None:
        log.warning("SIGHUP: no --config file to reload API keys from; keys unchanged")
        return
    try:
        keys = load_config(path, insecure_dev=insecure_dev).gateway.api_keys
    except SagaError as exc:
        log.error("SIGHUP: config %s not reloaded, the previous API keys stay: %s", path, exc)
        print(f"saga-journey: config {path} not reloaded (previous API keys stay): {exc}", file=out, flush=True)
        return
    count = auth.replace(keys)
    log.warning("SIGHUP: reloaded %d API keys from %s", count, path)
    print(f"saga-journey: reloaded {count} API keys from {path}", file=out, flush=True)


def run(
    store_url: str,
    host: str,
    port: int,
    config: ServeConfig,
    *,
    use_uvloop: bool | None = None,
    sockets: Sequence[socket.socket] = (),
    access_log: bool = False,
    config_path: str | None = None,
    worker: WorkerSpec | None = None,
) -> None:
    """Blocking entry point for the CLI. ``use_uvloop``: None = when installed."""
    main = serve(store_url, host, port, config, sockets=sockets, access_log=access_log,
                 config_path=config_path, worker=worker)
    if use_uvloop is not False:
        try:
            import uvloop
        except ImportError:
            if use_uvloop:
                main.close()
                raise
        else:
            uvloop.run(main)
            return
    asyncio.run(main)
