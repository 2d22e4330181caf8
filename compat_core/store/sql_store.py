"""`Store` on SQL through SQLAlchemy Core.

Every operation is a synchronous function of a `Connection` that a `TransactionRunner` (SQLite's
`Database`, `PostgresDatabase`) runs as one transaction; none of them knows which database it
talks to. The async methods of `SqlStore` only choose the function and whether it reads or
writes.

Concurrency. SQLite runs one write transaction at a time; PostgreSQL runs them side by side
(and several replicas may share it), so every decision a write makes on what it read must hold
the rows it read:

- A write that decides on a thread's state (the one-active-run rule), or appends to the
  thread's lists, first locks the thread's row (`_lock_thread`). Writes to one thread are so
  serialised, and its messages, runs and steps get their `seq` in commit order: a reader
  paging a thread never skips an object committed later with a smaller `seq`, and the
  newest `created_at` of a list is known when an object is appended (`_keep_time_order`).
- A list with no parent row (assistants, files, vector stores) has a row of its own in
  `list_locks` that its inserts lock, with the same effect.
- A read-modify-write (`update_*`, the replace half of an upsert) locks the row it rewrites, so
  two concurrent mutations apply one after the other instead of one silently losing.
- Locks are taken in one order, the thread before anything in it (and several threads in ID
  order), so that two transactions cannot each hold what the other waits for.

`with_for_update()` renders nothing on SQLite, whose write lock already covers all of this.

`mutate` callbacks of the `update_*` methods run inside the write transaction, on SQLite's
writer thread or inside PostgreSQL's `run_sync` on the event loop thread: they must be quick
and must not touch the event loop.
"""

from __future__ import annotations

import functools
import heapq
import itertools
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, cast

from google.protobuf.message import Message
from sqlalchemy import (
    ColumnElement,
    Connection,
    Delete,
    Insert,
    Integer,
    Select,
    Table,
    Update,
    bindparam,
    exists,
    literal_column,
    select,
)

from compat_core.retrieval import expiry
from compat_core.retrieval.filters import Filter
from compat_core.store import (
    prepared,
    schema,
    sql_chunks,
    sql_claims,
    sql_events,
    sql_file_attributes,
    sql_vector_batches,
    sql_vector_files,
    sql_vector_stores,
    sql_vectors,
)
from compat_core.store.base import (
    ACTIVE_RUN_STATUSES,
    EXECUTING_RUN_STATUSES,
    ChunkMatch,
    ChunkVectors,
    CursorNotFound,
    Lease,
    LeaseRenewal,
    NewChunk,
    Page,
    PageQuery,
    Store,
    StoredChunk,
    StoredEvent,
    ThreadBusy,
    VectorStoreWrites,
)
from compat_core.store.notify import PostgresListener
from compat_core.store.runner import TransactionRunner
from compat_core.store.vector_cache import VectorCache
from compat_core.v1 import (
    assistants_pb2,
    files_pb2,
    messages_pb2,
    runs_pb2,
    threads_pb2,
    vector_stores_pb2,
)

M = TypeVar("M", bound=Message)
# A thread with at most this many messages is read for a prompt as a bounded read.
FEW_MESSAGES = 32
T = TypeVar("T")


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
    # The columns that pick out the list an object is listed in (empty: the whole table); None
    # for a kind that no API lists.
    list_scope: tuple[str, ...] | None


class _Stamped(Protocol):
    created_at: int


def _assistant_columns(a: assistants_pb2.Assistant) -> dict[str, Any]:
    return {"id": a.id, "created_at": a.created_at}


def _vector_store_columns(v: vector_stores_pb2.VectorStore) -> dict[str, Any]:
    return {"id": v.id, "created_at": v.created_at, "expires_at": expiry.pending_expiry(v)}


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


def _run_columns(r: runs_pb2.Run) -> dict[str, Any]:
    return {
        "id": r.id,
        "thread_id": r.thread_id,
        "status": int(r.status),
        "created_at": r.created_at,
    }


def _step_columns(s: runs_pb2.RunStep) -> dict[str, Any]:
    return {"id": s.id, "run_id": s.run_id, "thread_id": s.thread_id, "created_at": s.created_at}


_ASSISTANTS = _Kind(
    schema.assistants, assistants_pb2.Assistant.FromString, _assistant_columns, ("id",), ()
)
_VECTOR_STORES = _Kind(
    schema.vector_stores,
    vector_stores_pb2.VectorStore.FromString,
    _vector_store_columns,
    ("id",),
    (),
)
_VECTOR_STORE_FILES = _Kind(
    schema.vector_store_files,
    vector_stores_pb2.VectorStoreFile.FromString,
    sql_vector_files.columns,
    ("id", "vector_store_id", "status", "usage_bytes", "batch_id"),
    ("vector_store_id",),
)
_THREADS = _Kind(schema.threads, threads_pb2.Thread.FromString, _thread_columns, ("id",), None)
_MESSAGES = _Kind(
    schema.messages,
    messages_pb2.Message.FromString,
    _message_columns,
    ("id", "thread_id"),
    ("thread_id",),
)
# `purpose` filters the list of files; it does not make lists of its own.
_FILES = _Kind(schema.files, files_pb2.File.FromString, _file_columns, ("id",), ())
_RUNS = _Kind(
    schema.runs, runs_pb2.Run.FromString, _run_columns, ("id", "thread_id"), ("thread_id",)
)
_STEPS = _Kind(
    schema.run_steps,
    runs_pb2.RunStep.FromString,
    _step_columns,
    ("id", "run_id", "thread_id"),
    ("run_id",),
)


# Statements, built once per shape and executed with their values as parameters.
#
# Building `select(...).where(...)` anew costs more than running it: constructing the clauses
# and computing the cache key under which SQLAlchemy finds the compiled SQL came to about 50 µs
# a statement, against some 12 µs for executing a ready one (whose cache key is memoized on
# the object). So each function below builds its statement on first use, for its table and
# the names of the columns it compares, and every later call reuses it. A value is bound as
# `:p_<column>` (or another `p_` name): the prefix keeps the names clear of the column names
# that an UPDATE's SET clause takes its values by.


def _p(name: str) -> str:
    """The name of the parameter that carries a value for the column `name`."""
    return f"p_{name}"


def _params(values: dict[str, Any]) -> dict[str, Any]:
    """`{column: value}` as the parameters of the `_equal` conditions on those columns."""
    return {_p(name): value for name, value in values.items()}


def _equal(table: Table, names: Iterable[str]) -> list[ColumnElement[bool]]:
    # The parameter takes the column's type, as a literal compared to it would.
    return [table.c[name] == bindparam(_p(name)) for name in names]


@functools.cache
def _select_where(
    table: Table, columns: tuple[str, ...], names: tuple[str, ...], lock: bool = False
) -> Select[Any]:
    """`SELECT columns FROM table WHERE name = :p_name AND …`, `FOR UPDATE` if `lock`."""
    stmt = select(*(table.c[name] for name in columns)).where(*_equal(table, names))
    return stmt.with_for_update() if lock else stmt


@functools.cache
def _exists_stmt(table: Table) -> Select[Any]:
    return select(exists().where(table.c.id == bindparam(_p("id"))))


@functools.cache
def _newest_stmt(table: Table, scope: tuple[str, ...]) -> Select[Any]:
    """The `created_at` of the last row of a list (by `seq`)."""
    return (
        select(table.c.created_at)
        .where(*_equal(table, scope))
        .order_by(table.c.seq.desc())
        .limit(1)
    )


@functools.cache
def _page_stmt(
    table: Table, names: tuple[str, ...], after: bool, before: bool, descending: bool
) -> Select[Any]:
    """The bodies of a keyset page (see `_page`); the cursors' seqs bind as `p_after` and
    `p_before`, the number of rows to read as `p_limit`."""
    seq = table.c.seq
    conditions = _equal(table, names)
    if after:
        after_seq = bindparam(_p("after"), type_=seq.type)
        conditions.append(seq < after_seq if descending else seq > after_seq)
    if before:
        before_seq = bindparam(_p("before"), type_=seq.type)
        conditions.append(seq > before_seq if descending else seq < before_seq)
    # Read starting next to the cursor the page hangs on: `before` when given, else `after`.
    ascending = descending == before
    return (
        select(table.c.body)
        .where(*conditions)
        .order_by(seq.asc() if ascending else seq.desc())
        .limit(bindparam(_p("limit"), type_=Integer))
    )


@functools.cache
def _all_stmt(table: Table, parent: str) -> Select[Any]:
    return select(table.c.body).where(*_equal(table, (parent,))).order_by(table.c.seq.asc())


@functools.cache
def _first_stmt(table: Table, parent: str) -> Select[Any]:
    return _all_stmt(table, parent).limit(bindparam(_p("limit"), type_=Integer))


@functools.cache
def _active_run_stmt(other_than: bool) -> Select[Any]:
    runs = schema.runs
    # The statuses are written into the SQL: as parameters of an IN they would be "expanding"
    # ones, which SQLAlchemy renders into the SQL afresh at every execution.
    statuses: list[ColumnElement[Any]] = [
        literal_column(str(int(status))) for status in sorted(ACTIVE_RUN_STATUSES)
    ]
    conditions = [runs.c.thread_id == bindparam(_p("thread_id")), runs.c.status.in_(statuses)]
    if other_than:
        conditions.append(runs.c.id != bindparam(_p("id")))
    return select(runs.c.id).where(*conditions).order_by(runs.c.seq.desc()).limit(1)


_RUNS_WITH_STATUS = (
    select(schema.runs.c.seq, schema.runs.c.body)
    .where(schema.runs.c.status == bindparam(_p("status")))
    .order_by(schema.runs.c.seq.asc())
    .limit(bindparam(_p("limit"), type_=Integer))
)


@functools.cache
def _insert_stmt(table: Table) -> Insert:
    return table.insert()


@functools.cache
def _rewrite_stmt(table: Table) -> Update:
    """An UPDATE of the row at `:p_seq`, setting the columns its parameters name."""
    return table.update().where(table.c.seq == bindparam(_p("seq")))


@functools.cache
def _delete_stmt(table: Table, names: tuple[str, ...]) -> Delete:
    return table.delete().where(*_equal(table, names))


# Operations on one connection, each run as a whole transaction.


def _row(kind: _Kind[M], obj: M) -> dict[str, Any]:
    return {**kind.columns(obj), "body": obj.SerializeToString()}


def _append(conn: Connection, kind: _Kind[M], objects: Sequence[M]) -> None:
    """Insert `objects`, all of one list, at the end of it in their order.

    The caller holds the lock of a thread's list (its thread's row) or the list is new; a list
    of a whole table is locked here. Each object's `created_at` is raised, in place, to the
    newest before it if it is older (see `Store`), so the list never runs back in time.
    """
    if not objects:
        return
    if kind.list_scope is not None:
        if not kind.list_scope:
            _lock_list(conn, kind.table.name)
        _keep_time_order(conn, kind, objects)
    # For several rows one executemany; rows are inserted, and get their seq, in list order.
    prepared.insert(conn, _insert_stmt(kind.table), [_row(kind, obj) for obj in objects])


def _lock_list(conn: Connection, name: str) -> None:
    """Lock the row of a list that has no parent row to lock (`schema.list_locks`)."""
    stmt = _select_where(schema.list_locks, ("name",), ("name",), lock=True)
    if prepared.first(conn, stmt, _params({"name": name})) is None:
        raise LookupError(f"no lock row for the list {name!r}")


def _keep_time_order(conn: Connection, kind: _Kind[M], objects: Sequence[M]) -> None:
    """Raise `created_at` where needed so that it never decreases along the list.

    The objects are stamped before their transaction starts, so on a database that runs
    writers side by side they can reach the end of the list in the other order than they were
    stamped, and replicas' clocks differ. The newest object is the last by `seq` (read through
    the list's index): raising each new one to it keeps the list in time order.
    """
    assert kind.list_scope is not None
    first = kind.columns(objects[0])
    scope = {name: first[name] for name in kind.list_scope}
    stmt = _newest_stmt(kind.table, kind.list_scope)
    newest: int | None = prepared.scalar(conn, stmt, _params(scope))
    for obj in objects:
        stamped = cast(_Stamped, obj)
        if newest is not None and stamped.created_at < newest:
            stamped.created_at = newest
        newest = stamped.created_at


def _exists(conn: Connection, table: Table, object_id: str) -> bool:
    return bool(prepared.scalar(conn, _exists_stmt(table), _params({"id": object_id})))


def _lock_thread(conn: Connection, thread_id: str) -> bool:
    """Lock the thread's row until the transaction ends; False if there is no such thread.

    Every write that checks or changes what runs a thread has, or appends to its messages,
    runs or steps, starts here, so such writes on one thread happen one after the other.
    """
    stmt = _select_where(schema.threads, ("id",), ("id",), lock=True)
    return prepared.first(conn, stmt, _params({"id": thread_id})) is not None


def _get(conn: Connection, kind: _Kind[M], object_id: str, **scope: str) -> M | None:
    stmt = _select_where(kind.table, ("body",), ("id", *scope))
    body = prepared.scalar(conn, stmt, _params({"id": object_id, **scope}))
    return None if body is None else kind.parse(body)


def _update(
    conn: Connection,
    kind: _Kind[M],
    object_id: str,
    mutate: Callable[[M], None],
    **scope: str,
) -> M | None:
    # Locked from the read on: a concurrent update of the row waits for this one to commit
    # and then reads its result, instead of both reading the old body and one losing.
    stmt = _select_where(kind.table, ("seq", "body"), ("id", *scope), lock=True)
    row = prepared.first(conn, stmt, _params({"id": object_id, **scope}))
    if row is None:
        return None
    seq, body = row
    obj = kind.parse(body)
    before = kind.columns(obj)
    mutate(obj)
    after = kind.columns(obj)
    changed = [name for name in kind.identity if after[name] != before[name]]
    if changed:
        raise ValueError(f"mutate changed {', '.join(changed)} of {object_id}")
    _rewrite(conn, kind, seq, obj)
    return obj


def _rewrite(conn: Connection, kind: _Kind[M], seq: int, obj: M) -> None:
    """Replace the body of the row at `seq` in place; its identity columns stay as they are.

    The other derived columns are rewritten too, so they can never disagree with the body.
    """
    values = {name: value for name, value in kind.columns(obj).items() if name not in kind.identity}
    values["body"] = obj.SerializeToString()
    values[_p("seq")] = seq
    prepared.execute(conn, _rewrite_stmt(kind.table), values)


def _upsert(conn: Connection, kind: _Kind[M], obj: M) -> None:
    """Insert `obj`, or replace the row with its ID in place (keeping its seq, so its place).

    Raises ValueError if the existing row's identity columns differ from the object's: a
    replace must not move an object to another parent.
    """
    columns = kind.columns(obj)
    stmt = _select_where(kind.table, ("seq", *kind.identity), ("id",), lock=True)
    row = prepared.first(conn, stmt, _params({"id": columns["id"]}))
    if row is None:
        _append(conn, kind, [obj])
        return
    seq, *stored = row
    changed = [
        name for name, value in zip(kind.identity, stored, strict=True) if value != columns[name]
    ]
    if changed:
        raise ValueError(f"{columns['id']} is stored with other {', '.join(changed)}")
    _rewrite(conn, kind, seq, obj)


def _delete(conn: Connection, kind: _Kind[M], object_id: str, **scope: str) -> bool:
    stmt = _delete_stmt(kind.table, ("id", *scope))
    return prepared.execute(conn, stmt, _params({"id": object_id, **scope})) > 0


def _cursor_seq(
    conn: Connection, table: Table, scope: dict[str, str], param: str, object_id: str
) -> int:
    """The seq of a cursor object, looked up in the list's scope but not its filters.

    A filter (`run_id`, `purpose`) narrows what a page shows; the cursor only marks a position
    in the list, so any object of the list is a valid one.
    """
    stmt = _select_where(table, ("seq",), ("id", *scope))
    seq = prepared.scalar(conn, stmt, _params({"id": object_id, **scope}))
    if seq is None:
        raise CursorNotFound(param, object_id)
    return int(seq)


def _page(
    conn: Connection,
    kind: _Kind[M],
    query: PageQuery,
    scope: dict[str, str] | None = None,
    filters: dict[str, str] | None = None,
) -> Page[M]:
    """A keyset page: a range scan on (scope, seq) that reads at most `limit + 1` rows.

    `scope` picks out the list (the columns of `kind.list_scope`), `filters` narrow what the
    page shows of it. The page is read starting next to the cursor it hangs on: after `after`
    normally, before `before` when one is given (nearest first, then reversed into the
    requested order). The one extra row says whether more lie beyond the page's far end,
    which is exactly the `has_more` the API wants in either case.
    """
    table = kind.table
    scope = scope or {}
    equal = {**scope, **(filters or {})}
    params = _params(equal)
    if query.after:
        params[_p("after")] = _cursor_seq(conn, table, scope, "after", query.after)
    if query.before:
        params[_p("before")] = _cursor_seq(conn, table, scope, "before", query.before)
    params[_p("limit")] = query.limit + 1
    stmt = _page_stmt(
        table, tuple(equal), bool(query.after), bool(query.before), query.order == "desc"
    )
    bodies: list[bytes] = prepared.scalars(conn, stmt, params)
    shown = bodies[: query.limit]
    if query.before:
        shown.reverse()
    return Page(shown, kind.parse, has_more=len(bodies) > query.limit)


def _thread_page(
    conn: Connection,
    kind: _Kind[M],
    thread_id: str,
    query: PageQuery,
    filters: dict[str, str] | None = None,
) -> Page[M] | None:
    """A page of one of a thread's lists; None if there is no such thread.

    The page is read first and the thread looked up only when the page cannot vouch for it:
    a row of the list is a child of the thread (a foreign key), and both reads see one
    snapshot, so a page with rows proves the thread is there. That spares the common case a
    statement, and answers as if the thread had been looked up first: a missing thread is
    None, whatever its cursors.
    """
    try:
        page = _page(conn, kind, query, {"thread_id": thread_id}, filters)
    except CursorNotFound:
        if not _exists(conn, schema.threads, thread_id):
            return None
        raise
    if not page.bodies and not _exists(conn, schema.threads, thread_id):
        return None
    return page


def _insert_vector_store(conn: Connection, store: vector_stores_pb2.VectorStore) -> None:
    _append(conn, _VECTOR_STORES, [store])


def _create_assistant(
    conn: Connection, assistant: assistants_pb2.Assistant, writes: VectorStoreWrites | None
) -> None:
    """Insert an assistant after the vector stores it creates."""
    if writes is not None:
        if writes.thread_files is not None:
            raise ValueError("only a thread's writes carry thread files")
        sql_vector_stores.create(conn, writes.new, _insert_vector_store)
    _append(conn, _ASSISTANTS, [assistant])


def _insert_thread(
    conn: Connection, thread: threads_pb2.Thread, writes: VectorStoreWrites | None
) -> None:
    """Insert a new thread after the vector stores it creates; its `thread_files` go to its
    store first, which may change the thread before it is inserted."""
    if writes is not None:
        sql_vector_stores.create(conn, writes.new, _insert_vector_store)
        if writes.thread_files is not None:
            insert = _insert_vector_store
            sql_vector_stores.attach(conn, thread, writes.thread_files, insert, writes.moment)
    _append(conn, _THREADS, [thread])


def _attach_to_thread(conn: Connection, thread_id: str, writes: VectorStoreWrites | None) -> None:
    """Give an existing thread's store `thread_files` (the caller locked the thread)."""
    if writes is None:
        return
    if writes.new:
        raise ValueError("an existing thread creates no inline vector stores")
    if writes.thread_files is None:
        return
    stmt = _select_where(schema.threads, ("seq", "body"), ("id",))
    row = prepared.first(conn, stmt, _params({"id": thread_id}))
    if row is None:
        raise LookupError(f"thread {thread_id} is locked but not found")
    seq, body = row
    thread = threads_pb2.Thread.FromString(body)
    insert = _insert_vector_store
    if sql_vector_stores.attach(conn, thread, writes.thread_files, insert, writes.moment):
        _rewrite(conn, _THREADS, seq, thread)


def _create_thread(
    conn: Connection,
    thread: threads_pb2.Thread,
    messages: Sequence[messages_pb2.Message],
    writes: VectorStoreWrites | None,
) -> None:
    for message in messages:
        if message.thread_id != thread.id:
            raise ValueError(f"message {message.id} names thread {message.thread_id!r}")
    _insert_thread(conn, thread, writes)
    _append(conn, _MESSAGES, messages)


def _delete_thread(conn: Connection, thread_id: str) -> bool:
    runs, steps, messages, threads = schema.runs, schema.run_steps, schema.messages, schema.threads
    # The thread first, as every other writer to it locks it first: deleting children before
    # could take a row that a concurrent run's save waits on while it holds the thread.
    if not _lock_thread(conn, thread_id):
        return False
    # Children first (foreign keys), each through its (parent, seq) index.
    thread_runs = select(runs.c.id).where(runs.c.thread_id == thread_id)
    sql_claims.delete_for_runs(conn, thread_runs)
    conn.execute(steps.delete().where(steps.c.run_id.in_(thread_runs)))
    conn.execute(messages.delete().where(messages.c.thread_id == thread_id))
    conn.execute(runs.delete().where(runs.c.thread_id == thread_id))
    return conn.execute(threads.delete().where(threads.c.id == thread_id)).rowcount > 0


def _active_run_id(conn: Connection, thread_id: str, other_than: str = "") -> str | None:
    """The ID of an active run of the thread (apart from `other_than`), if there is one."""
    params = _params(
        {"thread_id": thread_id, "id": other_than} if other_than else {"thread_id": thread_id}
    )
    run_id = prepared.scalar(conn, _active_run_stmt(bool(other_than)), params)
    return None if run_id is None else str(run_id)


def _check_idle(conn: Connection, thread_id: str, other_than: str = "") -> None:
    active = _active_run_id(conn, thread_id, other_than)
    if active is not None:
        raise ThreadBusy(thread_id, active)


def _create_message(
    conn: Connection, message: messages_pb2.Message, writes: VectorStoreWrites | None
) -> bool:
    if not _lock_thread(conn, message.thread_id):
        return False
    _check_idle(conn, message.thread_id)
    _attach_to_thread(conn, message.thread_id, writes)
    _append(conn, _MESSAGES, [message])
    return True


def _list_messages(
    conn: Connection, thread_id: str, query: PageQuery, run_id: str
) -> Page[messages_pb2.Message] | None:
    return _thread_page(conn, _MESSAGES, thread_id, query, {"run_id": run_id} if run_id else None)


def _list_files(conn: Connection, query: PageQuery, purpose: str) -> Page[files_pb2.File]:
    return _page(conn, _FILES, query, filters={"purpose": purpose} if purpose else None)


def _create_run(
    conn: Connection,
    run: runs_pb2.Run,
    messages: Sequence[messages_pb2.Message],
    thread: threads_pb2.Thread | None,
    lease: Lease | None,
    reply: tuple[messages_pb2.Message, runs_pb2.RunStep] | None = None,
    writes: VectorStoreWrites | None = None,
) -> bool:
    steps: list[runs_pb2.RunStep] = []
    if reply is not None:
        message, step = reply
        if (step.run_id, step.thread_id) != (run.id, run.thread_id):
            raise ValueError(f"step {step.id} is not a step of run {run.id}")
        # The reply goes after the run's other messages; its step after the run (a foreign key).
        messages, steps = [*messages, message], [step]
    for message in messages:
        if message.thread_id != run.thread_id:
            raise ValueError(f"message {message.id} names thread {message.thread_id!r}")
    if thread is not None:
        if thread.id != run.thread_id:
            raise ValueError(f"run {run.id} names thread {run.thread_id!r}, not {thread.id!r}")
        _insert_thread(conn, thread, writes)
    elif not _lock_thread(conn, run.thread_id):
        return False
    # A new thread cannot have a run yet, and no one else sees it before this commits; an
    # existing one is checked while its row is locked, so two runs cannot both pass.
    _check_idle(conn, run.thread_id)
    if thread is None:
        _attach_to_thread(conn, run.thread_id, writes)
    _append(conn, _MESSAGES, messages)
    _append(conn, _RUNS, [run])
    sql_claims.sync_lease(conn, run, lease)
    _append(conn, _STEPS, steps)
    return True


def _update_run(
    conn: Connection,
    thread_id: str,
    run_id: str,
    mutate: Callable[[runs_pb2.Run], None],
    lease: Lease | None,
) -> runs_pb2.Run | None:
    # The thread before the run: `mutate` may make the run active again, which is checked
    # against the thread's other runs.
    if not _lock_thread(conn, thread_id):
        return None
    run = _update(conn, _RUNS, run_id, mutate, thread_id=thread_id)
    if run is not None:
        if run.status in ACTIVE_RUN_STATUSES:
            _check_idle(conn, thread_id, other_than=run_id)
        sql_claims.sync_lease(conn, run, lease)
    return run


def _run_thread(conn: Connection, run_id: str) -> str | None:
    stmt = _select_where(schema.runs, ("thread_id",), ("id",))
    thread_id = prepared.scalar(conn, stmt, _params({"id": run_id}))
    return None if thread_id is None else str(thread_id)


def _save_progress(
    conn: Connection,
    run: runs_pb2.Run | None,
    steps: Sequence[runs_pb2.RunStep],
    messages: Sequence[messages_pb2.Message],
    guard: Callable[[runs_pb2.Run], None] | None = None,
    holder: str | None = None,
) -> None:
    # Everything saved together belongs to one thread: the run's, else the first object's.
    if run is not None:
        thread_id = run.thread_id
    elif steps:
        thread_id = steps[0].thread_id
    elif messages:
        thread_id = messages[0].thread_id
    else:
        return
    named = [(step.id, step.thread_id) for step in steps]
    named += [(message.id, message.thread_id) for message in messages]
    for object_id, object_thread_id in named:
        if object_thread_id != thread_id:
            raise ValueError(f"{object_id} names thread {object_thread_id!r}, not {thread_id!r}")
    # Whether the thread exists or not: inserting into a missing one fails on its foreign key.
    _lock_thread(conn, thread_id)
    held: set[str] = set()
    if holder is not None:
        run_ids = [run.id] if run is not None else [step.run_id for step in steps]
        run_ids += [message.run_id for message in messages if message.run_id]
        for held_run_id in dict.fromkeys(run_ids):
            sql_claims.check_holder(conn, held_run_id, holder)
            held.add(held_run_id)
    if run is not None:
        _save_run(conn, run, guard, lease_held=run.id in held)
    # A step's run must be on the step's thread (its thread_id column is not a foreign key);
    # the run saved along is.
    for step_run_id in dict.fromkeys(step.run_id for step in steps):
        if run is not None and step_run_id == run.id:
            continue
        if _run_thread(conn, step_run_id) != thread_id:
            raise ValueError(f"run {step_run_id!r} is not a run of thread {thread_id!r}")
    for step in steps:
        _upsert(conn, _STEPS, step)
    for message in messages:
        _upsert(conn, _MESSAGES, message)


def _save_run(
    conn: Connection,
    run: runs_pb2.Run,
    guard: Callable[[runs_pb2.Run], None] | None,
    lease_held: bool,
) -> None:
    """Insert or rewrite a run (its thread locked), with what follows from its status.

    One read of the stored row serves the identity check, `guard` and whether the run was
    active already; the statements a save can skip are skipped, since every one of them is a
    turn of the GIL on SQLite's writer thread: a run already active was the thread's only one,
    and a lease its holder just checked is there.
    """
    stmt = _select_where(schema.runs, ("seq", "thread_id", "status", "body"), ("id",), lock=True)
    row = prepared.first(conn, stmt, _params({"id": run.id}))
    was_active = False
    if row is None:
        _append(conn, _RUNS, [run])
    else:
        seq, stored_thread_id, stored_status, body = row
        if stored_thread_id != run.thread_id:
            raise ValueError(f"{run.id} is stored with other thread_id")
        if guard is not None:
            guard(_RUNS.parse(body))
        _rewrite(conn, _RUNS, seq, run)
        was_active = stored_status in ACTIVE_RUN_STATUSES
    if run.status in ACTIVE_RUN_STATUSES and not was_active:
        # Inserting or re-activating a run must not give its thread a second active one.
        _check_idle(conn, run.thread_id, other_than=run.id)
    if not (lease_held and run.status in EXECUTING_RUN_STATUSES):
        sql_claims.sync_lease(conn, run, None)


def _delete_run_output(
    conn: Connection, step_ids: Sequence[str], message_ids: Sequence[str]
) -> None:
    if not step_ids and not message_ids:
        return
    # The threads of what goes, locked first and in ID order (see the module's docstring).
    threads, steps, messages = schema.threads, schema.run_steps, schema.messages
    owners = (
        select(steps.c.thread_id)
        .where(steps.c.id.in_(step_ids))
        .union(select(messages.c.thread_id).where(messages.c.id.in_(message_ids)))
    )
    conn.execute(
        select(threads.c.id)
        .where(threads.c.id.in_(owners))
        .order_by(threads.c.id)
        .with_for_update()
    ).all()
    if step_ids:
        conn.execute(schema.run_steps.delete().where(schema.run_steps.c.id.in_(step_ids)))
    if message_ids:
        conn.execute(schema.messages.delete().where(schema.messages.c.id.in_(message_ids)))


def _runs_with_status(
    conn: Connection, statuses: Collection[int], limit: int
) -> list[runs_pb2.Run]:
    """The oldest `limit` runs in `statuses`, each status read along its (status, seq) index.

    One ordered range scan per status, merged here: a single `status IN (...) ORDER BY seq`
    would read every matching row and sort them all before the limit applies.
    """
    if limit <= 0:
        return []
    streams: list[Iterable[tuple[int, bytes]]] = []
    for status in sorted(set(statuses)):
        params = _params({"status": status, "limit": limit})
        streams.append(
            [(int(seq), body) for seq, body in prepared.rows(conn, _RUNS_WITH_STATUS, params)]
        )
    oldest = itertools.islice(heapq.merge(*streams), limit)
    return [_RUNS.parse(body) for _, body in oldest]


def _list_runs(conn: Connection, thread_id: str, query: PageQuery) -> Page[runs_pb2.Run] | None:
    return _thread_page(conn, _RUNS, thread_id, query)


def _list_steps(
    conn: Connection, thread_id: str, run_id: str, query: PageQuery
) -> Page[runs_pb2.RunStep] | None:
    if _run_thread(conn, run_id) != thread_id:
        return None
    # A step's thread is its run's (save_progress checks), so the run scopes the list.
    return _page(conn, _STEPS, query, {"run_id": run_id})


def _all(conn: Connection, kind: _Kind[M], parent: str, parent_id: str) -> list[M]:
    stmt = _all_stmt(kind.table, parent)
    return [kind.parse(body) for body in prepared.scalars(conn, stmt, _params({parent: parent_id}))]


def _all_if_few(
    conn: Connection, kind: _Kind[M], parent: str, parent_id: str, limit: int
) -> list[M] | None:
    """Every child of the parent if it has at most `limit`, else None (reading `limit + 1`)."""
    params = _params({parent: parent_id, "limit": limit + 1})
    bodies = prepared.scalars(conn, _first_stmt(kind.table, parent), params)
    if len(bodies) > limit:
        return None
    return [kind.parse(body) for body in bodies]


class SqlStore(Store):
    """The store on a SQL database; its `TransactionRunner` decides how transactions run."""

    def __init__(
        self, database: TransactionRunner, listener: PostgresListener | None = None
    ) -> None:
        self._db = database
        self._listener = listener
        # SQLite's dense search runs in the core on these (PostgreSQL's runs in pgvector).
        self._vectors = VectorCache()
        # Vector lengths whose index this process has made sure of (see `_ensure_dimension`).
        self._dimensions: set[int] = set()

    async def _lookup(self, fn: Callable[[Connection], T]) -> T:
        """A bounded read: rows by key, or one page of a list (see `TransactionRunner.read`)."""
        return await self._db.read(fn, bounded=True)

    async def open(self) -> None:
        await self._db.run_migrations()

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()
        await self._db.close()

    # Assistants

    async def create_assistant(
        self,
        assistant: assistants_pb2.Assistant,
        vector_stores: VectorStoreWrites | None = None,
    ) -> None:
        await self._db.write(lambda conn: _create_assistant(conn, assistant, vector_stores))

    async def get_assistant(self, assistant_id: str) -> assistants_pb2.Assistant | None:
        return await self._lookup(lambda conn: _get(conn, _ASSISTANTS, assistant_id))

    async def list_assistants(self, query: PageQuery) -> Page[assistants_pb2.Assistant]:
        return await self._lookup(lambda conn: _page(conn, _ASSISTANTS, query))

    async def update_assistant(
        self, assistant_id: str, mutate: Callable[[assistants_pb2.Assistant], None]
    ) -> assistants_pb2.Assistant | None:
        return await self._db.write(lambda conn: _update(conn, _ASSISTANTS, assistant_id, mutate))

    async def delete_assistant(self, assistant_id: str) -> bool:
        return await self._db.write(lambda conn: _delete(conn, _ASSISTANTS, assistant_id))

    # Vector stores

    async def create_vector_store(self, store: vector_stores_pb2.VectorStore) -> None:
        await self._db.write(lambda conn: _append(conn, _VECTOR_STORES, [store]))

    async def get_vector_store(self, store_id: str) -> vector_stores_pb2.VectorStore | None:
        return await self._lookup(lambda conn: _get(conn, _VECTOR_STORES, store_id))

    async def list_vector_stores(self, query: PageQuery) -> Page[vector_stores_pb2.VectorStore]:
        return await self._lookup(lambda conn: _page(conn, _VECTOR_STORES, query))

    async def update_vector_store(
        self, store_id: str, mutate: Callable[[vector_stores_pb2.VectorStore], None]
    ) -> vector_stores_pb2.VectorStore | None:
        return await self._db.write(lambda conn: _update(conn, _VECTOR_STORES, store_id, mutate))

    async def delete_vector_store(self, store_id: str) -> bool:
        def delete(conn: Connection) -> bool:
            sql_vector_files.delete_store(conn, store_id)
            sql_vector_batches.delete_store(conn, store_id)
            return _delete(conn, _VECTOR_STORES, store_id)

        return await self._db.write(delete)

    async def touch_vector_stores(self, store_ids: Collection[str], moment: int) -> None:
        await self._db.write(lambda conn: sql_vector_stores.touch(conn, store_ids, moment))

    async def expire_vector_stores(self, moment: int, limit: int) -> list[str]:
        return await self._db.write(lambda conn: sql_vector_stores.expire(conn, moment, limit))

    # Files of vector stores

    async def add_vector_store_files(
        self, vector_store_id: str, files: Sequence[vector_stores_pb2.VectorStoreFile]
    ) -> list[vector_stores_pb2.VectorStoreFile] | None:
        return await self._db.write(lambda conn: sql_vector_files.add(conn, vector_store_id, files))

    async def get_vector_store_file(
        self, vector_store_id: str, file_id: str
    ) -> vector_stores_pb2.VectorStoreFile | None:
        return await self._lookup(
            lambda conn: _get(conn, _VECTOR_STORE_FILES, file_id, vector_store_id=vector_store_id)
        )

    async def list_vector_store_files(
        self, vector_store_id: str, query: PageQuery, status: int
    ) -> Page[vector_stores_pb2.VectorStoreFile]:
        filters = {"status": status} if status else None
        scope = {"vector_store_id": vector_store_id}
        return await self._lookup(
            lambda conn: _page(conn, _VECTOR_STORE_FILES, query, scope, filters)  # type: ignore[arg-type]
        )

    async def update_vector_store_file(
        self,
        vector_store_id: str,
        file_id: str,
        mutate: Callable[[vector_stores_pb2.VectorStoreFile], None],
    ) -> vector_stores_pb2.VectorStoreFile | None:
        def update(conn: Connection) -> vector_stores_pb2.VectorStoreFile | None:
            updated = _update(
                conn, _VECTOR_STORE_FILES, file_id, mutate, vector_store_id=vector_store_id
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
        return await self._db.write(
            lambda conn: sql_vector_files.claim(conn, owner, now_ms, expires_at_ms, limit)
        )

    async def vector_store_files_claimable(self, now_ms: int) -> bool:
        return await self._db.read(
            lambda conn: sql_vector_files.claimable(conn, now_ms), bounded=True
        )

    async def renew_vector_store_files(self, owner: str, expires_at_ms: int) -> None:
        await self._db.write(lambda conn: sql_vector_files.renew(conn, owner, expires_at_ms))

    async def release_vector_store_files(self, owner: str) -> None:
        await self._db.write(lambda conn: sql_vector_files.release(conn, owner))

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

    # Batches of vector store files

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
            return _page(conn, _VECTOR_STORE_FILES, query, scope, filters)

        return await self._lookup(page)

    # Dense vectors of chunks

    async def _ensure_dimension(self, dimensions: int) -> None:
        """The index for vectors of this length, in a transaction before the one that writes
        the first such vectors (see `pg_vectors.ensure_index`); once per process."""
        if dimensions and dimensions not in self._dimensions:
            await self._db.write(lambda conn: sql_vectors.ensure_dimension(conn, dimensions))
            self._dimensions.add(dimensions)

    async def enable_vectors(self) -> None:
        await self._db.write(sql_vectors.enable)

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
        return await self._db.write(
            lambda conn: sql_vectors.claim(conn, owner, model, now_ms, expires_at_ms)
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
        await self._db.write(lambda conn: sql_vectors.renew(conn, owner, expires_at_ms))

    async def release_reindex(self, owner: str) -> None:
        await self._db.write(lambda conn: sql_vectors.release(conn, owner))

    # Chunks of vector store files

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

    # Threads

    async def create_thread(
        self,
        thread: threads_pb2.Thread,
        messages: list[messages_pb2.Message],
        vector_stores: VectorStoreWrites | None = None,
    ) -> None:
        await self._db.write(lambda conn: _create_thread(conn, thread, messages, vector_stores))

    async def get_thread(self, thread_id: str) -> threads_pb2.Thread | None:
        return await self._lookup(lambda conn: _get(conn, _THREADS, thread_id))

    async def update_thread(
        self, thread_id: str, mutate: Callable[[threads_pb2.Thread], None]
    ) -> threads_pb2.Thread | None:
        return await self._db.write(lambda conn: _update(conn, _THREADS, thread_id, mutate))

    async def delete_thread(self, thread_id: str) -> bool:
        return await self._db.write(lambda conn: _delete_thread(conn, thread_id))

    # Messages

    async def create_message(
        self, message: messages_pb2.Message, vector_stores: VectorStoreWrites | None = None
    ) -> bool:
        return await self._db.write(lambda conn: _create_message(conn, message, vector_stores))

    async def get_message(self, thread_id: str, message_id: str) -> messages_pb2.Message | None:
        return await self._lookup(
            lambda conn: _get(conn, _MESSAGES, message_id, thread_id=thread_id)
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
            lambda conn: _update(conn, _MESSAGES, message_id, mutate, thread_id=thread_id)
        )

    async def delete_message(self, thread_id: str, message_id: str) -> bool:
        return await self._db.write(
            lambda conn: _delete(conn, _MESSAGES, message_id, thread_id=thread_id)
        )

    # Files

    async def create_file(self, file: files_pb2.File) -> None:
        await self._db.write(lambda conn: _append(conn, _FILES, [file]))

    async def get_file(self, file_id: str) -> files_pb2.File | None:
        return await self._lookup(lambda conn: _get(conn, _FILES, file_id))

    async def list_files(self, query: PageQuery, purpose: str = "") -> Page[files_pb2.File]:
        return await self._lookup(lambda conn: _list_files(conn, query, purpose))

    async def delete_file(self, file_id: str) -> bool:
        def delete(conn: Connection) -> bool:
            if not _delete(conn, _FILES, file_id):
                return False
            sql_vector_files.remove_file(conn, file_id)
            return True

        return await self._db.write(delete)

    # Runs and run steps

    async def create_run(
        self,
        run: runs_pb2.Run,
        messages: Sequence[messages_pb2.Message] = (),
        thread: threads_pb2.Thread | None = None,
        lease: Lease | None = None,
        reply: tuple[messages_pb2.Message, runs_pb2.RunStep] | None = None,
        vector_stores: VectorStoreWrites | None = None,
    ) -> bool:
        return await self._db.write(
            lambda conn: _create_run(conn, run, messages, thread, lease, reply, vector_stores)
        )

    async def get_run(self, thread_id: str, run_id: str) -> runs_pb2.Run | None:
        return await self._lookup(lambda conn: _get(conn, _RUNS, run_id, thread_id=thread_id))

    async def find_run(self, run_id: str) -> runs_pb2.Run | None:
        return await self._lookup(lambda conn: _get(conn, _RUNS, run_id))

    async def list_runs(self, thread_id: str, query: PageQuery) -> Page[runs_pb2.Run] | None:
        return await self._lookup(lambda conn: _list_runs(conn, thread_id, query))

    async def update_run(
        self,
        thread_id: str,
        run_id: str,
        mutate: Callable[[runs_pb2.Run], None],
        lease: Lease | None = None,
    ) -> runs_pb2.Run | None:
        return await self._db.write(
            lambda conn: _update_run(conn, thread_id, run_id, mutate, lease)
        )

    async def save_progress(
        self,
        run: runs_pb2.Run | None = None,
        steps: Sequence[runs_pb2.RunStep] = (),
        messages: Sequence[messages_pb2.Message] = (),
        guard: Callable[[runs_pb2.Run], None] | None = None,
        holder: str | None = None,
    ) -> None:
        await self._db.write(lambda conn: _save_progress(conn, run, steps, messages, guard, holder))

    async def delete_run_output(self, step_ids: Sequence[str], message_ids: Sequence[str]) -> None:
        await self._db.write(lambda conn: _delete_run_output(conn, step_ids, message_ids))

    async def runs_with_status(
        self, statuses: Collection[int], limit: int = 1000
    ) -> list[runs_pb2.Run]:
        return await self._db.read(lambda conn: _runs_with_status(conn, statuses, limit))

    async def list_steps(
        self, thread_id: str, run_id: str, query: PageQuery
    ) -> Page[runs_pb2.RunStep] | None:
        return await self._lookup(lambda conn: _list_steps(conn, thread_id, run_id, query))

    async def get_step(self, thread_id: str, run_id: str, step_id: str) -> runs_pb2.RunStep | None:
        return await self._lookup(
            lambda conn: _get(conn, _STEPS, step_id, run_id=run_id, thread_id=thread_id)
        )

    async def run_steps(self, run_id: str) -> list[runs_pb2.RunStep]:
        return await self._db.read(lambda conn: _all(conn, _STEPS, "run_id", run_id))

    async def thread_messages(self, thread_id: str) -> list[messages_pb2.Message]:
        # Most threads are short: read as a bounded read (no hop to a reader thread, and
        # before a run's first token). A long one is read again, whole, on a reader thread.
        few = await self._lookup(
            lambda conn: _all_if_few(conn, _MESSAGES, "thread_id", thread_id, FEW_MESSAGES)
        )
        if few is not None:
            return few
        return await self._db.read(lambda conn: _all(conn, _MESSAGES, "thread_id", thread_id))

    # Which core executes which run

    def pending_transactions(self) -> int:
        return self._db.pending()

    @property
    def shared(self) -> bool:
        return self._listener is not None

    async def claim_runs(
        self, owner: str, expired_before_ms: int, expires_at_ms: int, limit: int
    ) -> list[runs_pb2.Run]:
        return await self._db.write(
            lambda conn: sql_claims.claim(conn, owner, expired_before_ms, expires_at_ms, limit)
        )

    async def renew_leases(self, owner: str, expires_at_ms: int) -> LeaseRenewal:
        return await self._db.write(lambda conn: sql_claims.renew(conn, owner, expires_at_ms))

    async def release_leases(self, owner: str) -> None:
        await self._db.write(lambda conn: sql_claims.release(conn, owner))

    async def request_cancel(self, run_id: str) -> None:
        if self._listener is not None:
            await self._db.write(
                lambda conn: sql_events.notify(conn, sql_events.CANCEL_CHANNEL, [run_id])
            )

    # The stored event log

    async def append_events(self, events: Sequence[StoredEvent]) -> None:
        await self._db.write(lambda conn: sql_events.append(conn, events))

    async def read_events(self, run_id: str, after: int, limit: int) -> list[runs_pb2.RunEvent]:
        return await self._db.read(lambda conn: sql_events.read(conn, run_id, after, limit))

    async def last_event_sequence(self, run_id: str) -> int:
        return await self._lookup(lambda conn: sql_events.last_sequence(conn, run_id))

    async def purge_events(self, created_before: int) -> int:
        return await self._db.write(lambda conn: sql_events.purge(conn, created_before))

    async def listen(self, on_notice: Callable[[str, str], None]) -> None:
        if self._listener is not None:
            await self._listener.start(
                (sql_events.EVENTS_CHANNEL, sql_events.CANCEL_CHANNEL), on_notice
            )
