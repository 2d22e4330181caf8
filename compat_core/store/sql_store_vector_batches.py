"""`SqlStore`'s batches of vector store files (see `sql_vector_batches`); a batch's files are
paged as its store's files are, filtered by batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

from compat_core.store import sql_kinds, sql_rows, sql_vector_batches
from compat_core.store.base import Page, PageQuery
from compat_core.store.base_vector_batches import VectorStoreFileBatches
from compat_core.store.sql_store_base import SqlStoreBase
from compat_core.v1 import vector_stores_pb2


class SqlVectorStoreFileBatches(SqlStoreBase, VectorStoreFileBatches):
    """The file batches part of `SqlStore`."""

    async def create_vector_store_file_batch(
        self,
        batch: vector_stores_pb2.VectorStoreFileBatch,
        files: Sequence[vector_stores_pb2.VectorStoreFile],
        now_ms: int,
    ) -> vector_stores_pb2.VectorStoreFileBatch | None:
        return await self._db.write(
            lambda conn: sql_vector_batches.create(conn, batch, files, now_ms)
        )

    async def get_vector_store_file_batch(
        self, vector_store_id: str, batch_id: str, now_ms: int
    ) -> vector_stores_pb2.VectorStoreFileBatch | None:
        return await self._db.read(
            lambda conn: sql_vector_batches.get(conn, vector_store_id, batch_id, now_ms)
        )

    async def cancel_vector_store_file_batch(
        self, vector_store_id: str, batch_id: str, now_ms: int
    ) -> vector_stores_pb2.VectorStoreFileBatch | None:
        return await self._db.write(
            lambda conn: sql_vector_batches.cancel(conn, vector_store_id, batch_id, now_ms)
        )

    async def list_vector_store_file_batch_files(
        self, vector_store_id: str, batch_id: str, query: PageQuery, status: int
    ) -> Page[vector_stores_pb2.VectorStoreFile] | None:
        scope = {"vector_store_id": vector_store_id}
        filters: dict[str, Any] = {"batch_id": batch_id}
        if status:
            filters["status"] = status

        def page(conn: Connection) -> Page[vector_stores_pb2.VectorStoreFile] | None:
            if not sql_vector_batches.exists(conn, vector_store_id, batch_id):
                return None
            return sql_rows.page(conn, sql_kinds.VECTOR_STORE_FILES, query, scope, filters)

        return await self._lookup(page)
