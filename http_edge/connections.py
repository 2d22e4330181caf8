"""The edge's listening socket and what it allows each connection.

aiohttp closes a connection that waits too long for a request (its keep-alive timeout, also
armed when a connection opens) but not one that sends part of a request and goes quiet, nor
one whose request body stalls, and it accepts connections until the process runs out of file
descriptors. A few thousand silent half-requests were enough to lock every client out. So
each connection of the edge is served by `_Connection`, aiohttp's request handler plus:

- a request head must arrive whole within `COMPAT_HTTP_HEADER_TIMEOUT_SECONDS` of the
  connection opening (or of a next request's first byte), and a body must not pause longer
  than `COMPAT_HTTP_BODY_TIMEOUT_SECONDS` while the edge waits for it; an idle connection is
  closed after `COMPAT_HTTP_KEEPALIVE_SECONDS`. A body the edge holds back (its buffer is
  full because the handler is busy) does not count as the client pausing.
- at most `COMPAT_MAX_CONNECTIONS` are open at once: one more is answered a short 503 and
  closed (`_Refusal`), while the open ones go on being served.
- a request that is not HTTP, or a client that leaves mid-request, is one log line at INFO or
  DEBUG, never an ERROR with a traceback that anyone could flood the log with; a malformed
  request gets OpenAI's error JSON.

Timers are lazy, as aiohttp's keep-alive timer is: receiving bytes only stamps the time, and
a connection has at most one timer, which looks at the connection's state when it fires.
This reads a few of aiohttp's protocol attributes (`_waiter`: the handler waits for a
request head; `_messages`: heads parsed; `_reading_paused`: the edge holds the body back);
the tests of `tests/test_edge_limits.py` exercise each.

`HttpListener` serves an edge application this way and stops it gracefully; the stand-alone
edge (`http_edge.app.run_edge`) and the embedded server (`compat_core.embedded`) both use it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Final, cast

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.streams import StreamReader
from aiohttp.web_request import BaseRequest
from prometheus_client import Counter

from compat_core.config import Settings
from http_edge.errors import INVALID_REQUEST, SERVER_ERROR, HttpError
from http_edge.metrics import METRICS
from http_edge.routes.context import EVENT_STREAMS

logger = logging.getLogger(__name__)

# aiohttp's own default: connections waiting for `accept`.
_BACKLOG: Final = 128
# How long a refused connection may take to read its 503 and close.
_REFUSAL_LINGER: Final = 1.0
# At most one warning this often while connections are refused.
_REFUSAL_WARNING_INTERVAL: Final = 60.0
# aiohttp takes a timeout of 0 as none at all: a stop past its grace still waits this long.
_LAST_MOMENT: Final = 0.1
_MAX_REASON: Final = 200


@dataclass(frozen=True, slots=True)
class Limits:
    """What one edge allows its connections (see the module's docstring)."""

    header_timeout: float
    body_timeout: float
    keepalive: float
    max_connections: int

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(
            header_timeout=settings.http_header_timeout_seconds,
            body_timeout=settings.http_body_timeout_seconds,
            keepalive=settings.http_keepalive_seconds,
            max_connections=settings.max_connections,
        )


class HttpListener:
    """An edge application served on one TCP socket, its connections bounded and timed."""

    def __init__(self, app: web.Application, settings: Settings) -> None:
        self._app = app
        self._settings = settings
        self._limits = Limits.of(settings)
        metrics = app[METRICS]
        self._gate = _Gate(self._limits.max_connections, metrics.connections_refused)
        gate = self._gate
        metrics.connections_open.set_function(lambda: gate.open)
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        """Start the application and listen on `host:port`; returns the bound port."""
        # The runner starts and cleans up the application; the listener makes the connections.
        runner = web.AppRunner(self._app, handle_signals=False)
        await runner.setup()
        try:
            server = runner.server
            assert server is not None
            limits, gate = self._limits, self._gate

            def accept() -> asyncio.Protocol:
                if gate.open >= limits.max_connections:
                    gate.refused()
                    return _Refusal(gate.refusal)
                gate.open += 1
                return _Connection(server, limits, gate)

            loop = asyncio.get_running_loop()
            self._listener = await loop.create_server(accept, host, port, backlog=_BACKLOG)
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(self._listener.sockets[0].getsockname()[1])
        return self.port

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting; let open event streams and requests in flight finish within
        `grace` seconds (default `COMPAT_SHUTDOWN_GRACE_SECONDS`), then end what is left:
        streams with an `error` event saying that the server is restarting."""
        if grace is None:
            grace = self._settings.shutdown_grace_seconds
        listener, runner = self._listener, self._runner
        self._listener = self._runner = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        if listener is not None:
            listener.close()
        if runner is None:
            return
        server = runner.server
        if server is not None:
            # Idle keep-alive connections close now; the others once their request is done.
            server.pre_shutdown()
            await self._app[EVENT_STREAMS].end_all(grace)
            await server.shutdown(max(deadline - loop.time(), _LAST_MOMENT))
        await runner.cleanup()
        if listener is not None:
            await listener.wait_closed()


class _Gate:
    """How many connections are open, and the 503 for one too many."""

    __slots__ = ("_counted", "_refused_since_warning", "_warned_at", "open", "refusal")

    def __init__(self, limit: int, counted: Counter) -> None:
        self.open = 0
        self.refusal = _refusal_bytes(limit)
        self._counted = counted
        self._warned_at = -_REFUSAL_WARNING_INTERVAL
        self._refused_since_warning = 0

    def refused(self) -> None:
        self._counted.inc()
        self._refused_since_warning += 1
        now = time.monotonic()
        if now - self._warned_at >= _REFUSAL_WARNING_INTERVAL:
            logger.warning(
                "refused %d connections with a 503: %d are open, as many as "
                "COMPAT_MAX_CONNECTIONS allows",
                self._refused_since_warning,
                self.open,
            )
            self._warned_at = now
            self._refused_since_warning = 0


class _Connection(web.RequestHandler):
    """aiohttp's request handler, with the edge's timeouts and error logging."""

    __slots__ = ("_body", "_gate", "_head_since", "_limits", "_read_at", "_timer")

    def __init__(self, server: web.Server, limits: Limits, gate: _Gate) -> None:
        super().__init__(
            server,
            loop=asyncio.get_running_loop(),
            keepalive_timeout=limits.keepalive,
            # No access log (aiohttp's typing says a logger, its code takes None for none);
            # `COMPAT_LOG_REQUESTS` logs requests instead.
            access_log=None,  # type: ignore[arg-type]
            # Bodies are taken as sent: a content coding is refused before any of the body is
            # read (`json_io.refuse_content_coding`). Decoding as bytes arrive would answer
            # brotli and zstd with a 400 that depends on optional packages, and a body that
            # is not the gzip it claims with an ERROR and a traceback in the log.
            auto_decompress=False,
        )
        self._limits = limits
        self._gate: _Gate | None = gate
        self._read_at = 0.0
        # Since when the connection owes a request head; None while none is owed (a request
        # is being answered, or the connection is idle between requests).
        self._head_since: float | None = None
        # The body of the request being answered, while the client still owes part of it.
        self._body: StreamReader | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        now = self._loop.time()
        self._read_at = now
        self._head_since = now
        self._arm(now + self._limits.header_timeout)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._leave()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        now = self._loop.time()
        self._read_at = now
        if self._head_since is None:
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                # The first bytes of a next request.
                self._head_since = now
                self._arm(now + self._limits.header_timeout)
        super().data_received(data)
        if self._head_since is not None and self._messages:
            self._head_since = None
            body = self._messages[-1][1]
            if not body.is_eof():
                self._body = body
                self._arm(now + self._limits.body_timeout)

    def _arm(self, due: float) -> None:
        timer = self._timer
        if timer is not None:
            if timer.when() <= due:
                return
            timer.cancel()
        self._timer = self._loop.call_at(due, self._check)

    def _check(self) -> None:
        self._timer = None
        now = self._loop.time()
        limits = self._limits
        if self._head_since is not None:
            due = self._head_since + limits.header_timeout
            if now >= due:
                self._time_out(f"no complete request head within {limits.header_timeout:g}s")
                return
        elif self._body is not None and not self._body.is_eof():
            if self._reading_paused:
                # The edge holds the body back: the client is not the one pausing.
                self._read_at = now
            due = self._read_at + limits.body_timeout
            if now >= due:
                self._time_out(f"the request body paused for {limits.body_timeout:g}s")
                return
        else:
            self._body = None
            return
        self._arm(due)

    def _time_out(self, reason: str) -> None:
        logger.debug("closing the connection of %s: %s", self._peer(), reason)
        self._leave()
        self.force_close()

    def _leave(self) -> None:
        """Count the connection as closed (once), so its place is free at once."""
        if self._gate is not None:
            self._gate.open -= 1
            self._gate = None

    def _peer(self) -> object:
        transport = self.transport
        return transport.get_extra_info("peername") if transport is not None else None

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A request aiohttp could not parse, or a handler left by its client: one line in
        the log, and for the first OpenAI's error JSON; else aiohttp's own answer."""
        if isinstance(exc, HttpProcessingError):
            reason = " ".join((message or exc.message or type(exc).__name__).split())
            reason = reason[:_MAX_REASON]
            logger.info("bad HTTP request from %s: %s", request.remote, reason)
            response: web.StreamResponse = HttpError(
                status,
                f"The request is not valid HTTP: {reason}",
                error_type=SERVER_ERROR if status >= 500 else INVALID_REQUEST,
            ).response()
            response.force_close()
            return response
        if isinstance(exc, ConnectionError):
            logger.debug("client %s left before its answer: %s", request.remote, exc)
            response = web.Response(status=status)
            response.force_close()
            return response
        return super().handle_error(request, status, exc, message)


class _Refusal(asyncio.Protocol):
    """A connection beyond the limit: a 503 and the end of the connection, without reading
    the request. The write side closes at once, so the client reads the answer whole; the
    connection closes when the client closes its side, or after a second at most."""

    __slots__ = ("_answer", "_timer")

    def __init__(self, answer: bytes) -> None:
        self._answer = answer
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream = cast(asyncio.Transport, transport)
        stream.write(self._answer)
        if stream.can_write_eof():
            stream.write_eof()
        self._timer = asyncio.get_running_loop().call_later(_REFUSAL_LINGER, stream.abort)

    def data_received(self, data: bytes) -> None:
        """The request goes unread."""

    def eof_received(self) -> None:
        """The client is done sending: the transport closes."""

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()


def _refusal_bytes(limit: int) -> bytes:
    body = orjson.dumps(
        {
            "error": {
                "message": f"The server has as many connections open as it allows ({limit}). "
                "Retry shortly.",
                "type": SERVER_ERROR,
                "param": None,
                "code": None,
            }
        }
    )
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Retry-After: 1\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body
