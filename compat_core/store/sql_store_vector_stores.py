"""`SqlStore`'s vector stores, their activity and expiry (`sql_vector_stores`).

`insert_vector_store` is the append that `sql_vector_stores` is handed for the stores that an
assistant, thread or message creates inline, in its own transaction."""

from __future__ import annotations

from collections.abc import Callable, Collection

from sqlalchemy import Connection

from compat_core.store import (
    sql_kinds,
    sql_rows,
    sql_vector_batches,
    sql_vector_files,
    sql_vector_stores,
)
from compat_core.store.base import Page, PageQuery
from compat_core.store.base_vector_stores import VectorStores
from compat_core.store.sql_store_base import SqlStoreBase
from compat_core.v1 import vector_stores_pb2


def insert_vector_store(conn: Connection, store: vector_stores_pb2.VectorStore) -> None:
    sql_rows.append(conn, sql_kinds.VECTOR_STORES, [store])


class SqlVectorStores(SqlStoreBase, VectorStores):
    """The vector stores part of `SqlStore`."""

    async def create_vector_store(self, store: vector_stores_pb2.VectorStore) -> None:
        await self._db.write(lambda conn: sql_rows.append(conn, sql_kinds.VECTOR_STORES, [store]))

    async def get_vector_store(self, store_id: str) -> vector_stores_pb2.VectorStore | None:
        return await self._lookup(
            lambda conn: sql_rows.get(conn, sql_kinds.VECTOR_STORES, store_id)
        )

    async def list_vector_stores(self, query: PageQuery) -> Page[vector_stores_pb2.VectorStore]:
        return await self._lookup(lambda conn: sql_rows.page(conn, sql_kinds.VECTOR_STORES, query))

    async def update_vector_store(
        self, store_id: str, mutate: Callable[[vector_stores_pb2.VectorStore], None]
    ) -> vector_stores_pb2.VectorStore | None:
        return await self._db.write(
            lambda conn: sql_rows.update(conn, sql_kinds.VECTOR_STORES, store_id, mutate)
        )

    async def delete_vector_store(self, store_id: str) -> bool:
        def delete(conn: Connection) -> bool:
            # Found in the scope first: its chunks and attributes carry no project, and must
            # not go for a store of another project that is not deleted.
            if sql_vector_files.lock_store(conn, store_id) is None:
                return False
            sql_vector_files.delete_store(conn, store_id)
            sql_vector_batches.delete_store(conn, store_id)
            return sql_rows.delete(conn, sql_kinds.VECTOR_STORES, store_id)

        return await self._db.write(delete)

    async def touch_vector_stores(self, store_ids: Collection[str], moment: int) -> None:
        await self._db.write(lambda conn: sql_vector_stores.touch(conn, store_ids, moment))

    async def expire_vector_stores(self, moment: int, limit: int) -> list[str]:
        return await self._db.write_across(
            lambda conn: sql_vector_stores.expire(conn, moment, limit)
        )
