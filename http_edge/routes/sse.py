"""Relay of a run's `RunEvent` stream as OpenAI's server-sent events.

A pump task reads the gRPC stream into a bounded queue while the relay writes to the client:
events that are already queued go out together in one write (the core batches deltas, and so
does the edge), a `: ping` comment keeps proxies from timing out a quiet stream, and the
queue's bound passes a slow client's back-pressure on to gRPC flow control. A client that
goes away only ends the relay: the run belongs to the core and goes on there.
`http_edge.streams` bounds how many streams are open at once, and ends them when the edge
stops.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeAlias

import grpc
import orjson
from aiohttp import web

from compat_core.v1 import runs_pb2
from http_edge.convert.runs import EVENT_NAMES, EVENT_RENDERERS, DeltaIndexes
from http_edge.errors import SERVER_ERROR, from_rpc_error
from http_edge.routes.context import EVENT_STREAMS, prepare_stream
from http_edge.streams import Ending, StreamSlot

logger = logging.getLogger(__name__)

KEEPALIVE_SECONDS: Final = 15.0
SSE_HEADERS: Final = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
PING: Final = b": ping\n\n"
DONE: Final = b"event: done\ndata: [DONE]\n\n"

_QUEUE_DEPTH: Final = 256
_MAX_BATCH: Final = 64
_HEADS: Final = {field: f"event: {name}\ndata: ".encode() for field, name in EVENT_NAMES.items()}
_ERROR_HEAD: Final = b"event: error\ndata: "


class _End:
    """The stream closed cleanly."""


_END: Final = _End()
_Item: TypeAlias = "runs_pb2.RunEvent | grpc.aio.AioRpcError | _End | Ending"


def render_event(event: runs_pb2.RunEvent, indexes: DeltaIndexes | None = None) -> bytes:
    """One event as SSE bytes; an event with nothing set renders as nothing."""
    field = event.WhichOneof("event")
    if field is None:
        return b""
    if field == "done":
        return DONE
    data = EVENT_RENDERERS[field](getattr(event, field), indexes)
    return _HEADS[field] + orjson.dumps(data) + b"\n\n"


def render_rpc_error(err: grpc.aio.AioRpcError) -> bytes:
    """A stream that broke after it started: an `error` event, flat and nested, as the SDKs
    read it (the HTTP status is already sent)."""
    return _error_event(from_rpc_error(err).fields())


def _error_event(fields: dict[str, str | None]) -> bytes:
    return _ERROR_HEAD + orjson.dumps({**fields, "error": fields}) + b"\n\n"


_SERVER_ERROR_EVENT: Final = _error_event(
    {
        "message": "The server had an error while processing your request.",
        "type": SERVER_ERROR,
        "param": None,
        "code": None,
    }
)
_RESTARTING_EVENT: Final = _error_event(
    {
        "message": "The server is restarting, so this event stream ends here. The run goes "
        "on: retrieve it to follow its progress.",
        "type": SERVER_ERROR,
        "param": None,
        "code": None,
    }
)


async def relay_run_events(request: web.Request, start: Callable[[], Any]) -> web.StreamResponse:
    """Answer with the events of the server-streaming `RunEvent` RPC that `start` calls.

    The RPC starts only once the edge has room for one more stream (else the answer is a
    503 and no run is created). Its first event is awaited before any byte is sent, so an
    RPC that fails at once (unknown thread, bad argument, unimplemented) raises here and is
    answered as the usual JSON error with its proper status.
    """
    slot = request.app[EVENT_STREAMS].open()
    if not isinstance(slot, StreamSlot):
        return slot
    try:
        return await _answer_events(request, start(), slot)
    finally:
        slot.close()


async def _answer_events(request: web.Request, call: Any, slot: StreamSlot) -> web.StreamResponse:
    try:
        first = await call.read()
    except BaseException:
        call.cancel()
        raise
    response = web.StreamResponse(headers=SSE_HEADERS)
    await prepare_stream(request, response)
    if first is grpc.aio.EOF:
        await response.write_eof()
        return response
    queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=_QUEUE_DEPTH)
    pump = asyncio.create_task(_pump(call, queue))
    slot.queue = queue
    try:
        await _relay(response, first, queue, slot)
    except ConnectionError:
        logger.debug("client left the event stream of %s", request.path)
    except Exception:
        # The status line is sent, so the route's guard cannot answer a JSON error any more:
        # end the stream with an `error` event instead.
        logger.exception("event relay of %s failed", request.path)
        with contextlib.suppress(ConnectionError):
            await response.write_eof(_SERVER_ERROR_EVENT)
    finally:
        # The stream is over for its client, who may ask for the next one at once.
        slot.close()
        pump.cancel()
        call.cancel()
        await asyncio.gather(pump, return_exceptions=True)
    return response


async def _pump(call: Any, queue: asyncio.Queue[_Item]) -> None:
    try:
        while True:
            event = await call.read()
            if event is grpc.aio.EOF:
                break
            for inner in _unbatched(event):
                await queue.put(inner)
    except grpc.aio.AioRpcError as err:
        await queue.put(err)
        return
    await queue.put(_END)


def _unbatched(event: runs_pb2.RunEvent) -> Sequence[runs_pb2.RunEvent]:
    """The events a message carries: a batch's, in order, or itself."""
    if event.HasField("batch"):
        return event.batch.events
    return (event,)


def _render(item: _Item, indexes: DeltaIndexes) -> tuple[bytes, bool]:
    """An item's bytes, and whether the stream ends with it."""
    if isinstance(item, runs_pb2.RunEvent):
        chunk = render_event(item, indexes)
        return chunk, chunk is DONE
    if isinstance(item, grpc.aio.AioRpcError):
        return render_rpc_error(item), True
    if isinstance(item, Ending):
        return _RESTARTING_EVENT, True
    return b"", True


async def _relay(
    response: web.StreamResponse,
    first: runs_pb2.RunEvent,
    queue: asyncio.Queue[_Item],
    slot: StreamSlot,
) -> None:
    indexes = DeltaIndexes()
    ready: collections.deque[_Item] = collections.deque(_unbatched(first))
    while True:
        if slot.ending:
            await response.write_eof(_RESTARTING_EVENT)
            return
        if not ready:
            try:
                async with asyncio.timeout(KEEPALIVE_SECONDS):
                    ready.append(await queue.get())
            except TimeoutError:
                await response.write(PING)
                continue
        chunks: list[bytes] = []
        finished = False
        waited = False
        while not finished and len(chunks) < _MAX_BATCH:
            if not ready:
                if queue.empty() and not waited:
                    # One turn of the loop (not more: events that trickle in one a turn would
                    # hold the write back) lets the pump queue events gRPC already received.
                    waited = True
                    await asyncio.sleep(0)
                try:
                    ready.append(queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            chunk, finished = _render(ready.popleft(), indexes)
            chunks.append(chunk)
        if finished:
            # The last events and the end of the body in one write: one system call, and
            # one wake-up of the client, less per stream.
            await response.write_eof(b"".join(chunks))
            return
        await response.write(b"".join(chunks))
