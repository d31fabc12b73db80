"""The API reference page at /docs: a small static page (package data) that renders /openapi.json.

Public like /openapi.json: it shows nothing the document does not. The assets are read once,
when the app is built, and served with a strict Content-Security-Policy (no inline script or
style, no other origin: nothing is loaded from a CDN).
"""

from __future__ import annotations

import pathlib
from typing import Awaitable, Callable

from aiohttp import web

ASSET_DIR = pathlib.Path(__file__).parent / "static" / "docs"
ASSETS = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _asset_handler(name: str) -> Handler:
    body = (ASSET_DIR / name).read_bytes()
    ctype = ASSETS[name]

    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=ctype, charset="utf-8", headers=_HEADERS)

    return serve


def docs_routes() -> list[tuple[str, str, Handler]]:
    """(path, route name, handler) of the page and its assets."""
    return [
        ("/docs", "docs", _asset_handler("index.html")),
        ("/docs/app.js", "docs_app_js", _asset_handler("app.js")),
        ("/docs/style.css", "docs_style_css", _asset_handler("style.css")),
    ]
