"""The row operations that every kind of object shares, on one connection inside the caller's
transaction: append to a list in time order, read, update and upsert under a row lock, delete,
keyset pages. A kind (`sql_kinds`) gives them the table and columns; the domain modules
(`sql_store_*`) put them together into whole transactions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar, cast

from google.protobuf.message import Message
from sqlalchemy import Connection, Table

from compat_core.store import prepared, schema, sql_scope, sql_statements
from compat_core.store.base import CursorNotFound, Page, PageQuery
from compat_core.store.sql_kinds import Kind

M = TypeVar("M", bound=Message)


class _Stamped(Protocol):
    created_at: int


def _row(kind: Kind[M], obj: M) -> dict[str, Any]:
    return sql_scope.stamp({**kind.columns(obj), "body": obj.SerializeToString()})


def append(conn: Connection, kind: Kind[M], objects: Sequence[M]) -> None:
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
    prepared.insert(
        conn, sql_statements.insert_stmt(kind.table), [_row(kind, obj) for obj in objects]
    )


def _lock_list(conn: Connection, name: str) -> None:
    """Lock the row of a list that has no parent row to lock (`schema.list_locks`)."""
    stmt = sql_statements.select_where(schema.list_locks, ("name",), ("name",), lock=True)
    if prepared.first(conn, stmt, sql_statements.params({"name": name})) is None:
        raise LookupError(f"no lock row for the list {name!r}")


def _keep_time_order(conn: Connection, kind: Kind[M], objects: Sequence[M]) -> None:
    """Raise `created_at` where needed so that it never decreases along the list.

    The objects are stamped before their transaction starts, so on a database that runs
    writers side by side they can reach the end of the list in the other order than they were
    stamped, and replicas' clocks differ. The newest object is the last by `seq` (read through
    the list's index): raising each new one to it keeps the list in time order.
    """
    assert kind.list_scope is not None
    first = kind.columns(objects[0])
    scope = {name: first[name] for name in kind.list_scope}
    stmt = sql_statements.newest_stmt(kind.table, kind.list_scope)
    newest: int | None = prepared.scalar(conn, stmt, sql_statements.params(scope))
    for obj in objects:
        stamped = cast(_Stamped, obj)
        if newest is not None and stamped.created_at < newest:
            stamped.created_at = newest
        newest = stamped.created_at


def exists(conn: Connection, table: Table, object_id: str) -> bool:
    return bool(
        prepared.scalar(
            conn, sql_statements.exists_stmt(table), sql_statements.params({"id": object_id})
        )
    )


def lock_thread(conn: Connection, thread_id: str) -> bool:
    """Lock the thread's row until the transaction ends; False if there is no such thread.

    Every write that checks or changes what runs a thread has, or appends to its messages,
    runs or steps, starts here, so such writes on one thread happen one after the other.
    """
    stmt = sql_statements.select_where(schema.threads, ("id",), ("id",), lock=True)
    return prepared.first(conn, stmt, sql_statements.params({"id": thread_id})) is not None


def get(conn: Connection, kind: Kind[M], object_id: str, **scope: str) -> M | None:
    stmt = sql_statements.select_where(kind.table, ("body",), ("id", *scope))
    body = prepared.scalar(conn, stmt, sql_statements.params({"id": object_id, **scope}))
    return None if body is None else kind.parse(body)


def update(
    conn: Connection,
    kind: Kind[M],
    object_id: str,
    mutate: Callable[[M], None],
    **scope: str,
) -> M | None:
    # Locked from the read on: a concurrent update of the row waits for this one to commit
    # and then reads its result, instead of both reading the old body and one losing.
    stmt = sql_statements.select_where(kind.table, ("seq", "body"), ("id", *scope), lock=True)
    row = prepared.first(conn, stmt, sql_statements.params({"id": object_id, **scope}))
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
    rewrite(conn, kind, seq, obj)
    return obj


def rewrite(conn: Connection, kind: Kind[M], seq: int, obj: M) -> None:
    """Replace the body of the row at `seq` in place; its identity columns stay as they are.

    The other derived columns are rewritten too, so they can never disagree with the body.
    """
    values = {name: value for name, value in kind.columns(obj).items() if name not in kind.identity}
    values["body"] = obj.SerializeToString()
    values[sql_statements.param("seq")] = seq
    prepared.execute(conn, sql_statements.rewrite_stmt(kind.table), values)


def upsert(conn: Connection, kind: Kind[M], obj: M) -> None:
    """Insert `obj`, or replace the row with its ID in place (keeping its seq, so its place).

    Raises ValueError if the existing row's identity columns differ from the object's: a
    replace must not move an object to another parent.
    """
    columns = kind.columns(obj)
    stmt = sql_statements.select_where(kind.table, ("seq", *kind.identity), ("id",), lock=True)
    row = prepared.first(conn, stmt, sql_statements.params({"id": columns["id"]}))
    if row is None:
        append(conn, kind, [obj])
        return
    seq, *stored = row
    changed = [
        name for name, value in zip(kind.identity, stored, strict=True) if value != columns[name]
    ]
    if changed:
        raise ValueError(f"{columns['id']} is stored with other {', '.join(changed)}")
    rewrite(conn, kind, seq, obj)


def delete(conn: Connection, kind: Kind[M], object_id: str, **scope: str) -> bool:
    stmt = sql_statements.delete_stmt(kind.table, ("id", *scope))
    return prepared.execute(conn, stmt, sql_statements.params({"id": object_id, **scope})) > 0


def _cursor_seq(
    conn: Connection, table: Table, scope: dict[str, str], param: str, object_id: str
) -> int:
    """The seq of a cursor object, looked up in the list's scope but not its filters.

    A filter (`run_id`, `purpose`) narrows what a page shows; the cursor only marks a position
    in the list, so any object of the list is a valid one.
    """
    stmt = sql_statements.select_where(table, ("seq",), ("id", *scope))
    seq = prepared.scalar(conn, stmt, sql_statements.params({"id": object_id, **scope}))
    if seq is None:
        raise CursorNotFound(param, object_id)
    return int(seq)


def page(
    conn: Connection,
    kind: Kind[M],
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
    params = sql_statements.params(equal)
    if query.after:
        params[sql_statements.param("after")] = _cursor_seq(
            conn, table, scope, "after", query.after
        )
    if query.before:
        params[sql_statements.param("before")] = _cursor_seq(
            conn, table, scope, "before", query.before
        )
    params[sql_statements.param("limit")] = query.limit + 1
    stmt = sql_statements.page_stmt(
        table, tuple(equal), bool(query.after), bool(query.before), query.order == "desc"
    )
    bodies: list[bytes] = prepared.scalars(conn, stmt, params)
    shown = bodies[: query.limit]
    if query.before:
        shown.reverse()
    return Page(shown, kind.parse, has_more=len(bodies) > query.limit)


def thread_page(
    conn: Connection,
    kind: Kind[M],
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
        found = page(conn, kind, query, {"thread_id": thread_id}, filters)
    except CursorNotFound:
        if not exists(conn, schema.threads, thread_id):
            return None
        raise
    if not found.bodies and not exists(conn, schema.threads, thread_id):
        return None
    return found


def children(conn: Connection, kind: Kind[M], parent: str, parent_id: str) -> list[M]:
    stmt = sql_statements.all_stmt(kind.table, parent)
    return [
        kind.parse(body)
        for body in prepared.scalars(conn, stmt, sql_statements.params({parent: parent_id}))
    ]


def children_if_few(
    conn: Connection, kind: Kind[M], parent: str, parent_id: str, limit: int
) -> list[M] | None:
    """Every child of the parent if it has at most `limit`, else None (reading `limit + 1`)."""
    params = sql_statements.params({parent: parent_id, "limit": limit + 1})
    bodies = prepared.scalars(conn, sql_statements.first_stmt(kind.table, parent), params)
    if len(bodies) > limit:
        return None
    return [kind.parse(body) for body in bodies]
