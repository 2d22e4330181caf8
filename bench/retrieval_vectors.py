"""Vectors for a latency dataset's store, written through the Store API the way a core writes
them for a store that was filled while no embedding model was configured.

That is the re-embedding worker's sequence (`compat_core.retrieval.reindex`): the database
is made to hold vectors (`enable_vectors`: pgvector's table on PostgreSQL), the store is
leased for the model (`claim_reindex`), its chunks without a vector are embedded a batch at a
time and stored (`chunks_without_vectors`, `add_chunk_vectors`, which on PostgreSQL creates the
HNSW index before the first write, so the index is filled row by row as ingestion fills it),
and the lease is finished (`finish_reindex`), which marks the store complete: a server
started on the dataset with the same model finds nothing to do. Nothing else writes to the
dataset while it is built, so the lease is long and never renewed.

The next batch is embedded (in a worker thread) while the last one is written, so the build
takes about as long as the model alone.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

from compat_core.retrieval import reindex
from compat_core.retrieval.embeddings import Embedder
from compat_core.store.base import ChunkVectors, Store

OWNER: Final = "bench-retrieval-dataset"
LEASE_MS: Final = 24 * 3600 * 1000


async def add_vectors(store: Store, embedder: Embedder) -> None:
    """Every chunk of the database's one vector store given a vector of `embedder`'s."""
    await store.enable_vectors()
    now = int(time.time() * 1000)
    store_id = await store.claim_reindex(OWNER, embedder.name, now, now + LEASE_MS)
    if store_id is None:
        raise RuntimeError("the dataset has no vector store whose chunks need vectors")
    writing: asyncio.Task[bool] | None = None
    in_flight: set[int] = set()
    while True:
        # Twice a batch: the one being written is still without vectors, and is skipped.
        waiting = await store.chunks_without_vectors(store_id, 2 * reindex.BATCH)
        batch = [c for c in waiting if c.chunk_id not in in_flight][: reindex.BATCH]
        if not batch:
            break
        vectors = await embedder.embed([c.text for c in batch])
        if writing is not None and not await writing:
            raise RuntimeError(f"lost the re-embedding lease on {store_id} while building")
        in_flight = {c.chunk_id for c in batch}
        writing = asyncio.ensure_future(
            store.add_chunk_vectors(
                OWNER,
                store_id,
                [c.chunk_id for c in batch],
                ChunkVectors(embedder.name, vectors),
            )
        )
    if writing is not None and not await writing:
        raise RuntimeError(f"lost the re-embedding lease on {store_id} while building")
    await store.finish_reindex(OWNER, store_id, embedder.name)
    if await store.chunks_without_vectors(store_id, 1):
        raise RuntimeError(f"vector store {store_id} still has chunks without vectors")
