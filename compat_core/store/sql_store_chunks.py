"""`SqlStore`'s chunks of vector store files and their lexical search (`sql_chunks`)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from compat_core.retrieval.filters import Filter
from compat_core.store import sql_chunks
from compat_core.store.base import ChunkMatch, NewChunk
from compat_core.store.base_chunks import Chunks
from compat_core.store.sql_store_base import SqlStoreBase


class SqlChunks(SqlStoreBase, Chunks):
    """The chunks part of `SqlStore`."""

    async def add_chunks(
        self, vector_store_id: str, file_id: str, chunks: Sequence[NewChunk], created_at: int
    ) -> list[int]:
        return await self._db.write(
            lambda conn: sql_chunks.add(conn, vector_store_id, file_id, chunks, created_at)
        )

    async def delete_file_chunks(self, vector_store_id: str, file_id: str) -> int:
        return await self._db.write(
            lambda conn: sql_chunks.delete_file(conn, vector_store_id, file_id)
        )

    async def delete_store_chunks(self, vector_store_id: str) -> int:
        return await self._db.write(lambda conn: sql_chunks.delete_store(conn, vector_store_id))

    async def search_chunks_lexical(
        self,
        vector_store_ids: Collection[str],
        query: str,
        limit: int,
        filters: Filter | None = None,
    ) -> list[ChunkMatch]:
        return await self._db.read(
            lambda conn: sql_chunks.search_lexical(conn, vector_store_ids, query, limit, filters)
        )
