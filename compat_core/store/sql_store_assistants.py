"""`SqlStore`'s assistants: a list of its own (locked through `list_locks`, see `sql_rows`),
whose creates write their inline vector stores in the same transaction."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection

from compat_core.store import sql_kinds, sql_rows, sql_store_vector_stores, sql_vector_stores
from compat_core.store.base import Page, PageQuery, VectorStoreWrites
from compat_core.store.base_assistants import Assistants
from compat_core.store.sql_store_base import SqlStoreBase
from compat_core.v1 import assistants_pb2


def _create_assistant(
    conn: Connection, assistant: assistants_pb2.Assistant, writes: VectorStoreWrites | None
) -> None:
    """Insert an assistant after the vector stores it creates."""
    if writes is not None:
        if writes.thread_files is not None:
            raise ValueError("only a thread's writes carry thread files")
        sql_vector_stores.create(conn, writes.new, sql_store_vector_stores.insert_vector_store)
    sql_rows.append(conn, sql_kinds.ASSISTANTS, [assistant])


class SqlAssistants(SqlStoreBase, Assistants):
    """The assistants part of `SqlStore`."""

    async def create_assistant(
        self,
        assistant: assistants_pb2.Assistant,
        vector_stores: VectorStoreWrites | None = None,
    ) -> None:
        await self._db.write(lambda conn: _create_assistant(conn, assistant, vector_stores))

    async def get_assistant(self, assistant_id: str) -> assistants_pb2.Assistant | None:
        return await self._lookup(
            lambda conn: sql_rows.get(conn, sql_kinds.ASSISTANTS, assistant_id)
        )

    async def list_assistants(self, query: PageQuery) -> Page[assistants_pb2.Assistant]:
        return await self._lookup(lambda conn: sql_rows.page(conn, sql_kinds.ASSISTANTS, query))

    async def update_assistant(
        self, assistant_id: str, mutate: Callable[[assistants_pb2.Assistant], None]
    ) -> assistants_pb2.Assistant | None:
        return await self._db.write(
            lambda conn: sql_rows.update(conn, sql_kinds.ASSISTANTS, assistant_id, mutate)
        )

    async def delete_assistant(self, assistant_id: str) -> bool:
        return await self._db.write(
            lambda conn: sql_rows.delete(conn, sql_kinds.ASSISTANTS, assistant_id)
        )
