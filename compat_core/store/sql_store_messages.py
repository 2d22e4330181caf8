"""`SqlStore`'s messages, appended to their thread under its lock while it has no active run."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection

from compat_core.store import sql_kinds, sql_rows, sql_store_threads
from compat_core.store.base import Page, PageQuery, VectorStoreWrites
from compat_core.store.base_messages import Messages
from compat_core.store.sql_store_base import SqlStoreBase
from compat_core.v1 import messages_pb2


def _create_message(
    conn: Connection, message: messages_pb2.Message, writes: VectorStoreWrites | None
) -> bool:
    if not sql_rows.lock_thread(conn, message.thread_id):
        return False
    sql_store_threads.check_idle(conn, message.thread_id)
    sql_store_threads.attach_to_thread(conn, message.thread_id, writes)
    sql_rows.append(conn, sql_kinds.MESSAGES, [message])
    return True


def _list_messages(
    conn: Connection, thread_id: str, query: PageQuery, run_id: str
) -> Page[messages_pb2.Message] | None:
    return sql_rows.thread_page(
        conn, sql_kinds.MESSAGES, thread_id, query, {"run_id": run_id} if run_id else None
    )


class SqlMessages(SqlStoreBase, Messages):
    """The messages part of `SqlStore`."""

    async def create_message(
        self, message: messages_pb2.Message, vector_stores: VectorStoreWrites | None = None
    ) -> bool:
        return await self._db.write(lambda conn: _create_message(conn, message, vector_stores))

    async def get_message(self, thread_id: str, message_id: str) -> messages_pb2.Message | None:
        return await self._lookup(
            lambda conn: sql_rows.get(conn, sql_kinds.MESSAGES, message_id, thread_id=thread_id)
        )

    async def list_messages(
        self, thread_id: str, query: PageQuery, run_id: str = ""
    ) -> Page[messages_pb2.Message] | None:
        return await self._lookup(lambda conn: _list_messages(conn, thread_id, query, run_id))

    async def update_message(
        self,
        thread_id: str,
        message_id: str,
        mutate: Callable[[messages_pb2.Message], None],
    ) -> messages_pb2.Message | None:
        return await self._db.write(
            lambda conn: sql_rows.update(
                conn, sql_kinds.MESSAGES, message_id, mutate, thread_id=thread_id
            )
        )

    async def delete_message(self, thread_id: str, message_id: str) -> bool:
        return await self._db.write(
            lambda conn: sql_rows.delete(conn, sql_kinds.MESSAGES, message_id, thread_id=thread_id)
        )
