"""Each run's event stream: an ordered log that any number of watchers read at their own pace.

The engine publishes every event once, after the state it announces is stored; streaming RPCs
and `WatchRun` subscribe from a sequence number. A slow reader never slows the run down: it
catches up from the log, and consecutive text pieces of one message are merged into one event
for it (fewer gRPC messages and SSE writes, same concatenated text).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from compat_core.v1 import runs_pb2

# How long a finished run's log stays for late watchers before only its stored state remains.
RETAIN_SECONDS = 120.0

STOPPING_EVENTS = frozenset(
    {
        "thread_run_requires_action",
        "thread_run_completed",
        "thread_run_incomplete",
        "thread_run_failed",
        "thread_run_cancelled",
        "thread_run_expired",
    }
)
TERMINAL_EVENTS = STOPPING_EVENTS - {"thread_run_requires_action"}

# The event that announces a run's current status, for watchers that join late.
STATUS_EVENTS = {
    runs_pb2.RUN_STATUS_QUEUED: "thread_run_queued",
    runs_pb2.RUN_STATUS_IN_PROGRESS: "thread_run_in_progress",
    runs_pb2.RUN_STATUS_REQUIRES_ACTION: "thread_run_requires_action",
    runs_pb2.RUN_STATUS_CANCELLING: "thread_run_cancelling",
    runs_pb2.RUN_STATUS_CANCELLED: "thread_run_cancelled",
    runs_pb2.RUN_STATUS_FAILED: "thread_run_failed",
    runs_pb2.RUN_STATUS_COMPLETED: "thread_run_completed",
    runs_pb2.RUN_STATUS_INCOMPLETE: "thread_run_incomplete",
    runs_pb2.RUN_STATUS_EXPIRED: "thread_run_expired",
}


@dataclass
class _RunLog:
    # The sequence just before the first event kept here: a run another core executed before
    # goes on numbering where that core stopped.
    base: int = 0
    events: list[runs_pb2.RunEvent] = field(default_factory=list)
    # Watchers waiting for the next event. Futures rather than an `asyncio.Event` made anew
    # for every event: the relay publishes one per token.
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    finished: bool = False

    @property
    def last(self) -> int:
        return self.base + len(self.events)

    def wake(self) -> None:
        waiters = self.waiters
        if waiters:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            waiters.clear()


class RunEventHub:
    """Event logs of the runs this process executes, by run ID.

    `sink`, when set, is handed every published event too (the stored log that other cores
    read, see `stored_events`).
    """

    def __init__(self) -> None:
        self._logs: dict[str, _RunLog] = {}
        self.sink: Callable[[str, runs_pb2.RunEvent], None] | None = None

    def open(self, run_id: str, after_sequence: int) -> None:
        """Make sure the run's log goes on after `after_sequence` (what other cores announced).

        A log here that is already that far stays; an older one (another core executed the run
        since) is ended, so its watchers stop instead of waiting on it forever.
        """
        log = self._logs.get(run_id)
        if log is not None:
            if log.last >= after_sequence:
                return
            log.finished = True
            log.wake()
        self._logs[run_id] = _RunLog(base=after_sequence)

    def publish(self, run_id: str, event: runs_pb2.RunEvent) -> runs_pb2.RunEvent:
        """Append an event (its `sequence` is assigned here) and wake the watchers."""
        log = self._logs.setdefault(run_id, _RunLog())
        event.sequence = log.last + 1
        log.events.append(event)
        if event.WhichOneof("event") in TERMINAL_EVENTS:
            log.finished = True
            asyncio.get_running_loop().call_later(RETAIN_SECONDS, self._forget, run_id, log)
        log.wake()
        if self.sink is not None:
            self.sink(run_id, event)
        return event

    def last_sequence(self, run_id: str) -> int:
        """The sequence of the newest event of a run, 0 if none is known."""
        log = self._logs.get(run_id)
        return log.last if log else 0

    def has_log(self, run_id: str) -> bool:
        return run_id in self._logs

    async def follow_batches(
        self, run_id: str, after_sequence: int = 0
    ) -> AsyncIterator[list[runs_pb2.RunEvent]]:
        """Events after `after_sequence` up to the next stopping event, then `done`, in lists
        of those that were there together (text deltas merged).

        A watcher that sends each list at once makes one round trip where there were several:
        a run's first events are published within a few hundred microseconds.
        """
        log = self._logs.setdefault(run_id, _RunLog())
        position = max(after_sequence, log.base)
        loop = asyncio.get_running_loop()
        while True:
            pending = log.events[position - log.base :]
            if pending:
                position += len(pending)
                batch = coalesce(pending)
                for index, event in enumerate(batch):
                    if event.WhichOneof("event") in STOPPING_EVENTS:
                        yield [*batch[: index + 1], done_event(event.sequence)]
                        return
                yield batch
                continue
            if log.finished:
                return
            waiter = loop.create_future()
            log.waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter.cancelled() and waiter in log.waiters:
                    # A watcher that left: only a later event would clear it otherwise.
                    log.waiters.remove(waiter)

    def _forget(self, run_id: str, log: _RunLog) -> None:
        if self._logs.get(run_id) is log:
            del self._logs[run_id]


def done_event(sequence: int) -> runs_pb2.RunEvent:
    """The `done` event that closes every stream."""
    return runs_pb2.RunEvent(sequence=sequence, done=runs_pb2.StreamDone())


def coalesce(events: list[runs_pb2.RunEvent]) -> list[runs_pb2.RunEvent]:
    """Merge runs of text deltas to the same content part of the same message.

    Each run of mergeable deltas is copied once and its texts joined once: a reader that fell
    far behind a fast reply would otherwise copy the growing text for every piece.
    """
    if len(events) == 1:
        return events
    merged: list[runs_pb2.RunEvent] = []
    index = 0
    while index < len(events):
        event = events[index]
        key = _text_delta_key(event)
        end = index + 1
        if key is not None:
            while end < len(events) and _text_delta_key(events[end]) == key:
                end += 1
        if end - index == 1:
            merged.append(event)
        else:
            combined = runs_pb2.RunEvent()
            combined.CopyFrom(event)
            combined.sequence = events[end - 1].sequence
            combined.thread_message_delta.content[0].part.text.value = "".join(
                piece.thread_message_delta.content[0].part.text.value for piece in events[index:end]
            )
            merged.append(combined)
        index = end
    return merged


def _text_delta_key(event: runs_pb2.RunEvent) -> tuple[str, int] | None:
    if event.WhichOneof("event") != "thread_message_delta":
        return None
    delta = event.thread_message_delta
    if len(delta.content) != 1:
        return None
    piece = delta.content[0]
    if piece.part.WhichOneof("part") != "text" or piece.part.text.annotations:
        return None
    return delta.id, piece.index
