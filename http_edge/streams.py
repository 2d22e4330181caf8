"""The event streams an edge relays: how many at once, and how they end when it stops.

Each stream holds a connection, a gRPC stream to the core and a task for as long as its run
lasts, so one edge relays at most `COMPAT_MAX_STREAMS` at once; a request for one more is
refused with a 503 before its run is created (the SDKs retry a 503, which suits a limit that
lifts as streams end). A stopping edge lets open streams end on their own for the grace
period, then tells each relay to end with an `error` event saying that the server is
restarting: a client is never left with a stream cut without a word, and the run itself goes
on in the core.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Final

from aiohttp import web

from http_edge.errors import SERVER_ERROR, HttpError

logger = logging.getLogger(__name__)


class Ending:
    """Put in a relay's queue to wake it when it is told to end."""


ENDING: Final = Ending()

# How long relays told to end may take to write their last event before they are cancelled
# (a client that reads nothing blocks the write).
_END_BOUND: Final = 1.0
_RETRY_AFTER: Final = "1"


class StreamSlot:
    """One open stream: its relay task, and the queue its relay waits on for events."""

    __slots__ = ("_streams", "ending", "queue", "task")

    def __init__(self, streams: EventStreams, task: asyncio.Task[Any] | None) -> None:
        self._streams = streams
        self.task = task
        self.ending = False
        self.queue: asyncio.Queue[Any] | None = None

    def end(self) -> None:
        """Tell the relay to end its stream: it checks `ending` before each write, and a
        relay waiting for an event wakes to `ENDING`."""
        self.ending = True
        if self.queue is not None:
            # A full queue means the relay is not waiting: it sees `ending` soon.
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait(ENDING)

    def close(self) -> None:
        """The stream has ended (idempotent): its place is free."""
        self._streams.closed(self)


class EventStreams:
    """The open streams of one edge, at most `limit` at once."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._open: set[StreamSlot] = set()
        self._closing = False
        self._all_ended: asyncio.Event | None = None

    def open(self) -> StreamSlot | web.Response:
        """A slot for a stream about to start, or the 503 to answer instead."""
        if self._closing:
            return _unavailable("The server is restarting. Retry the request shortly.")
        if len(self._open) >= self._limit:
            return _unavailable(
                f"The server is relaying as many event streams as it can ({self._limit}). "
                "Retry shortly, or create the run without `stream` and poll it."
            )
        slot = StreamSlot(self, asyncio.current_task())
        self._open.add(slot)
        return slot

    def closed(self, slot: StreamSlot) -> None:
        self._open.discard(slot)
        if not self._open and self._all_ended is not None:
            self._all_ended.set()

    def __len__(self) -> int:
        return len(self._open)

    async def end_all(self, grace: float) -> None:
        """Refuse new streams; let open ones end within `grace` seconds, then end each with
        the restart `error` event; cancel the relays that still have not ended."""
        self._closing = True
        if not self._open:
            return
        started = time.monotonic()
        self._all_ended = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self._all_ended.wait()
        if not self._open:
            return
        logger.info(
            "ending %d event streams still open after %.1fs: the server is restarting",
            len(self._open),
            time.monotonic() - started,
        )
        for slot in tuple(self._open):
            slot.end()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_END_BOUND):
                await self._all_ended.wait()
        for slot in tuple(self._open):
            if slot.task is not None:
                slot.task.cancel()


def _unavailable(message: str) -> web.Response:
    response = HttpError(503, message, error_type=SERVER_ERROR).response()
    response.headers["Retry-After"] = _RETRY_AFTER
    return response
