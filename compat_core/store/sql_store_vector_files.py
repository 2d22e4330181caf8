"""`SqlStore`'s files of vector stores and their ingestion leases (see `sql_vector_files`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import Connection

from compat_core.store import sql_file_attributes, sql_kinds, sql_rows, sql_vector_files
from compat_core.store.base import ChunkVectors, NewChunk, Page, PageQuery
from compat_core.store.base_vector_files import VectorStoreFiles
from compat_core.store.sql_store_base import SqlStoreBase
from compat_core.v1 import vector_stores_pb2


class SqlVectorStoreFiles(SqlStoreBase, VectorStoreFiles):
    """The vector store files part of `SqlStore`."""

    async def add_vector_store_files(
        self, vector_store_id: str, files: Sequence[vector_stores_pb2.VectorStoreFile]
    ) -> list[vector_stores_pb2.VectorStoreFile] | None:
        return await self._db.write(lambda conn: sql_vector_files.add(conn, vector_store_id, files))

    async def get_vector_store_file(
        self, vector_store_id: str, file_id: str
    ) -> vector_stores_pb2.VectorStoreFile | None:
        return await self._lookup(
            lambda conn: sql_rows.get(
                conn, sql_kinds.VECTOR_STORE_FILES, file_id, vector_store_id=vector_store_id
            )
        )

    async def list_vector_store_files(
        self, vector_store_id: str, query: PageQuery, status: int
    ) -> Page[vector_stores_pb2.VectorStoreFile]:
        filters = {"status": status} if status else None
        scope = {"vector_store_id": vector_store_id}
        return await self._lookup(
            lambda conn: sql_rows.page(conn, sql_kinds.VECTOR_STORE_FILES, query, scope, filters)  # type: ignore[arg-type]
        )

    async def update_vector_store_file(
        self,
        vector_store_id: str,
        file_id: str,
        mutate: Callable[[vector_stores_pb2.VectorStoreFile], None],
    ) -> vector_stores_pb2.VectorStoreFile | None:
        def update(conn: Connection) -> vector_stores_pb2.VectorStoreFile | None:
            updated = sql_rows.update(
                conn, sql_kinds.VECTOR_STORE_FILES, file_id, mutate, vector_store_id=vector_store_id
            )
            if updated is not None:
                sql_file_attributes.replace(conn, updated)
            return updated

        return await self._db.write(update)

    async def delete_vector_store_file(self, vector_store_id: str, file_id: str) -> bool:
        return await self._db.write(
            lambda conn: sql_vector_files.delete(conn, vector_store_id, file_id)
        )

    async def claim_vector_store_files(
        self, owner: str, now_ms: int, expires_at_ms: int, limit: int
    ) -> list[vector_stores_pb2.VectorStoreFile]:
        return await self._db.write_across(
            lambda conn: sql_vector_files.claim(conn, owner, now_ms, expires_at_ms, limit)
        )

    async def vector_store_files_claimable(self, now_ms: int) -> bool:
        return await self._db.read_across(
            lambda conn: sql_vector_files.claimable(conn, now_ms), bounded=True
        )

    async def renew_vector_store_files(self, owner: str, expires_at_ms: int) -> None:
        await self._db.write_across(lambda conn: sql_vector_files.renew(conn, owner, expires_at_ms))

    async def release_vector_store_files(self, owner: str) -> None:
        await self._db.write_across(lambda conn: sql_vector_files.release(conn, owner))

    async def finish_vector_store_file(
        self,
        owner: str,
        outcome: vector_stores_pb2.VectorStoreFile,
        chunks: Sequence[NewChunk],
        created_at: int,
        vectors: ChunkVectors | None = None,
    ) -> bool:
        if vectors is not None:
            await self._ensure_dimension(vectors.dimensions)
        return await self._db.write(
            lambda conn: sql_vector_files.finish(conn, owner, outcome, chunks, created_at, vectors)
        )
