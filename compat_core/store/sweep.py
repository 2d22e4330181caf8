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

The same rounds expire vector stores whose `expires_at` has passed: each is marked `expired`
(its object and its files stay, as OpenAI keeps them) and its chunks are dropped, so they stop
taking space and no search can find them again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Final

from compat_core import tenancy
from compat_core.store.base import Store
from compat_core.store.blobs import BlobStore
from compat_core.tasks import cancel_and_wait, every

log = logging.getLogger(__name__)

# Stores expired per transaction; a round goes on until none is left.
EXPIRE_BATCH: Final = 100


class Sweeper:
    """Sweeps `blobs` and `store` at `start()` and every `interval` seconds until `stop()`.

    `clock` gives the time (unix seconds) that decides which stores have expired.
    """

    def __init__(
        self,
        blobs: BlobStore,
        store: Store,
        interval: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._blobs = blobs
        self._store = store
        self._interval = interval
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Sweep once now (before the core serves), then in the background: across projects,
        as the sweep is the server's own work, not any tenant's."""
        with tenancy.all_projects():
            await self.sweep()
            self._task = asyncio.create_task(
                every(self._interval, self.sweep, "the sweep of orphans and expired stores failed"),
                name="orphan-sweeper",
            )

    async def stop(self) -> None:
        if self._task is None:
            return
        await cancel_and_wait(self._task)
        self._task = None

    async def sweep(self) -> None:
        """One round. A failure is logged, never raised: the next round tries again."""
        await self._sweep_uploads()
        await self._expire_stores()

    async def _sweep_uploads(self) -> None:
        try:
            removed = await self._blobs.sweep()
        except OSError:
            log.exception("sweeping %s for interrupted uploads failed", self._blobs.root)
            return
        if removed:
            log.info(
                "removed %d temporary file(s) of interrupted uploads from %s",
                removed,
                self._blobs.root,
            )

    async def _expire_stores(self) -> None:
        moment = int(self._clock())
        try:
            while True:
                expired = await self._store.expire_vector_stores(moment, EXPIRE_BATCH)
                if expired:
                    log.info("expired %d vector store(s): %s", len(expired), ", ".join(expired))
                if len(expired) < EXPIRE_BATCH:
                    return
        except Exception:
            # Whatever the database said, the store's next round tries again.
            log.exception("expiring vector stores failed")
