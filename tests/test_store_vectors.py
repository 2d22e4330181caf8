"""Chunk vectors on a real database: the re-embedding's leases, and a dense search that always
answers from what the database holds now (SQLite's cached matrices included).

A SQLite file; in the PostgreSQL pass a fresh database with pgvector (skipped where the server
lacks it, unless `COMPAT_TEST_REQUIRE_PGVECTOR`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import pytest
import pytest_asyncio

from compat_core.store import SqlStore
from compat_core.store.base import ChunkVectors, NewChunk, VectorsUnavailable
from compat_core.v1 import vector_stores_pb2

MODEL = "emb/alpha-4"
OTHER = "emb/beta-3"
VS = "vs_dense"
OWNER = "core-a"


def _unit(*values: float) -> list[float]:
    norm = math.hypot(*values)
    return [v / norm for v in values]


# Four chunks, each nearest one axis of 4 dimensions.
TEXTS = ("north", "east", "south", "west")
AXES = [_unit(*(1.0 if i == axis else 0.1 for i in range(4))) for axis in range(4)]


@pytest_asyncio.fixture(loop_scope="function")
async def vectors(store: SqlStore) -> SqlStore:
    try:
        await store.enable_vectors()
    except VectorsUnavailable as exc:
        if os.environ.get("COMPAT_TEST_REQUIRE_PGVECTOR"):
            raise
        pytest.skip(str(exc))
    await store.create_vector_store(vector_stores_pb2.VectorStore(id=VS, created_at=1))
    return store


async def _ingest(
    store: SqlStore, file_id: str, texts: Sequence[str], vectors: ChunkVectors | None
) -> None:
    """A file ingested as the worker does it: added, claimed, finished with its chunks."""
    added = vector_stores_pb2.VectorStoreFile(
        id=file_id,
        created_at=1,
        vector_store_id=VS,
        status=vector_stores_pb2.VECTOR_STORE_FILE_STATUS_IN_PROGRESS,
    )
    assert await store.add_vector_store_files(VS, [added]) is not None
    [claimed] = await store.claim_vector_store_files("ingester", 1, 2, 1)
    claimed.status = vector_stores_pb2.VECTOR_STORE_FILE_STATUS_COMPLETED
    chunks = [NewChunk(i, text, 1) for i, text in enumerate(texts)]
    assert await store.finish_vector_store_file("ingester", claimed, chunks, 1, vectors)


async def _nearest(store: SqlStore, axis: int, model: str = MODEL) -> list[str]:
    return [m.text for m in await store.search_chunks_dense([VS], model, AXES[axis], 10)]


async def test_a_dying_core_leaves_the_rest_of_its_re_embedding_to_the_next(
    vectors: SqlStore,
) -> None:
    store = vectors
    await _ingest(store, "file-1", TEXTS, None)
    # Chunks stored while no model was configured: the next start marks the store for work.
    await store.enable_vectors()
    assert not await store.has_vectors([VS], MODEL)
    assert await store.claim_reindex(OWNER, MODEL, 1000, 2000) == VS
    assert await store.claim_reindex("core-b", MODEL, 1500, 2500) is None, "still leased"

    first = await store.chunks_without_vectors(VS, 2)
    assert [c.text for c in first] == ["north", "east"]
    written = ChunkVectors(MODEL, AXES[:2])
    assert await store.add_chunk_vectors(OWNER, VS, [c.chunk_id for c in first], written)
    # Found by meaning already; the chunks without vectors are not (lexical search has them).
    assert await store.has_vectors([VS], MODEL)
    assert (await _nearest(store, 1))[0] == "east"
    assert "south" not in await _nearest(store, 2)

    # core-a dies without a word; once its lease has run out core-b goes on where it stopped.
    assert await store.claim_reindex("core-b", MODEL, 2001, 3000) == VS
    rest = await store.chunks_without_vectors(VS, 10)
    assert [c.text for c in rest] == ["south", "west"]
    late = ChunkVectors(MODEL, AXES[2:])
    assert not await store.add_chunk_vectors(OWNER, VS, [c.chunk_id for c in rest], late)
    assert await store.add_chunk_vectors("core-b", VS, [c.chunk_id for c in rest], late)
    await store.finish_reindex("core-b", VS, MODEL)
    assert await store.claim_reindex("core-c", MODEL, 9000, 9999) is None, "complete"
    for axis, text in enumerate(TEXTS):
        assert (await _nearest(store, axis))[0] == text


async def test_another_model_drops_the_stores_vectors_and_re_embeds_them(
    vectors: SqlStore,
) -> None:
    store = vectors
    await _ingest(store, "file-1", TEXTS, ChunkVectors(MODEL, AXES))
    assert await store.claim_reindex(OWNER, MODEL, 1, 2) == VS, "complete only once checked"
    await store.finish_reindex(OWNER, VS, MODEL)
    assert await store.claim_reindex(OWNER, MODEL, 3, 4) is None

    assert await store.claim_reindex(OWNER, OTHER, 5, 6) == VS
    assert not await store.has_vectors([VS], MODEL), "the old model's vectors are gone"
    missing = await store.chunks_without_vectors(VS, 10)
    assert len(missing) == 4
    # A different model, a different dimension.
    other = ChunkVectors(OTHER, [_unit(1.0, float(i), 0.5) for i in range(4)])
    assert await store.add_chunk_vectors(OWNER, VS, [c.chunk_id for c in missing], other)
    found = await store.search_chunks_dense([VS], OTHER, _unit(1.0, 3.0, 0.5), 1)
    assert [m.text for m in found] == ["west"]
    assert found[0].scale == "cosine"
    assert found[0].raw_score == pytest.approx(1.0, abs=1e-5)
    assert await store.search_chunks_dense([VS], MODEL, AXES[0], 10) == []


async def test_dense_search_follows_the_chunks_the_database_holds(vectors: SqlStore) -> None:
    store = vectors
    await _ingest(store, "file-1", TEXTS[:2], ChunkVectors(MODEL, AXES[:2]))
    assert await _nearest(store, 0) == ["north", "east"]
    await _ingest(store, "file-2", TEXTS[2:], ChunkVectors(MODEL, AXES[2:]))
    assert (await _nearest(store, 3))[0] == "west", "a file added since is searched"
    assert await store.delete_vector_store_file(VS, "file-1")
    assert await _nearest(store, 0) == ["south", "west"], "a file removed is not"
    await store.delete_vector_store(VS)
    assert await _nearest(store, 0) == []
