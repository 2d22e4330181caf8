"""`Store` on SQL through SQLAlchemy Core.

Every operation is a synchronous function of a `Connection` that a `Database` runs as one
transaction; none of them knows which database it talks to. The async methods of `SqlStore`
only choose the function and whether it reads or writes.

`mutate` callbacks of the `update_*` methods run on the writer thread inside the write
transaction: they must be quick and must not touch the event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message
from sqlalchemy import ColumnElement, Connection, Table, exists, select

from compat_core.store import schema
from compat_core.store.base import CursorNotFound, Page, PageQuery, Store
from compat_core.store.database import Database
from compat_core.v1 import assistants_pb2, files_pb2, messages_pb2, threads_pb2

M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class _Kind(Generic[M]):
    """How one kind of object maps onto its table."""

    table: Table
    parse: Callable[[bytes], M]
    # The queryable columns as the object's fields give them (all but `seq` and `body`).
    columns: Callable[[M], dict[str, Any]]
    # Columns that name the object or its parent: `mutate` must leave them alone, or the row
    # would silently move under cursors and parents.
    identity: tuple[str, ...]


def _assistant_columns(a: assistants_pb2.Assistant) -> dict[str, Any]:
    return {"id": a.id, "created_at": a.created_at}


def _thread_columns(t: threads_pb2.Thread) -> dict[str, Any]:
    return {"id": t.id, "created_at": t.created_at}


def _message_columns(m: messages_pb2.Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "thread_id": m.thread_id,
        "run_id": m.run_id or None,
        "created_at": m.created_at,
    }


def _file_columns(f: files_pb2.File) -> dict[str, Any]:
    return {"id": f.id, "purpose": f.purpose, "created_at": f.created_at}


_ASSISTANTS = _Kind(
    schema.assistants, assistants_pb2.Assistant.FromString, _assistant_columns, ("id",)
)
_THREADS = _Kind(schema.threads, threads_pb2.Thread.FromString, _thread_columns, ("id",))
_MESSAGES = _Kind(
    schema.messages, messages_pb2.Message.FromString, _message_columns, ("id", "thread_id")
)
_FILES = _Kind(schema.files, files_pb2.File.FromString, _file_columns, ("id",))


# Operations on one connection, each run as a whole transaction.


def _row(kind: _Kind[M], obj: M) -> dict[str, Any]:
    return {**kind.columns(obj), "body": obj.SerializeToString()}


def _insert(conn: Connection, kind: _Kind[M], obj: M) -> None:
    conn.execute(kind.table.insert().values(_row(kind, obj)))


def _where(table: Table, object_id: str, scope: dict[str, str]) -> list[ColumnElement[bool]]:
    return [table.c.id == object_id, *(table.c[name] == value for name, value in scope.items())]


def _exists(conn: Connection, table: Table, object_id: str) -> bool:
    return bool(conn.execute(select(exists().where(table.c.id == object_id))).scalar())


def _get(conn: Connection, kind: _Kind[M], object_id: str, **scope: str) -> M | None:
    stmt = select(kind.table.c.body).where(*_where(kind.table, object_id, scope))
    body = conn.execute(stmt).scalar_one_or_none()
    return None if body is None else kind.parse(body)


def _update(
    conn: Connection,
    kind: _Kind[M],
    object_id: str,
    mutate: Callable[[M], None],
    **scope: str,
) -> M | None:
    table = kind.table
    stmt = select(table.c.seq, table.c.body).where(*_where(table, object_id, scope))
    row = conn.execute(stmt).one_or_none()
    if row is None:
        return None
    obj = kind.parse(row.body)
    before = kind.columns(obj)
    mutate(obj)
    after = kind.columns(obj)
    changed = [name for name in kind.identity if after[name] != before[name]]
    if changed:
        raise ValueError(f"mutate changed {', '.join(changed)} of {object_id}")
    # Rewrite the other derived columns too, so they can never disagree with the body.
    values = {name: value for name, value in after.items() if name not in kind.identity}
    values["body"] = obj.SerializeToString()
    conn.execute(table.update().where(table.c.seq == row.seq).values(values))
    return obj


def _delete(conn: Connection, kind: _Kind[M], object_id: str, **scope: str) -> bool:
    result = conn.execute(kind.table.delete().where(*_where(kind.table, object_id, scope)))
    return result.rowcount > 0


def _cursor_seq(
    conn: Connection,
    table: Table,
    scope: Sequence[ColumnElement[bool]],
    param: str,
    object_id: str,
) -> int:
    """The seq of a cursor object, looked up in the list's scope but not its filters.

    A filter (`run_id`, `purpose`) narrows what a page shows; the cursor only marks a position
    in the list, so any object of the list is a valid one.
    """
    stmt = select(table.c.seq).where(table.c.id == object_id, *scope)
    seq = conn.execute(stmt).scalar_one_or_none()
    if seq is None:
        raise CursorNotFound(param, object_id)
    return int(seq)


def _page(
    conn: Connection,
    kind: _Kind[M],
    query: PageQuery,
    scope: Sequence[ColumnElement[bool]] = (),
    filters: Sequence[ColumnElement[bool]] = (),
) -> Page[M]:
    """A keyset page: a range scan on (scope, seq) that reads at most `limit + 1` rows.

    The page is read starting next to the cursor it hangs on: after `after` normally, before
    `before` when one is given (nearest first, then reversed into the requested order). The
    one extra row says whether more lie beyond the page's far end, which is exactly the
    `has_more` the API wants in either case.
    """
    table = kind.table
    seq = table.c.seq
    descending = query.order == "desc"
    conditions = [*scope, *filters]
    if query.after:
        after = _cursor_seq(conn, table, scope, "after", query.after)
        conditions.append(seq < after if descending else seq > after)
    if query.before:
        before = _cursor_seq(conn, table, scope, "before", query.before)
        conditions.append(seq > before if descending else seq < before)
    backwards = bool(query.before)
    ascending = descending == backwards
    stmt = (
        select(table.c.body)
        .where(*conditions)
        .order_by(seq.asc() if ascending else seq.desc())
        .limit(query.limit + 1)
    )
    bodies = conn.execute(stmt).scalars().all()
    items = [kind.parse(body) for body in bodies[: query.limit]]
    if backwards:
        items.reverse()
    return Page(items=items, has_more=len(bodies) > query.limit)


def _create_thread(
    conn: Connection, thread: threads_pb2.Thread, messages: Sequence[messages_pb2.Message]
) -> None:
    for message in messages:
        if message.thread_id != thread.id:
            raise ValueError(f"message {message.id} names thread {message.thread_id!r}")
    _insert(conn, _THREADS, thread)
    if messages:
        # One executemany; rows are inserted, and so get their seq, in list order.
        conn.execute(schema.messages.insert(), [_row(_MESSAGES, m) for m in messages])


def _delete_thread(conn: Connection, thread_id: str) -> bool:
    runs, steps, messages, threads = schema.runs, schema.run_steps, schema.messages, schema.threads
    # Children first (foreign keys), each through its (parent, seq) index.
    thread_runs = select(runs.c.id).where(runs.c.thread_id == thread_id)
    conn.execute(steps.delete().where(steps.c.run_id.in_(thread_runs)))
    conn.execute(messages.delete().where(messages.c.thread_id == thread_id))
    conn.execute(runs.delete().where(runs.c.thread_id == thread_id))
    return conn.execute(threads.delete().where(threads.c.id == thread_id)).rowcount > 0


def _create_message(conn: Connection, message: messages_pb2.Message) -> bool:
    if not _exists(conn, schema.threads, message.thread_id):
        return False
    _insert(conn, _MESSAGES, message)
    return True


def _list_messages(
    conn: Connection, thread_id: str, query: PageQuery, run_id: str
) -> Page[messages_pb2.Message] | None:
    if not _exists(conn, schema.threads, thread_id):
        return None
    table = schema.messages
    filters = [table.c.run_id == run_id] if run_id else []
    return _page(conn, _MESSAGES, query, scope=[table.c.thread_id == thread_id], filters=filters)


def _list_files(conn: Connection, query: PageQuery, purpose: str) -> Page[files_pb2.File]:
    filters = [schema.files.c.purpose == purpose] if purpose else []
    return _page(conn, _FILES, query, filters=filters)


class SqlStore(Store):
    """The store on a SQL database; see `Database` for how transactions run."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def open(self) -> None:
        await self._db.run_migrations()

    async def close(self) -> None:
        await self._db.close()

    # Assistants

    async def create_assistant(self, assistant: assistants_pb2.Assistant) -> None:
        await self._db.write(lambda conn: _insert(conn, _ASSISTANTS, assistant))

    async def get_assistant(self, assistant_id: str) -> assistants_pb2.Assistant | None:
        return await self._db.read(lambda conn: _get(conn, _ASSISTANTS, assistant_id))

    async def list_assistants(self, query: PageQuery) -> Page[assistants_pb2.Assistant]:
        return await self._db.read(lambda conn: _page(conn, _ASSISTANTS, query))

    async def update_assistant(
        self, assistant_id: str, mutate: Callable[[assistants_pb2.Assistant], None]
    ) -> assistants_pb2.Assistant | None:
        return await self._db.write(lambda conn: _update(conn, _ASSISTANTS, assistant_id, mutate))

    async def delete_assistant(self, assistant_id: str) -> bool:
        return await self._db.write(lambda conn: _delete(conn, _ASSISTANTS, assistant_id))

    # Threads

    async def create_thread(
        self, thread: threads_pb2.Thread, messages: list[messages_pb2.Message]
    ) -> None:
        await self._db.write(lambda conn: _create_thread(conn, thread, messages))

    async def get_thread(self, thread_id: str) -> threads_pb2.Thread | None:
        return await self._db.read(lambda conn: _get(conn, _THREADS, thread_id))

    async def update_thread(
        self, thread_id: str, mutate: Callable[[threads_pb2.Thread], None]
    ) -> threads_pb2.Thread | None:
        return await self._db.write(lambda conn: _update(conn, _THREADS, thread_id, mutate))

    async def delete_thread(self, thread_id: str) -> bool:
        return await self._db.write(lambda conn: _delete_thread(conn, thread_id))

    # Messages

    async def create_message(self, message: messages_pb2.Message) -> bool:
        return await self._db.write(lambda conn: _create_message(conn, message))

    async def get_message(self, thread_id: str, message_id: str) -> messages_pb2.Message | None:
        return await self._db.read(
            lambda conn: _get(conn, _MESSAGES, message_id, thread_id=thread_id)
        )

    async def list_messages(
        self, thread_id: str, query: PageQuery, run_id: str = ""
    ) -> Page[messages_pb2.Message] | None:
        return await self._db.read(lambda conn: _list_messages(conn, thread_id, query, run_id))

    async def update_message(
        self,
        thread_id: str,
        message_id: str,
        mutate: Callable[[messages_pb2.Message], None],
    ) -> messages_pb2.Message | None:
        return await self._db.write(
            lambda conn: _update(conn, _MESSAGES, message_id, mutate, thread_id=thread_id)
        )

    async def delete_message(self, thread_id: str, message_id: str) -> bool:
        return await self._db.write(
            lambda conn: _delete(conn, _MESSAGES, message_id, thread_id=thread_id)
        )

    # Files

    async def create_file(self, file: files_pb2.File) -> None:
        await self._db.write(lambda conn: _insert(conn, _FILES, file))

    async def get_file(self, file_id: str) -> files_pb2.File | None:
        return await self._db.read(lambda conn: _get(conn, _FILES, file_id))

    async def list_files(self, query: PageQuery, purpose: str = "") -> Page[files_pb2.File]:
        return await self._db.read(lambda conn: _list_files(conn, query, purpose))

    async def delete_file(self, file_id: str) -> bool:
        return await self._db.write(lambda conn: _delete(conn, _FILES, file_id))
