"""Statements the store runs on every request, executed without SQLAlchemy's per-call work on
SQLite.

`Connection.execute` of a statement that is already built and compiled still costs about
25 µs in SQLAlchemy (an execution context, parameter processing, a result object) against
4 µs for the same SQL on the driver; the store runs a few dozen statements in a run's life,
so on SQLite that was most of the writer thread's CPU. Here each statement is compiled once
per dialect, and on SQLite its SQL goes straight to the `sqlite3` connection, which keeps it
prepared. Errors are raised as the same `sqlalchemy.exc.DBAPIError` subclasses that
`Connection.execute` raises (an `IntegrityError` for a duplicate ID, say).

Every other dialect (PostgreSQL, through asyncpg's adapter) goes through `Connection.execute`
as before. A statement with expanding parameters (`IN` lists) is never sent here: its SQL
changes with its values.

Statements must be built once (the store's statement functions are cached) so that the
compiled form found here by identity is reused, not recomputed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Delete, Insert, Select, Update
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError

Params = Mapping[str, Any]
Statement = Select[Any] | Insert | Update | Delete


@dataclass(frozen=True)
class _Sql:
    """A statement's SQL for one dialect, and the order its named parameters take."""

    text: str
    # The parameter names in placeholder order, or None for a named paramstyle.
    order: tuple[str, ...] | None
    # The values the statement carries itself (a `limit(1)`), by parameter name.
    fixed: Mapping[str, Any]
    # Values read when the statement runs (the project of the scope, see `sql_scope`).
    late: Mapping[str, Callable[[], Any]]

    def bind(self, params: Params) -> Sequence[Any] | Params:
        fixed, late = self.fixed, self.late
        if self.order is None:
            if late:
                fixed = {**fixed, **{name: read() for name, read in late.items()}}
            return {**fixed, **params} if fixed else params
        return tuple(
            params[name] if name in params else late[name]() if name in late else fixed[name]
            for name in self.order
        )


_COMPILED: dict[tuple[int, str, str, tuple[str, ...]], tuple[Statement, _Sql]] = {}


def _sql(stmt: Statement, dialect: Dialect, keys: tuple[str, ...] = ()) -> _Sql:
    """The SQL of `stmt` on `dialect` (setting the columns `keys`), compiled once."""
    key = (id(stmt), dialect.name, dialect.paramstyle, keys)
    found = _COMPILED.get(key)
    # The statement is kept beside its SQL, so its id cannot be reused by another object.
    if found is not None and found[0] is stmt:
        return found[1]
    compiled = stmt.compile(dialect=dialect, column_keys=list(keys) or None)
    if any(bind.expanding or bind.literal_execute for bind in compiled.binds.values()):
        raise ValueError("a statement whose SQL depends on its values has no fixed SQL")
    order = tuple(compiled.positiontup) if compiled.positiontup is not None else None
    fixed = {
        name: bind.value
        for name, bind in compiled.binds.items()
        if not bind.required and bind.callable is None
    }
    late = {name: bind.callable for name, bind in compiled.binds.items() if bind.callable}
    sql = _Sql(compiled.string, order, fixed, late)
    _COMPILED[key] = (stmt, sql)
    return sql


def _prepare(
    conn: Connection, stmt: Statement, params: Params
) -> tuple[sqlite3.Connection, _Sql] | None:
    """The `sqlite3` connection under `conn` and the statement's SQL for `params`, or None on
    any other dialect."""
    if conn.dialect.name != "sqlite":
        return None
    driver = cast(sqlite3.Connection, conn.connection.driver_connection)
    # The columns an INSERT or UPDATE sets are those its values name, as with `execute`.
    keys = tuple(params) if isinstance(stmt, Insert | Update) else ()
    return driver, _sql(stmt, conn.dialect, keys)


def _on_driver(call: Callable[[str, Any], sqlite3.Cursor], sql: str, bound: Any) -> sqlite3.Cursor:
    """`call(sql, bound)`, its errors raised as `Connection.execute` raises them."""
    try:
        return call(sql, bound)
    except sqlite3.Error as exc:
        raise DBAPIError.instance(sql, bound, exc, sqlite3.Error) from exc


def _run(conn: Connection, stmt: Statement, params: Params) -> sqlite3.Cursor | None:
    ready = _prepare(conn, stmt, params)
    if ready is None:
        return None
    driver, sql = ready
    return _on_driver(driver.execute, sql.text, sql.bind(params))


def rows(conn: Connection, stmt: Statement, params: Params) -> Sequence[Sequence[Any]]:
    """Every row of a query, each a sequence of its columns."""
    cursor = _run(conn, stmt, params)
    if cursor is None:
        return conn.execute(stmt, dict(params)).all()
    return cursor.fetchall()


def first(conn: Connection, stmt: Statement, params: Params) -> Sequence[Any] | None:
    """The first row of a query, or None."""
    cursor = _run(conn, stmt, params)
    if cursor is None:
        return conn.execute(stmt, dict(params)).first()
    row: Sequence[Any] | None = cursor.fetchone()
    return row


def scalar(conn: Connection, stmt: Statement, params: Params) -> Any:
    """The first column of the first row of a query, or None."""
    row = first(conn, stmt, params)
    return None if row is None else row[0]


def scalars(conn: Connection, stmt: Statement, params: Params) -> list[Any]:
    """The first column of every row of a query."""
    return [row[0] for row in rows(conn, stmt, params)]


def execute(conn: Connection, stmt: Statement, params: Params) -> int:
    """Run a statement that returns no rows; how many rows it changed."""
    cursor = _run(conn, stmt, params)
    if cursor is None:
        return conn.execute(stmt, dict(params)).rowcount
    return cursor.rowcount


def insert(conn: Connection, stmt: Statement, values: Sequence[Params]) -> None:
    """Run an INSERT once per mapping of `values`, which all name the same columns."""
    ready = _prepare(conn, stmt, values[0])
    if ready is None:
        conn.execute(stmt, [dict(row) for row in values])
        return
    driver, sql = ready
    _on_driver(driver.executemany, sql.text, [sql.bind(row) for row in values])
