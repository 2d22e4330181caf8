"""`SqlStore`'s dense vectors of chunks and their re-embedding (see `sql_vectors`): pgvector
searches them on PostgreSQL, the process's `VectorCache` on SQLite."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from compat_core.retrieval.filters import Filter
from compat_core.store import sql_vectors
from compat_core.store.base import ChunkMatch, ChunkVectors, StoredChunk
from compat_core.store.base_vectors import DenseVectors
from compat_core.store.sql_store_base import SqlStoreBase


class SqlDenseVectors(SqlStoreBase, DenseVectors):
    """The dense vectors part of `SqlStore`."""

    async def enable_vectors(self) -> None:
        await self._db.write_across(sql_vectors.enable)

    async def has_vectors(self, vector_store_ids: Collection[str], model: str) -> bool:
        return await self._lookup(
            lambda conn: sql_vectors.has_vectors(conn, vector_store_ids, model)
        )

    async def search_chunks_dense(
        self,
        vector_store_ids: Collection[str],
        model: str,
        vector: Sequence[float],
        limit: int,
        filters: Filter | None = None,
    ) -> list[ChunkMatch]:
        return await self._db.read(
            lambda conn: sql_vectors.search(
                conn, self._vectors, vector_store_ids, model, vector, limit, filters
            )
        )

    async def claim_reindex(
        self, owner: str, model: str, now_ms: int, expires_at_ms: int
    ) -> str | None:
        return await self._db.write_across(
            lambda conn: sql_vectors.claim(conn, owner, model, now_ms, expires_at_ms)
        )

    async def reindex_claimable(self, model: str, now_ms: int) -> bool:
        return await self._db.read_across(
            lambda conn: sql_vectors.claimable(conn, model, now_ms), bounded=True
        )

    async def chunks_without_vectors(self, vector_store_id: str, limit: int) -> list[StoredChunk]:
        return await self._db.read(lambda conn: sql_vectors.missing(conn, vector_store_id, limit))

    async def add_chunk_vectors(
        self, owner: str, vector_store_id: str, chunk_ids: Sequence[int], vectors: ChunkVectors
    ) -> bool:
        await self._ensure_dimension(vectors.dimensions)
        return await self._db.write(
            lambda conn: sql_vectors.add(conn, owner, vector_store_id, chunk_ids, vectors)
        )

    async def finish_reindex(self, owner: str, vector_store_id: str, model: str) -> None:
        await self._db.write(lambda conn: sql_vectors.finish(conn, owner, vector_store_id, model))

    async def renew_reindex(self, owner: str, expires_at_ms: int) -> None:
        await self._db.write_across(lambda conn: sql_vectors.renew(conn, owner, expires_at_ms))

    async def release_reindex(self, owner: str) -> None:
        await self._db.write_across(lambda conn: sql_vectors.release(conn, owner))
