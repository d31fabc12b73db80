"""The browser console at /ui/ (static package data) and the two read routes it needs.

``GET /v1/whoami`` says who the credential is and which operator actions the route table lets it
take (the console shows only those buttons; the API refuses the others anyway).
``GET /v1/stats`` is the overview: sagas by state and parked, from the list index, and the
rollbacks that finished in the last hour with their p50/p99 duration (failure to last
compensation), from the FAILED sagas updated in that window.

The console's assets are read once, when the app is built, and served under a strict
Content-Security-Policy: scripts and styles only from this origin, no inline code, no eval, no
framing. Every route here is declared with its OpenAPI schema below (``UI_SCHEMAS`` /
``UI_OPERATIONS``, merged into the document by http/openapi.py).
"""

from __future__ import annotations

import asyncio
import math
import pathlib
from typing import Any, Sequence

from aiohttp import web

from saga_journey.runtime.model import SAGA_STATES

from .codec import render
from .routedef import Handler, Route, RouteTable
from .routes import gateway, principal, routes

UI_DIR = pathlib.Path(__file__).parent / "static" / "ui"
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
WINDOW_S = 3600.0
MAX_ROLLBACKS = 10_000  # FAILED sagas of the window looked at; past it the figures say "complete": false
_PAGE = 1000
# The operator actions the console offers, by the route (name) that performs them.
ACTIONS = {"abort": "compensate_saga", "retry_compensation": "retry_compensation",
           "skip_compensation": "skip_compensation"}


def assets() -> dict[str, tuple[bytes, str]]:
    """file name -> (body, content type) of every console asset."""
    return {p.name: (p.read_bytes(), TYPES[p.suffix]) for p in sorted(UI_DIR.iterdir()) if p.suffix in TYPES}


def _asset(body: bytes, ctype: str) -> Handler:
    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=ctype, charset="utf-8", headers=HEADERS)

    return serve


async def _to_console(request: web.Request) -> web.Response:
    return web.Response(status=308, headers={"Location": "/ui/"})


def static_routes() -> list[tuple[str, str, Handler]]:
    """(path, route name, handler): /ui (redirect), /ui/ (the page) and /ui/<asset>; public
    (http/app.py puts them on its public route table)."""
    files = assets()
    index, ctype = files["index.html"]
    out = [("/ui", "ui_redirect", _to_console), ("/ui/", "ui_index", _asset(index, ctype))]
    for name, (body, ctype) in files.items():
        out.append((f"/ui/{name}", "ui_" + name.replace(".", "_").replace("-", "_"), _asset(body, ctype)))
    return out


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending sequence (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def rollback_figures(views: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Finished (compensated) and parked rollbacks among FAILED saga views, with durations."""
    durations: list[float] = []
    parked = 0
    for v in views:
        failure = v.get("failure") or {}
        if not (v.get("compensated_milestones") or v.get("pending_compensations")):
            continue  # failed at its first milestone: nothing was rolled back
        if v.get("parked"):
            parked += 1
            continue
        at, done = failure.get("at"), v.get("updated_at")
        if isinstance(at, (int, float)) and isinstance(done, (int, float)):
            durations.append(max(0.0, done - at))
    durations.sort()
    return {"finished": len(durations), "parked": parked,
            "p50_s": percentile(durations, 50), "p99_s": percentile(durations, 99)}


console_routes = RouteTable()


def _role_of_action(route_name: str) -> str:
    route = routes.by_name(route_name)
    return (route.role if route is not None else None) or "read"


@console_routes.get("/v1/whoami", name="whoami", role="read")
async def whoami(request: web.Request) -> web.Response:
    """Who the credential is and which operator actions the route table lets it take."""
    who = principal(request)
    can = {action: who.can(_role_of_action(route)) for action, route in ACTIONS.items()}
    return render(request, {"tenant_id": who.tenant_id, "user_id": who.user_id,
                            "roles": sorted(who.roles), "can": can})


@console_routes.get("/v1/stats", name="console_stats", role="read")
async def stats(request: web.Request) -> web.Response:
    """The overview's figures, worked out off the loop (it walks the tenant's list index)."""
    user_context = principal(request).user_context()
    gw = gateway(request)
    loop = asyncio.get_running_loop()
    return render(request, await loop.run_in_executor(None, compute_stats, gw, user_context))


def compute_stats(gw: Any, user_context: dict[str, Any]) -> dict[str, Any]:
    orch = gw.orch
    now = orch.clock.now()
    counts, parked = orch.store.tenant_counts(user_context["tenant_id"])
    views: list[dict[str, Any]] = []
    cursor: str | None = None
    while len(views) < MAX_ROLLBACKS:
        page = orch.list_sagas_sync("FAILED", None, user_context, limit=_PAGE, cursor=cursor,
                                    updated_after=now - WINDOW_S)
        views.extend(page["sagas"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    rollbacks = {"window_s": WINDOW_S, **rollback_figures(views[:MAX_ROLLBACKS]), "complete": cursor is None}
    return {"at": now, "by_state": {s: counts.get(s, 0) for s in SAGA_STATES},
            "total": sum(counts.values()), "parked": parked, "rollbacks_last_hour": rollbacks,
            "grafana_url": gw.settings.grafana_url}


# --- OpenAPI (merged into http/openapi.py's SCHEMAS and OPERATIONS) ---------------------------

def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_NUM_OR_NULL = {"anyOf": [{"type": "number", "minimum": 0}, {"type": "null"}]}
_COUNT = {"type": "integer", "minimum": 0}
UI_SCHEMAS: dict[str, Any] = {
    "Role": {"type": "string", "enum": ["read", "write", "admin"]},
    "ConsoleActions": {
        "type": "object", "required": list(ACTIONS),
        "properties": {a: {"type": "boolean"} for a in ACTIONS},
        "description": "the operator actions this credential's roles allow",
    },
    "WhoAmI": {
        "type": "object", "required": ["tenant_id", "user_id", "roles", "can"],
        "properties": {
            "tenant_id": {"type": "string"}, "user_id": {"type": "string"},
            "roles": {"type": "array", "items": _ref("Role")},
            "can": _ref("ConsoleActions"),
        },
    },
    "StateCounts": {
        "type": "object", "required": list(SAGA_STATES),
        "properties": {s: _COUNT for s in SAGA_STATES},
    },
    "RollbackFigures": {
        "type": "object", "required": ["window_s", "finished", "parked", "p50_s", "p99_s", "complete"],
        "properties": {
            "window_s": {"type": "number"},
            "finished": {**_COUNT, "description": "rollbacks that finished (compensation succeeded) in the window"},
            "parked": {**_COUNT, "description": "rollbacks that gave up (parked) in the window"},
            "p50_s": {**_NUM_OR_NULL, "description": "median seconds from the failure to the last compensation"},
            "p99_s": _NUM_OR_NULL,
            "complete": {"type": "boolean", "description": f"false: more than {MAX_ROLLBACKS} FAILED sagas in the window; the figures cover the newest"},
        },
    },
    "ConsoleStats": {
        "type": "object", "required": ["at", "by_state", "total", "parked", "rollbacks_last_hour", "grafana_url"],
        "properties": {
            "at": {"type": "number"},
            "by_state": _ref("StateCounts"),
            "total": _COUNT,
            "parked": {**_COUNT, "description": "FAILED sagas whose compensation gave up, waiting for an operator"},
            "rollbacks_last_hour": _ref("RollbackFigures"),
            "grafana_url": {"type": ["string", "null"], "description": "serve --grafana-url"},
        },
    },
}
_ERRORS = (400, 401, 403, 422, 429, 500, 503)
_WHOAMI = {"tenant_id": "acme", "user_id": "alice", "roles": ["admin", "read", "write"],
           "can": {"abort": True, "retry_compensation": True, "skip_compensation": True}}
_STATS = {"at": 1767225600.0, "by_state": {"IN_PROGRESS": 12, "COMPENSATING": 1, "COMPLETED": 940, "FAILED": 31},
          "total": 984, "parked": 2, "grafana_url": None,
          "rollbacks_last_hour": {"window_s": 3600.0, "finished": 7, "parked": 1, "p50_s": 0.012,
                                  "p99_s": 1.9, "complete": True}}
UI_OPERATIONS: dict[str, dict[str, Any]] = {
    "whoami": {
        "tag": "service", "summary": "Who this credential is, and which operator actions it may take",
        "ok": ("200", "WhoAmI", "the credential's tenant, user and roles",
               {"admin": {"summary": "admin", "value": _WHOAMI}}),
        "errors": _ERRORS,
    },
    "console_stats": {
        "tag": "sagas", "summary": "Overview: sagas by state, parked sagas, rollbacks of the last hour",
        "ok": ("200", "ConsoleStats", "the tenant's figures now", {"stats": {"summary": "stats", "value": _STATS}}),
        "errors": _ERRORS,
    },
}
