"""Clearing away what a crashed process left behind, for as long as a core runs.

A process killed during an upload leaves its temporary file in the files directory, and no
one else would ever remove it (280 MB of them were seen after a few crashes). Each core
sweeps when it starts, which clears what its own previous run left, and then every
`COMPAT_SWEEP_INTERVAL_SECONDS`, which clears what another core that shares the directory
left without being restarted. `BlobStore.sweep` says why a live upload is never touched.

The rest of a crash's leftovers clear themselves: leases run out, stored run events are
purged by the run engine, the edge spools uploads to anonymous temporary files (unlinked
from the start, gone with the process), and SQLite's `-wal` and `-shm` files belong to the
database.
"""

from __future__ import annotations

import asyncio
import logging

from compat_core.store.blobs import BlobStore
from compat_core.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class Sweeper:
    """Sweeps `blobs` at `start()` and every `interval` seconds until `stop()`."""

    def __init__(self, blobs: BlobStore, interval: float) -> None:
        self._blobs = blobs
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Sweep once now (before the core serves), then in the background."""
        await self.sweep()
        self._task = asyncio.create_task(self._sweep_periodically(), name="orphan-sweeper")

    async def stop(self) -> None:
        if self._task is None:
            return
        await cancel_and_wait(self._task)
        self._task = None

    async def sweep(self) -> int:
        """One sweep; the number of files removed. A failure is logged, never raised: the
        next sweep tries again."""
        try:
            removed = await self._blobs.sweep()
        except OSError:
            log.exception("sweeping %s for interrupted uploads failed", self._blobs.root)
            return 0
        if removed:
            log.info(
                "removed %d temporary file(s) of interrupted uploads from %s",
                removed,
                self._blobs.root,
            )
        return removed

    async def _sweep_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.sweep()
