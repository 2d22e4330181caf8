"""Each run's event stream: an ordered log that any number of watchers read at their own pace.

The engine publishes every event once, after the state it announces is stored; streaming RPCs
and `WatchRun` subscribe from a sequence number. A slow reader never slows the run down: it
catches up from the log, and consecutive text pieces of one message are merged into one event
for it (fewer gRPC messages and SSE writes, same concatenated text).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
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


@dataclass
class _RunLog:
    events: list[runs_pb2.RunEvent] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    finished: bool = False


class RunEventHub:
    """Event logs of the runs this process executes, by run ID."""

    def __init__(self) -> None:
        self._logs: dict[str, _RunLog] = {}

    def publish(self, run_id: str, event: runs_pb2.RunEvent) -> runs_pb2.RunEvent:
        """Append an event (its `sequence` is assigned here) and wake the watchers."""
        log = self._logs.setdefault(run_id, _RunLog())
        event.sequence = len(log.events) + 1
        log.events.append(event)
        if event.WhichOneof("event") in TERMINAL_EVENTS:
            log.finished = True
            asyncio.get_running_loop().call_later(RETAIN_SECONDS, self._forget, run_id, log)
        log.changed.set()
        log.changed = asyncio.Event()
        return event

    def last_sequence(self, run_id: str) -> int:
        """The sequence of the newest event of a run, 0 if none is known."""
        log = self._logs.get(run_id)
        return len(log.events) if log else 0

    def has_log(self, run_id: str) -> bool:
        return run_id in self._logs

    async def follow(
        self, run_id: str, after_sequence: int = 0
    ) -> AsyncIterator[runs_pb2.RunEvent]:
        """Events after `after_sequence` up to the next stopping event, then `done`."""
        log = self._logs.setdefault(run_id, _RunLog())
        position = after_sequence
        while True:
            pending = log.events[position:]
            if pending:
                position += len(pending)
                for event in _coalesce(pending):
                    yield event
                    if event.WhichOneof("event") in STOPPING_EVENTS:
                        yield done_event(event.sequence)
                        return
                continue
            if log.finished:
                return
            await log.changed.wait()

    def _forget(self, run_id: str, log: _RunLog) -> None:
        if self._logs.get(run_id) is log:
            del self._logs[run_id]


def done_event(sequence: int) -> runs_pb2.RunEvent:
    """The `done` event that closes every stream."""
    return runs_pb2.RunEvent(sequence=sequence, done=runs_pb2.StreamDone())


def _coalesce(events: list[runs_pb2.RunEvent]) -> list[runs_pb2.RunEvent]:
    """Merge runs of text deltas to the same content part of the same message."""
    merged: list[runs_pb2.RunEvent] = []
    for event in events:
        previous = merged[-1] if merged else None
        if (
            previous is not None
            and _text_delta_key(previous) is not None
            and _text_delta_key(previous) == _text_delta_key(event)
        ):
            combined = runs_pb2.RunEvent()
            combined.CopyFrom(previous)
            combined.sequence = event.sequence
            part = combined.thread_message_delta.content[0].part.text
            part.value += event.thread_message_delta.content[0].part.text.value
            merged[-1] = combined
        else:
            merged.append(event)
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
