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

import logging
from typing import Final

from compat_core import tenancy
from compat_core.retrieval.embeddings import Embedder, EmbeddingError
from compat_core.retrieval.leased_worker import LeasedWorker, now_ms
from compat_core.store.base import ChunkVectors, Store

log = logging.getLogger(__name__)

# Chunks embedded and stored per step: one embeddings request's worth (`embeddings.batches`
# cuts it further if the chunks are long), and what a dying core can lose.
BATCH: Final = 256


class Reindexer(LeasedWorker):
    """Owned by a core with an embedding model: `start` with it, `stop` before its store."""

    task_name = "vector-store-reindex"
    work = "re-embedding vector stores"

    def __init__(self, store: Store, embedder: Embedder, owner: str, lease_seconds: float) -> None:
        super().__init__(owner, lease_seconds)
        self._store = store
        self._embedder = embedder

    async def _round(self) -> bool:
        """Re-embed one store; whether there was one."""
        moment = now_ms()
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
        try:
            if project is not None:
                async with self._renewing():
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

    async def _renew(self, until_ms: int) -> None:
        await self._store.renew_reindex(self._owner, until_ms)

    async def _release(self) -> None:
        await self._store.release_reindex(self._owner)
