"""The optional access log (``serve --access-log``): one INFO record per request on
``saga_journey.access``, with method, path, status, bytes, seconds and remote as fields."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger


class AccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        path = request.rel_url.raw_path[:200]
        self.logger.info(
            '%s %s %d %.1fms', request.method, path, response.status, time * 1000,
            extra={"method": request.method, "path": path, "status": response.status,
                   "bytes": response.body_length, "seconds": round(time, 6),
                   "remote": request.remote},
        )


ACCESS_LOG = logging.getLogger("saga_journey.access")
