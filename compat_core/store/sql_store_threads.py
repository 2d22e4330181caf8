"""`SqlStore`'s threads, and the two rules every writer to a thread keeps: it locks the thread's
row first (`sql_rows.lock_thread`), and a thread has at most one active run (`check_idle`).
Messages and runs are written under their thread's lock and call in here for those rules and
for the thread's vector store."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, bindparam, literal_column, select

from compat_core.store import (
    prepared,
    schema,
    sql_claims,
    sql_kinds,
    sql_rows,
    sql_scope,
    sql_statements,
    sql_store_vector_stores,
    sql_vector_stores,
)
from compat_core.store.base import ACTIVE_RUN_STATUSES, ThreadBusy, VectorStoreWrites
from compat_core.store.base_threads import Threads
from compat_core.store.sql_store_base import SqlStoreBase
from compat_core.v1 import messages_pb2, threads_pb2


def insert_thread(
    conn: Connection, thread: threads_pb2.Thread, writes: VectorStoreWrites | None
) -> None:
    """Insert a new thread after the vector stores it creates; its `thread_files` go to its
    store first, which may change the thread before it is inserted."""
    if writes is not None:
        sql_vector_stores.create(conn, writes.new, sql_store_vector_stores.insert_vector_store)
        if writes.thread_files is not None:
            insert = sql_store_vector_stores.insert_vector_store
            sql_vector_stores.attach(conn, thread, writes.thread_files, insert, writes.moment)
    sql_rows.append(conn, sql_kinds.THREADS, [thread])


def attach_to_thread(conn: Connection, thread_id: str, writes: VectorStoreWrites | None) -> None:
    """Give an existing thread's store `thread_files` (the caller locked the thread)."""
    if writes is None:
        return
    if writes.new:
        raise ValueError("an existing thread creates no inline vector stores")
    if writes.thread_files is None:
        return
    stmt = sql_statements.select_where(schema.threads, ("seq", "body"), ("id",))
    row = prepared.first(conn, stmt, sql_statements.params({"id": thread_id}))
    if row is None:
        raise LookupError(f"thread {thread_id} is locked but not found")
    seq, body = row
    thread = threads_pb2.Thread.FromString(body)
    insert = sql_store_vector_stores.insert_vector_store
    if sql_vector_stores.attach(conn, thread, writes.thread_files, insert, writes.moment):
        sql_rows.rewrite(conn, sql_kinds.THREADS, seq, thread)


def _create_thread(
    conn: Connection,
    thread: threads_pb2.Thread,
    messages: Sequence[messages_pb2.Message],
    writes: VectorStoreWrites | None,
) -> None:
    for message in messages:
        if message.thread_id != thread.id:
            raise ValueError(f"message {message.id} names thread {message.thread_id!r}")
    insert_thread(conn, thread, writes)
    sql_rows.append(conn, sql_kinds.MESSAGES, messages)


def _delete_thread(conn: Connection, thread_id: str) -> bool:
    runs, steps, messages, threads = schema.runs, schema.run_steps, schema.messages, schema.threads
    # The thread first, as every other writer to it locks it first: deleting children before
    # could take a row that a concurrent run's save waits on while it holds the thread.
    if not sql_rows.lock_thread(conn, thread_id):
        return False
    # Children first (foreign keys), each through its (parent, seq) index.
    where = sql_scope.where
    thread_runs = select(runs.c.id).where(runs.c.thread_id == thread_id, *where(runs))
    sql_claims.delete_for_runs(conn, thread_runs)
    conn.execute(steps.delete().where(steps.c.run_id.in_(thread_runs), *where(steps)))
    conn.execute(messages.delete().where(messages.c.thread_id == thread_id, *where(messages)))
    conn.execute(runs.delete().where(runs.c.thread_id == thread_id, *where(runs)))
    deleted = threads.delete().where(threads.c.id == thread_id, *where(threads))
    return conn.execute(deleted).rowcount > 0


def _active_run_stmt(other_than: bool) -> Select[Any]:
    return _active_run_stmt_for(other_than, sql_scope.applies(schema.runs))


@functools.cache
def _active_run_stmt_for(other_than: bool, scoped: bool) -> Select[Any]:
    runs = schema.runs
    # The statuses are written into the SQL: as parameters of an IN they would be "expanding"
    # ones, which SQLAlchemy renders into the SQL afresh at every execution.
    statuses: list[ColumnElement[Any]] = [
        literal_column(str(int(status))) for status in sorted(ACTIVE_RUN_STATUSES)
    ]
    conditions = [
        runs.c.thread_id == bindparam(sql_statements.param("thread_id")),
        runs.c.status.in_(statuses),
    ]
    if other_than:
        conditions.append(runs.c.id != bindparam(sql_statements.param("id")))
    if scoped:
        conditions.append(runs.c.project_id == sql_scope.project_param())
    return select(runs.c.id).where(*conditions).order_by(runs.c.seq.desc()).limit(1)


def _active_run_id(conn: Connection, thread_id: str, other_than: str = "") -> str | None:
    """The ID of an active run of the thread (apart from `other_than`), if there is one."""
    params = sql_statements.params(
        {"thread_id": thread_id, "id": other_than} if other_than else {"thread_id": thread_id}
    )
    run_id = prepared.scalar(conn, _active_run_stmt(bool(other_than)), params)
    return None if run_id is None else str(run_id)


def check_idle(conn: Connection, thread_id: str, other_than: str = "") -> None:
    active = _active_run_id(conn, thread_id, other_than)
    if active is not None:
        raise ThreadBusy(thread_id, active)


class SqlThreads(SqlStoreBase, Threads):
    """The threads part of `SqlStore`."""

    async def create_thread(
        self,
        thread: threads_pb2.Thread,
        messages: list[messages_pb2.Message],
        vector_stores: VectorStoreWrites | None = None,
    ) -> None:
        await self._db.write(lambda conn: _create_thread(conn, thread, messages, vector_stores))

    async def get_thread(self, thread_id: str) -> threads_pb2.Thread | None:
        return await self._lookup(lambda conn: sql_rows.get(conn, sql_kinds.THREADS, thread_id))

    async def update_thread(
        self, thread_id: str, mutate: Callable[[threads_pb2.Thread], None]
    ) -> threads_pb2.Thread | None:
        return await self._db.write(
            lambda conn: sql_rows.update(conn, sql_kinds.THREADS, thread_id, mutate)
        )

    async def delete_thread(self, thread_id: str) -> bool:
        return await self._db.write(lambda conn: _delete_thread(conn, thread_id))
