"""A stand-in for your compensation service, for trying the HTTP gateway (README walkthrough).

``saga-journey serve`` POSTs each compensation to ``/compensate/<handler name>`` with an
``Idempotency-Key`` header. This service logs the call, answers 200 and remembers the key, so a
repeated call (after a crash or a retry) is answered without undoing anything twice.

    python examples/compensation_service.py --port 9000
"""

from __future__ import annotations

import argparse

from aiohttp import web

done: set[str] = set()


async def compensate(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    key = request.headers.get("Idempotency-Key", "")
    call = await request.json()
    if key not in done:
        done.add(key)  # a real service would undo the milestone here, in the same transaction
        print(f"compensated {name} for {call['milestone_id']} of saga {call['saga_id']} "
              f"(attempt {call['attempt']}, key {key})", flush=True)
    return web.json_response({"ok": True})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_post("/compensate/{name}", compensate)
    web.run_app(app, host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
