"""The open event streams of limited projects, counted across the cores that share a
PostgreSQL database (`compat_core.ratelimit` counts them in memory on SQLite).

Each core keeps a row per limited project in `stream_slots` that says how many streams it has
open there. A stream opens after one transaction that takes the project's lock, sums the other
cores' rows and writes the core's own (`Store.take_stream_slot`), so two cores never both take
the last slot; its end rewrites the row in the background (closes that pile up meanwhile go in
one write). The row is always written as the core's count in memory, one write at a time per
project (`_Slot.writing`), so a write that failed is mended by the next one.

The core rewrites its rows every `slot_seconds / RENEWALS`; a row not rewritten within
`slot_seconds` no longer counts, so the streams of a core that died free their slots then, and
a stopping core deletes its rows at once. A core paused past that time is not counted
meanwhile: the others may admit past the limit until its streams end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from compat_core.store.base import Store
from compat_core.tasks import cancel_and_wait, every

log = logging.getLogger(__name__)

# A core rewrites its rows this many times in the time they count unrenewed.
RENEWALS: Final = 4


@dataclass
class _Slot:
    """A limited project's streams open on this core, and its row in `stream_slots`."""

    open: int = 0
    # Serialises this core's writes of the row, so that each writes the count as it is
    # then and none overwrites a later one.
    writing: asyncio.Lock = field(default_factory=asyncio.Lock)
    # The write that will say the closes since the last one.
    syncing: asyncio.Task[None] | None = None


class StreamSlots:
    """This core's open streams of limited projects, and its rows that share them."""

    def __init__(
        self, store: Store, core_id: str, slot_seconds: float, clock: Callable[[], float]
    ) -> None:
        self._store = store
        self._core_id = core_id
        self._slot_ms = int(slot_seconds * 1000)
        self._renewal = slot_seconds / RENEWALS
        self._clock = clock
        self._slots: dict[str, _Slot] = {}
        self._syncs: set[asyncio.Task[None]] = set()
        self._renewer: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._renewer = asyncio.create_task(
            every(self._renewal, self._renew, "renewing this core's stream slots failed"),
            name="stream-slots",
        )

    async def close(self) -> None:
        """Stop renewing, and free this core's slots at once (its streams are over)."""
        if self._renewer is not None:
            await cancel_and_wait(self._renewer)
            self._renewer = None
        if self._syncs:
            await asyncio.gather(*self._syncs, return_exceptions=True)
        if self._slots:
            try:
                await self._store.release_stream_slots(self._core_id)
            except Exception:
                log.exception("could not free this core's stream slots; they expire anyway")

    async def take(self, project: str, limit: int) -> tuple[bool, int]:
        """Count one more stream of `project` on this core if the cores together have fewer
        than `limit` open. Returns whether it did, and how many they had open."""
        slot = self._slots.get(project)
        if slot is None:
            slot = self._slots[project] = _Slot()
        async with slot.writing:
            now_ms = self._now_ms()
            taken, others = await self._store.take_stream_slot(
                project, self._core_id, slot.open, limit, now_ms, now_ms + self._slot_ms
            )
            open_now = others + slot.open
            if taken:
                slot.open += 1
            return taken, open_now

    def give_back(self, project: str) -> None:
        """A stream `take` counted ended; the core's row says so soon after."""
        slot = self._slots[project]
        slot.open -= 1
        if slot.syncing is None:
            slot.syncing = asyncio.get_running_loop().create_task(self._sync(project, slot))
            self._syncs.add(slot.syncing)
            slot.syncing.add_done_callback(self._syncs.discard)

    async def purge(self) -> None:
        """Forget the rows that no longer count (of cores that died)."""
        await self._store.purge_stream_slots(self._now_ms())

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def _sync(self, project: str, slot: _Slot) -> None:
        async with slot.writing:
            slot.syncing = None
            await self._write(project, slot)

    async def _write(self, project: str, slot: _Slot) -> None:
        """The core's row of `project` as its count is now (the caller holds `writing`)."""
        expires_at_ms = self._now_ms() + self._slot_ms
        try:
            await self._store.set_stream_slot(project, self._core_id, slot.open, expires_at_ms)
        except Exception:
            # The row says more streams than are open until the next renewal rewrites it.
            log.exception("could not write this core's open streams of project %s", project)

    async def _renew(self) -> None:
        """Rewrite the rows of the projects with streams open here, so that they keep
        counting while this core lives (and say its count, should a write have failed)."""
        for project, slot in list(self._slots.items()):
            if slot.open:
                async with slot.writing:
                    await self._write(project, slot)
