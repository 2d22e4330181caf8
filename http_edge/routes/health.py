"""`GET /health`: whether this edge can serve, answered without credentials.

200 `{"status":"ok"}` while a core answers the edge's health checks; 503
`{"status":"unavailable"}` while none does, so that a load balancer stops sending requests
that would all fail (`http_edge.core_health`).
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from http_edge.json_io import JSON_CONTENT_TYPE
from http_edge.routes.context import CORE_HEALTH

routes = web.RouteTableDef()

_OK: Final = b'{"status":"ok"}'
_UNAVAILABLE: Final = b'{"status":"unavailable"}'


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    if await request.app[CORE_HEALTH].serving():
        return web.Response(body=_OK, content_type=JSON_CONTENT_TYPE)
    return web.Response(status=503, body=_UNAVAILABLE, content_type=JSON_CONTENT_TYPE)
