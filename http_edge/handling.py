"""What every request to the edge goes through, whichever route takes it.

Each route's handler is wrapped once, when the routes are set up (`guarded`): the request's
ID, errors in OpenAI's shape, and the response headers (`x-request-id`, CORS; a streamed
response sends its own with `prepare_stream`). A route that reads a body has the caller's
credentials checked by the core first (`http_edge.auth`), so a stranger's body is never read
(nor even sent, by a client that asks `Expect: 100-continue`: `admit_before_continue`).
A request no route takes, a CORS preflight among them, reaches `unrouted` through a
catch-all route, guarded the same way.

An aiohttp middleware would do the same for every request, but any middleware makes aiohttp
add one of its own around each handler as well (it keeps `request.app` right for sub-apps,
which the edge has none of): two more coroutines a request. Guarding each route instead was
worth 1 to 3% of the requests a second of a list call through the edge on 2 cores, 2% of a
get run. The core's `RpcGuard` wraps its methods once for the same reason.
"""

from __future__ import annotations

import logging
import time
from typing import Final

import grpc
from aiohttp import HttpVersion11, hdrs, web
from aiohttp.typedefs import Handler

from http_edge.auth import Admission
from http_edge.errors import SERVER_ERROR, HttpError, from_rpc_error
from http_edge.metrics import RouteMeter
from http_edge.routes.context import (
    ADMIN_ADMISSION,
    ADMISSION,
    CORS,
    REQUEST_ID,
    add_response_headers,
    assign_request_id,
    rpc_metadata,
)

logger = logging.getLogger(__name__)

# The catch-all route's path: any path, after every route of the API; a newline (`%0A`) too,
# which `.` would not match, leaving aiohttp's own plain-text 404 to answer.
UNROUTED_PATH: Final = r"/{path:[\s\S]*}"

_CORS_METHODS: Final = "GET, POST, DELETE, OPTIONS"
_CORS_DEFAULT_HEADERS: Final = "Authorization, Content-Type, OpenAI-Beta, X-Request-Id"
_CORS_MAX_AGE: Final = "86400"
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"


# Which admission lets the callers of a route in: `ADMISSION` (project keys) for the API,
# `ADMIN_ADMISSION` (admin keys) for the admin routes.
AdmissionKey = web.AppKey[Admission]


def guarded(
    handler: Handler,
    meter: RouteMeter,
    *,
    reads_body: bool = False,
    admission: AdmissionKey = ADMISSION,
) -> Handler:
    """`handler` with the request's ID assigned, its errors answered, our headers added and
    the request counted by `meter`; when it `reads_body`, a request that has one is let in
    by the core first (by `admission`)."""

    async def guard(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        assign_request_id(request)
        response = await _answer(request, handler, reads_body, admission)
        if not response.prepared:
            add_response_headers(request, response)
        meter.done(request, response.status, started)
        return response

    return guard


async def admit_before_continue(request: web.Request) -> web.StreamResponse | None:
    """The `expect_handler` of the API's routes that read a body (see `_admit_expecting`)."""
    return await _admit_expecting(request, ADMISSION)


async def admin_admit_before_continue(request: web.Request) -> web.StreamResponse | None:
    """The `expect_handler` of the admin routes that read a body."""
    return await _admit_expecting(request, ADMIN_ADMISSION)


async def _admit_expecting(
    request: web.Request, admission: AdmissionKey
) -> web.StreamResponse | None:
    """What an `expect_handler` does.

    A client that sends `Expect: 100-continue` (curl does for large uploads) waits for a word
    before it sends the body, so the core's verdict on its credentials comes first: a refusal
    is answered in place of `100 Continue`, and the body is never sent. An admitted caller is
    told to go on, as aiohttp's own handler would; the route's guard then finds the verdict
    kept (`http_edge.auth`).
    """
    if request.version != HttpVersion11:
        return None
    expect = request.headers.get(hdrs.EXPECT, "")
    if expect.lower() != "100-continue":
        raise web.HTTPExpectationFailed(text=f"Unknown Expect: {expect}")
    try:
        await request.app[admission].admit(request, rpc_metadata(request))
    except grpc.aio.AioRpcError as err:
        assign_request_id(request)
        response = from_rpc_error(err).response()
        add_response_headers(request, response)
        return response
    await request.writer.write(_CONTINUE)
    # The interim answer is not part of the response the handler writes.
    request.writer.output_size = 0
    return None


async def unrouted(request: web.Request) -> web.StreamResponse:
    """A CORS preflight for any path (browsers send no key with it); else 405 when another
    method of the path has a route, 404 when none has."""
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        return _preflight(request)
    catch_all = request.match_info.route.resource
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is not catch_all:
            allowed |= (await resource.resolve(request))[1]
    if not allowed:
        return HttpError(404, f"Invalid URL ({request.method} {request.path})").response()
    response = HttpError(
        405, f"Invalid method for URL ({request.method} {request.path})"
    ).response()
    response.headers["Allow"] = ", ".join(sorted(allowed))
    return response


async def _answer(
    request: web.Request, handler: Handler, reads_body: bool, admission: AdmissionKey
) -> web.StreamResponse:
    """The handler's response, or the error response for what it raised."""
    try:
        if reads_body and request.body_exists:
            await request.app[admission].admit(request, rpc_metadata(request))
        return await handler(request)
    except HttpError as err:
        return err.response()
    except grpc.aio.AioRpcError as err:
        return from_rpc_error(err).response()
    except web.HTTPException as err:
        return _from_http_exception(err)
    except Exception as err:
        if isinstance(err, ConnectionError) and _client_left(request):
            # Nobody is left to answer: the connection's handler notes it in one line
            # (`http_edge.connections`).
            raise
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


def _client_left(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _preflight(request: web.Request) -> web.Response:
    response = web.Response(status=204)
    origin = request.headers.get("Origin")
    if origin and request.app[CORS].allows(origin):
        headers = response.headers
        headers["Access-Control-Allow-Methods"] = _CORS_METHODS
        headers["Access-Control-Allow-Headers"] = request.headers.get(
            "Access-Control-Request-Headers", _CORS_DEFAULT_HEADERS
        )
        headers["Access-Control-Max-Age"] = _CORS_MAX_AGE
    return response


def _from_http_exception(err: web.HTTPException) -> web.Response:
    """aiohttp's own refusals raised while handling (a body too large) in OpenAI's shape."""
    if isinstance(err, web.HTTPRequestEntityTooLarge):
        return HttpError(
            413, err.text or "Request body too large.", code="request_too_large"
        ).response()
    error_type = SERVER_ERROR if err.status >= 500 else "invalid_request_error"
    return HttpError(err.status, err.reason, error_type=error_type).response()
