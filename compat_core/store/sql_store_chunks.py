"""`SqlStore`'s chunks of vector store files and their lexical search (`sql_chunks`).

Chunks carry no project of their own: they are their vector store's. The writes here refuse a
store of another project (`_foreign`) as the store's own methods do; searches join each chunk
with its file's row in the store, which is filtered on the project (`sql_chunks`)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import Connection, select

from compat_core import tenancy
from compat_core.retrieval.filters import Filter
from compat_core.store import schema, sql_chunks
from compat_core.store.base import ChunkMatch, NewChunk
from compat_core.store.base_chunks import Chunks
from compat_core.store.sql_store_base import SqlStoreBase


def _foreign(conn: Connection, vector_store_id: str) -> bool:
    """Whether the store is one of another project than the scope's."""
    if not tenancy.filtered():
        return False
    stores = schema.vector_stores
    stmt = select(stores.c.id).where(
        stores.c.id == vector_store_id, stores.c.project_id != tenancy.project_id()
    )
    return conn.execute(stmt).first() is not None


def _add(
    conn: Connection,
    vector_store_id: str,
    file_id: str,
    chunks: Sequence[NewChunk],
    created_at: int,
) -> list[int]:
    if _foreign(conn, vector_store_id):
        raise LookupError(f"no vector store {vector_store_id!r}")
    return sql_chunks.add(conn, vector_store_id, file_id, chunks, created_at)


def _delete_file(conn: Connection, vector_store_id: str, file_id: str) -> int:
    if _foreign(conn, vector_store_id):
        return 0
    return sql_chunks.delete_file(conn, vector_store_id, file_id)


def _delete_store(conn: Connection, vector_store_id: str) -> int:
    if _foreign(conn, vector_store_id):
        return 0
    return sql_chunks.delete_store(conn, vector_store_id)


class SqlChunks(SqlStoreBase, Chunks):
    """The chunks part of `SqlStore`."""

    async def add_chunks(
        self, vector_store_id: str, file_id: str, chunks: Sequence[NewChunk], created_at: int
    ) -> list[int]:
        return await self._db.write(
            lambda conn: _add(conn, vector_store_id, file_id, chunks, created_at)
        )

    async def delete_file_chunks(self, vector_store_id: str, file_id: str) -> int:
        return await self._db.write(lambda conn: _delete_file(conn, vector_store_id, file_id))

    async def delete_store_chunks(self, vector_store_id: str) -> int:
        return await self._db.write(lambda conn: _delete_store(conn, vector_store_id))

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
