"""The chaos workload's compensation handler as a webhook endpoint, for ``serve --workers``.

    python tests/chaos/webhook.py --ledger LEDGER [--port 0]

Prints ``listening PORT`` once bound. Every POST appends ``call\\tSAGA\\tMILESTONE\\tATTEMPT`` to
the ledger (fsynced) before it answers; the first attempt of a flaky milestone (``worker.flaky``)
is answered 500 (the runtime retries), any other ``ok\\t...`` (fsynced) then 200: the same ledger
the embedded handler of ``worker.py`` writes, so ``invariants.check`` reads it unchanged. Runs in
its own process (never killed), so its fsyncs do not delay the client's timings.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from tests.chaos.worker import FsyncLog, flaky


def make_app(ledger: FsyncLog) -> web.Application:
    async def undo(request: web.Request) -> web.Response:
        body = await request.json()
        tag = f"{body['saga_id']}\t{body['milestone_id']}\t{body['attempt']}"
        ledger.append(f"call\t{tag}")
        if body["attempt"] == 1 and flaky(body["saga_id"], body["milestone_id"]):
            return web.json_response({"error": "flaky first attempt"}, status=500)
        ledger.append(f"ok\t{tag}")
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/undo", undo)
    return app


async def serve(args: argparse.Namespace) -> None:
    runner = web.AppRunner(make_app(FsyncLog(args.ledger)), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port)
    await site.start()
    print(f"listening {site._server.sockets[0].getsockname()[1]}", flush=True)  # type: ignore[union-attr]
    await asyncio.Event().wait()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--ledger", required=True)
    p.add_argument("--port", type=int, default=0)
    try:
        asyncio.run(serve(p.parse_args()))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
