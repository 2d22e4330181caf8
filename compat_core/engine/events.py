"""Each run's event stream: an ordered log that any number of watchers read at their own pace.

The engine publishes every event once, after the state it announces is stored; streaming RPCs
and `WatchRun` subscribe from a sequence number. A slow reader never slows the run down: it
catches up from the log, and consecutive text pieces of one message are merged into one event
for it (fewer gRPC messages and SSE writes, same concatenated text).

Memory. Each text piece is published as a whole `RunEvent`, and upb gives every message an
arena of its own: a piece of a few characters held about 1 KB (50 long runs kept 1.9 GB for
the two minutes their logs outlive them). So a log keeps events as published only briefly:
every `COMPACT_EVERY` events, consecutive pieces of one content part become one `_TextRun`
(the first piece's event, the text, and where each piece ends), about the size of the text
itself. A reader gets from it what `coalesce` would have given it, from any sequence, even one
in the middle of the run of pieces. And the hub keeps an estimate of its logs' bytes: past
`max_bytes`, finished logs go before their `RETAIN_SECONDS` are up, oldest first; a watcher
that asks for one later gets the run's stored state instead, as it does after that time. A
watcher already reading a log keeps it until it is done.
"""

from __future__ import annotations

import asyncio
import bisect
import sys
from array import array
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import cast

from compat_core.v1 import runs_pb2

# How long a finished run's log stays for late watchers before only its stored state remains.
RETAIN_SECONDS = 120.0
# What all logs may hold before finished ones go early (COMPAT_EVENT_LOG_MAX_BYTES).
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
# Events kept as published in a log before its text pieces are merged. A running run's log
# holds up to this many events at about 1 KB each (16 MB for 1,000 streams at once); merging
# costs about 1 us per event, spent once per event whatever the interval.
COMPACT_EVERY = 16
# An event as the hub holds it, beyond twice its encoded size (upb's arena grows by doubling):
# measured at 0.8 to 1.1 KB for small events. Events not merged yet count this much.
EVENT_BYTES = 1024
# A `_TextRun` beyond its first event, text and offsets: the object, its list and its array.
TEXT_RUN_BYTES = 256

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


class _TextRun:
    """Consecutive text pieces of one content part of one message, as one entry of a log.

    `head` is the first piece's event (its other fields are every piece's); `first` its
    sequence, and the pieces have the sequences after it in turn. `ends[i]` is the length of
    the text up to and with the piece of sequence `first + i`. Text comes in `chunks`, one per
    merge, joined when a reader needs it.
    """

    __slots__ = ("bytes", "chunks", "ends", "first", "head", "key")

    def __init__(self, head: runs_pb2.RunEvent, key: tuple[str, int]) -> None:
        self.head = head
        self.key = key
        self.first = head.sequence
        self.chunks: list[str] = []
        self.ends = array("I")
        self.bytes = TEXT_RUN_BYTES + _event_bytes(head)

    @property
    def last(self) -> int:
        return self.first + len(self.ends) - 1

    def extend(self, pieces: list[str]) -> int:
        """Append the texts of the next pieces; the bytes this adds."""
        end = self.ends[-1] if self.ends else 0
        for piece in pieces:
            end += len(piece)
            self.ends.append(end)
        chunk = "".join(pieces)
        self.chunks.append(chunk)
        added = sys.getsizeof(chunk) + 8 + self.ends.itemsize * len(pieces)
        self.bytes += added
        return added

    def after(self, position: int) -> runs_pb2.RunEvent:
        """One delta with the text of the pieces after sequence `position` (< `last`)."""
        if len(self.chunks) > 1:
            self.chunks[:] = ["".join(self.chunks)]
        start = self.ends[position - self.first] if position >= self.first else 0
        event = runs_pb2.RunEvent()
        event.CopyFrom(self.head)
        event.sequence = self.last
        event.thread_message_delta.content[0].part.text.value = self.chunks[0][start:]
        return event


_Entry = runs_pb2.RunEvent | _TextRun


@dataclass(eq=False)
class _RunLog:
    # The sequence just before the first event kept here: a run another core executed before
    # goes on numbering where that core stopped.
    base: int = 0
    # The newest event's sequence.
    last: int = 0
    # The log: events, and text runs in place of the pieces they merged. Those from index
    # `loose` on are as published (not merged yet), one per sequence after `loose_base`.
    entries: list[_Entry] = field(default_factory=list)
    loose: int = 0
    loose_base: int = 0
    # What the entries hold in memory, estimated.
    bytes: int = 0
    # Watchers waiting for the next event. Futures rather than an `asyncio.Event` made anew
    # for every event: the relay publishes one per token.
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    finished: bool = False
    # The end of a finished log's retention; cancelled when it goes early, so that the timer
    # does not keep it in memory until then.
    expiry: asyncio.TimerHandle | None = None

    def __post_init__(self) -> None:
        self.last = self.loose_base = self.base

    def wake(self) -> None:
        waiters = self.waiters
        if waiters:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            waiters.clear()

    def events_after(self, position: int) -> list[runs_pb2.RunEvent]:
        """The events after sequence `position` (at least `base`), text runs as deltas."""
        entries = self.entries
        if position >= self.loose_base:
            return cast(list[runs_pb2.RunEvent], entries[self.loose + position - self.loose_base :])
        index = bisect.bisect_right(entries, position, 0, self.loose, key=_last_sequence)
        events = [
            entry.after(position) if isinstance(entry, _TextRun) else entry
            for entry in entries[index : self.loose]
        ]
        events += cast(list[runs_pb2.RunEvent], entries[self.loose :])
        return events

    def append(self, event: runs_pb2.RunEvent) -> int:
        """Add the next event (numbering it), merging text pieces every `COMPACT_EVERY`
        events; the change in bytes.

        Until the next merge an event counts as `EVENT_BYTES`: measuring it would cost about
        as much as merging it. The merge counts what stays of it.
        """
        self.last += 1
        event.sequence = self.last
        entries = self.entries
        entries.append(event)
        self.bytes += EVENT_BYTES
        if len(entries) - self.loose < COMPACT_EVERY:
            return EVENT_BYTES
        return EVENT_BYTES + self.compact()

    def compact(self) -> int:
        """Merge the loose events' text pieces into text runs; the change in bytes."""
        entries = self.entries
        loose = cast(list[runs_pb2.RunEvent], entries[self.loose :])
        if not loose:
            return 0
        del entries[self.loose :]
        before = len(loose) * EVENT_BYTES
        after = 0
        tail = entries[-1] if entries else None
        run = tail if isinstance(tail, _TextRun) else None
        pieces: list[str] = []
        for event in loose:
            piece = _text_piece(event)
            if piece is not None and run is not None and piece[0] == run.key:
                pieces.append(piece[1])
                continue
            if run is not None and pieces:
                after += run.extend(pieces)
            if piece is None:
                run, pieces = None, []
                entries.append(event)
                after += _event_bytes(event)
            else:
                run, pieces = _TextRun(event, piece[0]), [piece[1]]
                entries.append(run)
                after += run.bytes
        if run is not None and pieces:
            after += run.extend(pieces)
        self.loose = len(entries)
        self.loose_base = self.last
        change = after - before
        self.bytes += change
        return change


class RunEventHub:
    """Event logs of the runs this process executes, by run ID.

    `sink`, when set, is handed every published event too (the stored log that other cores
    read, see `stored_events`); `on_finished`, the run of each final status event (for the
    metrics: a run ends once, announced by the core that ended it). `max_bytes` bounds what
    finished logs may add to what the logs of running runs hold (see the module's docstring).
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._logs: dict[str, _RunLog] = {}
        # Finished logs still here, oldest first: the first to go when bytes run short.
        self._retained: dict[str, _RunLog] = {}
        self._max_bytes = max_bytes
        self._bytes = 0
        self.sink: Callable[[str, runs_pb2.RunEvent], None] | None = None
        self.on_finished: Callable[[runs_pb2.Run], None] | None = None

    @property
    def bytes(self) -> int:
        """What every log here holds, estimated."""
        return self._bytes

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
            self._drop(run_id, log)
        self._logs[run_id] = _RunLog(base=after_sequence)

    def publish(self, run_id: str, event: runs_pb2.RunEvent) -> runs_pb2.RunEvent:
        """Append an event (its `sequence` is assigned here) and wake the watchers."""
        log = self._logs.get(run_id)
        if log is None:
            log = self._logs[run_id] = _RunLog()
        self._bytes += log.append(event)
        kind = event.WhichOneof("event")
        if kind in TERMINAL_EVENTS:
            self._finish(run_id, log)
            if self.on_finished is not None:
                self.on_finished(getattr(event, kind))
        if self._bytes > self._max_bytes and self._retained:
            self._shed()
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

    def follow_batches(
        self, run_id: str, after_sequence: int = 0
    ) -> AsyncIterator[list[runs_pb2.RunEvent]]:
        """Events after `after_sequence` up to the next stopping event, then `done`, in lists
        of those that were there together (text deltas merged).

        A watcher that sends each list at once makes one round trip where there were several:
        a run's first events are published within a few hundred microseconds. The log is taken
        now, not at the first read: a stream that subscribes as it starts a run reads all of
        it, even if the run ends and its log is dropped before the stream's first read.
        """
        log = self._logs.get(run_id)
        if log is None:
            log = self._logs[run_id] = _RunLog()
        return self._follow(log, after_sequence)

    async def _follow(
        self, log: _RunLog, after_sequence: int
    ) -> AsyncIterator[list[runs_pb2.RunEvent]]:
        position = max(after_sequence, log.base)
        loop = asyncio.get_running_loop()
        while True:
            if position < log.last:
                pending = log.events_after(position)
                position = log.last
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

    def _finish(self, run_id: str, log: _RunLog) -> None:
        """The run ended: its log, merged, stays for late watchers while time and bytes allow."""
        log.finished = True
        self._bytes += log.compact()
        self._retained.pop(run_id, None)
        self._retained[run_id] = log
        if log.expiry is not None:
            log.expiry.cancel()
        log.expiry = asyncio.get_running_loop().call_later(RETAIN_SECONDS, self._drop, run_id, log)

    def _shed(self) -> None:
        """Drop finished logs, oldest first, until all logs fit in `max_bytes` again."""
        while self._bytes > self._max_bytes and self._retained:
            run_id, log = next(iter(self._retained.items()))
            self._drop(run_id, log)

    def _drop(self, run_id: str, log: _RunLog) -> None:
        """Forget `log`, if it is still the run's."""
        if log.expiry is not None:
            log.expiry.cancel()
            log.expiry = None
        if self._retained.get(run_id) is log:
            del self._retained[run_id]
        if self._logs.get(run_id) is log:
            del self._logs[run_id]
            self._bytes -= log.bytes


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


def _text_piece(event: runs_pb2.RunEvent) -> tuple[tuple[str, int], str] | None:
    """A text delta's `_text_delta_key` and its text, in one look; None for other events.

    It runs once for every event a log keeps (most are text deltas), so each field is read
    once: every access to a nested message makes a Python object.
    """
    if not event.HasField("thread_message_delta"):
        return None
    delta = event.thread_message_delta
    content = delta.content
    if len(content) != 1:
        return None
    piece = content[0]
    part = piece.part
    text = part.text
    if text.annotations or not part.HasField("text"):
        return None
    return (delta.id, piece.index), text.value


def _last_sequence(entry: _Entry) -> int:
    return entry.last if isinstance(entry, _TextRun) else entry.sequence


def _event_bytes(event: runs_pb2.RunEvent) -> int:
    return EVENT_BYTES + 2 * event.ByteSize()


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
