"""`GET /health`: liveness of the edge itself, answered without the core or credentials."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from http_edge.json_io import JSON_CONTENT_TYPE

routes = web.RouteTableDef()

_OK: Final = b'{"status":"ok"}'


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    return web.Response(body=_OK, content_type=JSON_CONTENT_TYPE)
