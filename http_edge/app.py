"""The edge application: routes, and the one gRPC channel it lives on.

Everything per request is kept cheap: each route's handler is wrapped once for request IDs,
error translation and the response headers, and a catch-all route answers CORS preflights
and unknown routes (`http_edge.handling`); request logging is a middleware that only exists
when `COMPAT_LOG_REQUESTS` asks for it. `HttpListener` (`http_edge.connections`) serves the
application: it bounds and times the connections, and stops the edge gracefully.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Final

import grpc
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CollectorRegistry

from compat_core.config import Settings
from compat_core.heap import freeze_startup_heap
from compat_core.signals import until_signalled
from compat_core.startup import listen_errors
from http_edge.auth import AdminAdmission, Admission
from http_edge.connections import HttpListener
from http_edge.core_health import CoreHealth
from http_edge.metrics import METRICS, EdgeMetrics
from http_edge.routes import setup_routes
from http_edge.routes.context import (
    ADMIN_ADMISSION,
    ADMISSION,
    CORE,
    CORE_HEALTH,
    CORS,
    EVENT_STREAMS,
    REQUEST_ID,
    SETTINGS,
    Core,
    Cors,
)
from http_edge.streams import EventStreams

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


def create_app(
    settings: Settings, core_target: str, metrics: Sequence[CollectorRegistry] = ()
) -> web.Application:
    """The edge for `settings`, talking to the core at `core_target` (`host:port`); its
    `/metrics` shows the `metrics` registries too, after its own."""
    # Request logging is the one middleware, there only when asked for (see `handling`).
    middlewares: list[Middleware] = [_log_requests] if settings.log_requests else []
    app = web.Application(client_max_size=JSON_BODY_LIMIT, middlewares=middlewares)
    app[SETTINGS] = settings
    app[CORS] = Cors(settings.cors_origins)
    streams = app[EVENT_STREAMS] = EventStreams(settings.max_streams)
    meters = app[METRICS] = EdgeMetrics()
    meters.show_too(metrics)
    meters.streams_active.set_function(lambda: len(streams))
    app.on_shutdown.append(_end_event_streams)
    app.cleanup_ctx.append(_core_channel(core_target))
    setup_routes(app)
    return app


def run_edge(settings: Settings, on_listening: Callable[[int], None] | None = None) -> None:
    """Serve the edge alone, on `COMPAT_HTTP_HOST:PORT`, for a core found elsewhere, until
    SIGTERM or SIGINT; then stop gracefully (`HttpListener.stop`). `on_listening` gets the
    bound port once the socket is bound."""
    with asyncio.Runner(loop_factory=_new_event_loop) as runner:
        runner.run(_serve_alone(settings, on_listening))


async def _serve_alone(settings: Settings, on_listening: Callable[[int], None] | None) -> None:
    target = settings.resolved_core_target()
    listener = HttpListener(create_app(settings, target), settings)
    with listen_errors("HTTP", settings.http_host, settings.http_port):
        port = await listener.start(settings.http_host, settings.http_port)
    try:
        freeze_startup_heap()
        # Scripts wait for this line.
        logger.info(
            "edge listening: Running on http://%s:%d, core at %s", settings.http_host, port, target
        )
        if on_listening is not None:
            on_listening(port)
        await until_signalled()
        logger.info(
            "shutting down: finishing requests and event streams (up to %gs)",
            settings.shutdown_grace_seconds,
        )
    finally:
        await listener.stop()


def _new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _core_channel(target: str) -> Callable[[web.Application], AsyncIterator[None]]:
    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        channel = grpc.aio.insecure_channel(target, options=_CHANNEL_OPTIONS)
        core = Core(channel)
        app[CORE] = core
        app[ADMISSION] = Admission(core.access)
        app[ADMIN_ADMISSION] = AdminAdmission(core.access, core.admin)
        app[CORE_HEALTH] = CoreHealth(core.health)
        try:
            yield
        finally:
            await channel.close(grace=_CHANNEL_CLOSE_GRACE)

    return lifetime


async def _end_event_streams(app: web.Application) -> None:
    """End the event streams still open with the restart `error` event. `HttpListener.stop`
    has given them their grace already; this is for any other way of serving the app."""
    await app[EVENT_STREAMS].end_all(0.0)


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
