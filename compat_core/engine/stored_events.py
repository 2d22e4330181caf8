"""Run events across cores: the executing core stores them, a watcher on any other core reads.

Only used when several cores share the database. The core that executes a run appends what
its hub publishes to the store in small batches (text pieces of one message merged, as for a
slow reader), and each batch's commit notifies the other cores; a watcher there reads the log
after its last sequence whenever it is notified, and every `POLL_SECONDS` in case a notice was
lost. A watcher also checks the run itself when the log stays quiet, so a run that stopped
without its last events reaching the log (its core died) still ends the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from itertools import groupby

from compat_core import tenancy
from compat_core.engine.events import STATUS_EVENTS, STOPPING_EVENTS, coalesce, done_event
from compat_core.store.base import Store, StoredEvent
from compat_core.v1 import runs_pb2

log = logging.getLogger(__name__)

# How long events gather before they are written: watchers elsewhere lag by about this much,
# and a fast stream costs one write per interval instead of one per piece.
FLUSH_SECONDS = 0.02
POLL_SECONDS = 0.5
READ_BATCH = 500
# Stored events outlive their run by this long; a watcher that comes later gets the run's state.
RETAIN_SECONDS = 3600


class StoredEventLog:
    """This core's side of the stored log: writing its runs' events, following others'."""

    def __init__(self, store: Store, now: Callable[[], int]) -> None:
        self._store = store
        self._now = now
        self._pending: list[StoredEvent] = []
        self._writer: asyncio.Task[None] | None = None
        self._waiters: dict[str, set[asyncio.Event]] = {}

    def add(self, run_id: str, event: runs_pb2.RunEvent) -> None:
        """Queue an event this core published (the hub's sink)."""
        self._pending.append(StoredEvent(run_id, event, self._now()))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_soon(), name="stored-events-writer")

    async def flush(self) -> None:
        """Wait until every queued event is written (or given up on)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    def wake(self, run_id: str) -> None:
        """New events of `run_id` are stored (another core's notice)."""
        for waiter in self._waiters.get(run_id, ()):
            waiter.set()

    async def _write_soon(self) -> None:
        # Batches mix the events of runs of every project (events carry none of their own).
        with tenancy.all_projects():
            await self._write_batches()

    async def _write_batches(self) -> None:
        await asyncio.sleep(FLUSH_SECONDS)
        # One writer at a time, so a run's events are committed in sequence order and a
        # reader that saw sequence N never misses a smaller one committed later.
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._store.append_events(_merged(batch))
            except Exception:
                log.exception(
                    "storing %d run events failed; watchers on other cores miss them", len(batch)
                )

    async def follow(
        self,
        run_id: str,
        after_sequence: int,
        current: Callable[[], Awaitable[runs_pb2.Run | None]],
    ) -> AsyncIterator[runs_pb2.RunEvent]:
        """Stored events after `after_sequence` up to the next stopping event, then `done`.

        `current` reads the run as stored, for when the log stays quiet.
        """
        position = after_sequence
        waiters = self._waiters.setdefault(run_id, set())
        waiter = asyncio.Event()
        waiters.add(waiter)
        try:
            while True:
                waiter.clear()
                events = await self._store.read_events(run_id, position, READ_BATCH)
                if events:
                    position = events[-1].sequence
                    for event in coalesce(events):
                        yield event
                        if event.WhichOneof("event") in STOPPING_EVENTS:
                            yield done_event(event.sequence)
                            return
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(POLL_SECONDS):
                        await waiter.wait()
                    continue
                run = await current()
                if run is None:
                    yield done_event(position)
                    return
                name = STATUS_EVENTS[run.status]
                if name in STOPPING_EVENTS and not await self._store.read_events(
                    run_id, position, 1
                ):
                    state = runs_pb2.RunEvent(sequence=position)
                    getattr(state, name).CopyFrom(run)
                    yield state
                    yield done_event(position)
                    return
        finally:
            waiters.discard(waiter)
            if not waiters:
                self._waiters.pop(run_id, None)


def _merged(batch: list[StoredEvent]) -> list[StoredEvent]:
    """The batch with consecutive text pieces of each run merged (fewer rows, same text)."""
    merged: list[StoredEvent] = []
    by_run = sorted(batch, key=lambda stored: stored.run_id)
    for run_id, group in groupby(by_run, key=lambda stored: stored.run_id):
        stored = list(group)
        created_at = stored[-1].created_at
        merged.extend(
            StoredEvent(run_id, event, created_at) for event in coalesce([s.event for s in stored])
        )
    return merged
