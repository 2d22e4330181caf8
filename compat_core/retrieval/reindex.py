"""The background worker that gives vector stores the vectors of the configured embedding model.

A store needs it when its chunks were stored while no model was configured, or its vectors are
of a model that is no longer the configured one. The work is the database's state, not this
process's (`compat_core.store.sql_vectors`): the worker leases one store at a time, embeds its
chunks that have no vector a batch at a time and stores each batch's vectors as it goes, so a
core that stops or dies loses at most the batch in flight, and the next claim, here after a
restart or on another core once the lease runs out, goes on with the chunks still without one.
Meanwhile search finds those chunks lexically, and the others by meaning as well.

An upstream that fails leaves the store to its lease: it is tried again once the lease runs
out, so an outage costs one request per store per lease, not a loop of failing requests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Final

from compat_core import tenancy
from compat_core.retrieval.embeddings import Embedder, EmbeddingError
from compat_core.store.base import ChunkVectors, Store
from compat_core.tasks import cancel_and_wait

log = logging.getLogger(__name__)

POLL_SECONDS: Final = 1.0
# Chunks embedded and stored per step: one embeddings request's worth (`embeddings.batches`
# cuts it further if the chunks are long), and what a dying core can lose.
BATCH: Final = 256


class Reindexer:
    """Owned by a core with an embedding model: `start` with it, `stop` before its store."""

    def __init__(self, store: Store, embedder: Embedder, owner: str, lease_seconds: float) -> None:
        self._store = store
        self._embedder = embedder
        self._owner = owner
        self._lease_ms = int(lease_seconds * 1000)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # Claims span every project; each store is re-embedded in its own (`_round`).
        with tenancy.all_projects():
            self._task = asyncio.create_task(self._run(), name="vector-store-reindex")

    async def stop(self) -> None:
        """Stop at once; the store being re-embedded is released for the next claim."""
        if self._task is None:
            return
        await cancel_and_wait(self._task)
        self._task = None
        try:
            with tenancy.all_projects():
                await self._store.release_reindex(self._owner)
        except Exception:
            log.exception("could not release the vector stores this core was re-embedding")

    async def _run(self) -> None:
        while True:
            try:
                busy = await self._round()
            except Exception:
                log.exception("re-embedding vector stores failed; retrying")
                busy = False
            if not busy:
                await asyncio.sleep(POLL_SECONDS)

    async def _round(self) -> bool:
        """Re-embed one store; whether there was one."""
        moment = _now_ms()
        name = self._embedder.name
        # Looked for with a read first: an idle core polls every second for good, and on
        # SQLite every write queues on the one writer.
        if not await self._store.reindex_claimable(name, moment):
            return False
        store_id = await self._store.claim_reindex(
            self._owner, name, moment, moment + self._lease_ms
        )
        if store_id is None:
            return False
        project = await self._store.project_of_vector_store(store_id)
        renewer = asyncio.create_task(self._renew())
        try:
            if project is not None:
                with tenancy.project(project):
                    await self._reindex(store_id)
        except EmbeddingError as exc:
            log.warning(
                "re-embedding vector store %s with %s failed, retrying after its lease: %s",
                store_id,
                name,
                exc,
            )
            return False
        finally:
            await cancel_and_wait(renewer)
        return True

    async def _reindex(self, store_id: str) -> None:
        name = self._embedder.name
        while True:
            chunks = await self._store.chunks_without_vectors(store_id, BATCH)
            if not chunks:
                await self._store.finish_reindex(self._owner, store_id, name)
                log.info("vector store %s now has vectors of %s for every chunk", store_id, name)
                return
            vectors = await self._embedder.embed([c.text for c in chunks])
            held = await self._store.add_chunk_vectors(
                self._owner, store_id, [c.chunk_id for c in chunks], ChunkVectors(name, vectors)
            )
            if not held:
                return

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self._lease_ms / 3000)
            try:
                await self._store.renew_reindex(self._owner, _now_ms() + self._lease_ms)
            except Exception:
                # Renewed again at the next tick; the lease outlasts two missed ones.
                log.exception("could not renew this core's re-embedding lease")


def _now_ms() -> int:
    return int(time.time() * 1000)
