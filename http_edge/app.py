"""The edge application: routes, and the one gRPC channel it lives on.

Everything per request is kept cheap: each route's handler is wrapped once for request IDs,
error translation and the response headers, and a catch-all route answers CORS preflights
and unknown routes (`http_edge.handling`); request logging is a middleware that only exists
when `COMPAT_LOG_REQUESTS` asks for it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Final
from urllib.parse import urlsplit

import grpc
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from compat_core.config import Settings
from compat_core.heap import freeze_startup_heap
from compat_core.startup import listen_errors
from http_edge.routes import setup_routes
from http_edge.routes.context import (
    CORE,
    CORS,
    EVENT_STREAMS,
    REQUEST_ID,
    SETTINGS,
    Core,
    Cors,
)

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("http_edge.access")

# JSON bodies only: multipart uploads are streamed and bounded by `max_upload_bytes`.
JSON_BODY_LIMIT: Final = 32 * 1024 * 1024

# The core is trusted and list pages of large objects can exceed grpc's 4 MiB default.
_CHANNEL_OPTIONS: Final = (
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
    # Spread calls over every address the target resolves to (`dns:///cores:50051`, or
    # `ipv4:10.0.0.1:50051,10.0.0.2:50051`), skipping cores that are down; one address
    # behaves as before.
    ("grpc.lb_policy_name", "round_robin"),
)
_CHANNEL_CLOSE_GRACE: Final = 1.0


def create_app(settings: Settings, core_target: str) -> web.Application:
    """The edge for `settings`, talking to the core at `core_target` (`host:port`)."""
    # Request logging is the one middleware, there only when asked for (see `handling`).
    middlewares: list[Middleware] = [_log_requests] if settings.log_requests else []
    app = web.Application(client_max_size=JSON_BODY_LIMIT, middlewares=middlewares)
    app[SETTINGS] = settings
    app[CORS] = Cors(settings.cors_origins)
    app[EVENT_STREAMS] = set()
    app.on_shutdown.append(_end_event_streams)
    app.cleanup_ctx.append(_core_channel(core_target))
    setup_routes(app)
    return app


def run_edge(settings: Settings, on_listening: Callable[[int], None] | None = None) -> None:
    """Serve the edge alone, on `COMPAT_HTTP_HOST:PORT`, for a core found elsewhere;
    `on_listening` gets the bound port once the socket is bound."""
    loop = _new_event_loop()
    asyncio.set_event_loop(loop)
    app = create_app(settings, settings.resolved_core_target())
    app.on_startup.append(_settle_heap)
    # run_app raises only what starting or stopping the app raises (handlers' errors become
    # responses), and of that only the bind raises OSError: a port in use, a foreign host.
    with listen_errors("HTTP", settings.http_host, settings.http_port):
        web.run_app(
            app,
            host=settings.http_host,
            port=settings.http_port,
            access_log=None,
            print=functools.partial(_announce_listening, on_listening),
            loop=loop,
        )


async def _settle_heap(_app: web.Application) -> None:
    freeze_startup_heap()


def _announce_listening(on_listening: Callable[[int], None] | None, banner: str) -> None:
    """aiohttp's word that the socket is bound ("Running on URL"), as a log line (scripts
    wait for it), and the port it names to `on_listening`."""
    running = banner.splitlines()[0].strip("= ")
    logger.info("edge listening: %s", running)
    port = urlsplit(running.removeprefix("Running on ").split(", ")[0]).port
    if on_listening is not None and port is not None:
        on_listening(port)


def _new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _core_channel(target: str) -> Callable[[web.Application], AsyncIterator[None]]:
    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        channel = grpc.aio.insecure_channel(target, options=_CHANNEL_OPTIONS)
        app[CORE] = Core(channel)
        try:
            yield
        finally:
            await channel.close(grace=_CHANNEL_CLOSE_GRACE)

    return lifetime


async def _end_event_streams(app: web.Application) -> None:
    """Stop relaying run events, so a shutdown never waits for a run to finish."""
    relays: set[asyncio.Task[Any]] = app[EVENT_STREAMS]
    for relay in tuple(relays):
        relay.cancel()


@web.middleware
async def _log_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    response = await handler(request)
    access_logger.info(
        "%s %s %d %.1fms %s",
        request.method,
        request.path,
        response.status,
        (time.perf_counter() - started) * 1000.0,
        request.get(REQUEST_ID, "-"),
    )
    return response
