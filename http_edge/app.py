"""The edge application: routes, middlewares, and the one gRPC channel it lives on.

Everything per request is kept cheap: one middleware does request IDs, CORS preflights, error
translation and the response headers (`x-request-id`, CORS; streamed responses add theirs
with `prepare_stream`); request logging is a second middleware that only exists when
`COMPAT_LOG_REQUESTS` asks for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import grpc
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from compat_core.config import Settings
from compat_core.heap import freeze_startup_heap
from http_edge.errors import SERVER_ERROR, HttpError, from_rpc_error
from http_edge.routes import setup_routes
from http_edge.routes.context import (
    CORE,
    CORS,
    EVENT_STREAMS,
    REQUEST_ID,
    SETTINGS,
    Core,
    Cors,
    add_response_headers,
    assign_request_id,
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

_CORS_METHODS: Final = "GET, POST, DELETE, OPTIONS"
_CORS_DEFAULT_HEADERS: Final = "Authorization, Content-Type, OpenAI-Beta, X-Request-Id"
_CORS_MAX_AGE: Final = "86400"


def create_app(settings: Settings, core_target: str) -> web.Application:
    """The edge for `settings`, talking to the core at `core_target` (`host:port`)."""
    cors = Cors(settings.cors_origins)
    middlewares: list[Middleware] = [_edge_middleware(cors)]
    if settings.log_requests:
        middlewares.insert(0, _log_requests)
    app = web.Application(client_max_size=JSON_BODY_LIMIT, middlewares=middlewares)
    app[SETTINGS] = settings
    app[CORS] = cors
    app[EVENT_STREAMS] = set()
    app.on_shutdown.append(_end_event_streams)
    app.cleanup_ctx.append(_core_channel(core_target))
    setup_routes(app)
    return app


def run_edge(settings: Settings) -> None:
    """Serve the edge alone, on `COMPAT_HTTP_HOST:PORT`, for a core found elsewhere."""
    loop = _new_event_loop()
    asyncio.set_event_loop(loop)
    target = settings.resolved_core_target()
    logger.info("edge on http://%s:%d, core at %s", settings.http_host, settings.http_port, target)
    app = create_app(settings, target)
    app.on_startup.append(_settle_heap)
    web.run_app(
        app,
        host=settings.http_host,
        port=settings.http_port,
        access_log=None,
        print=_announce_listening,
        loop=loop,
    )


async def _settle_heap(_app: web.Application) -> None:
    freeze_startup_heap()


def _announce_listening(banner: str) -> None:
    """aiohttp's word that the socket is bound, as a log line (scripts wait for it)."""
    logger.info("edge listening: %s", banner.splitlines()[0].strip("= "))


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


def _edge_middleware(cors: Cors) -> Middleware:
    @web.middleware
    async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
        assign_request_id(request)
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            response: web.StreamResponse = _preflight(request, cors)
        else:
            response = await _answer(request, handler)
        if not response.prepared:
            add_response_headers(request, response)
        return response

    return edge


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The handler's response, or the error response for what it raised."""
    try:
        return await handler(request)
    except HttpError as err:
        return err.response()
    except grpc.aio.AioRpcError as err:
        return from_rpc_error(err).response()
    except web.HTTPException as err:
        return _from_http_exception(request, err)
    except Exception:
        logger.exception(
            "unhandled error in %s %s (request %s)",
            request.method,
            request.path,
            request[REQUEST_ID],
        )
        return HttpError(
            500,
            "The server had an error while processing your request. "
            f"Quote request ID {request[REQUEST_ID]} when reporting it.",
            error_type=SERVER_ERROR,
        ).response()


def _preflight(request: web.Request, cors: Cors) -> web.Response:
    response = web.Response(status=204)
    origin = request.headers.get("Origin")
    if origin and cors.allows(origin):
        headers = response.headers
        headers["Access-Control-Allow-Methods"] = _CORS_METHODS
        headers["Access-Control-Allow-Headers"] = request.headers.get(
            "Access-Control-Request-Headers", _CORS_DEFAULT_HEADERS
        )
        headers["Access-Control-Max-Age"] = _CORS_MAX_AGE
    return response


def _from_http_exception(request: web.Request, err: web.HTTPException) -> web.Response:
    """aiohttp's own refusals (no route, wrong method, body too large) in OpenAI's shape."""
    if isinstance(err, web.HTTPNotFound):
        return HttpError(404, f"Invalid URL ({request.method} {request.path})").response()
    if isinstance(err, web.HTTPMethodNotAllowed):
        response = HttpError(
            405, f"Invalid method for URL ({request.method} {request.path})"
        ).response()
        response.headers["Allow"] = ", ".join(sorted(err.allowed_methods))
        return response
    if isinstance(err, web.HTTPRequestEntityTooLarge):
        return HttpError(
            413, err.text or "Request body too large.", code="request_too_large"
        ).response()
    error_type = SERVER_ERROR if err.status >= 500 else "invalid_request_error"
    return HttpError(err.status, err.reason, error_type=error_type).response()


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
