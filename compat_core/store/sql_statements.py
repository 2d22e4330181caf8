"""Statements, built once per shape and executed with their values as parameters.

Building `select(...).where(...)` anew costs more than running it: constructing the clauses
and computing the cache key under which SQLAlchemy finds the compiled SQL came to about 50 µs
a statement, against some 12 µs for executing a ready one (whose cache key is memoized on
the object). So each function below builds its statement on first use, for its table and
the names of the columns it compares, and every later call reuses it. A value is bound as
`:p_<column>` (or another `p_` name): the prefix keeps the names clear of the column names
that an UPDATE's SET clause takes its values by.

Each statement on a tenant's table is built in two forms: filtered on the scope's project
(`sql_scope.where`, its value bound at execution) and, for the all-projects scope of
maintenance, not. The functions below choose the form for the scope they are called in, so
no caller can ask for an unscoped one.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Delete,
    Insert,
    Integer,
    Select,
    Table,
    Update,
    bindparam,
    exists,
    select,
)

from compat_core.store import sql_scope


def param(name: str) -> str:
    """The name of the parameter that carries a value for the column `name`."""
    return f"p_{name}"


def params(values: dict[str, Any]) -> dict[str, Any]:
    """`{column: value}` as the parameters of the `equal` conditions on those columns."""
    return {param(name): value for name, value in values.items()}


def equal(table: Table, names: Iterable[str]) -> list[ColumnElement[bool]]:
    # The parameter takes the column's type, as a literal compared to it would.
    return [table.c[name] == bindparam(param(name)) for name in names]


def _conditions(table: Table, names: Iterable[str], scoped: bool) -> list[ColumnElement[bool]]:
    conditions = equal(table, names)
    if scoped:
        conditions.append(table.c.project_id == sql_scope.project_param())
    return conditions


def select_where(
    table: Table, columns: tuple[str, ...], names: tuple[str, ...], lock: bool = False
) -> Select[Any]:
    """`SELECT columns FROM table WHERE name = :p_name AND …`, `FOR UPDATE` if `lock`."""
    return _select_where(table, columns, names, lock, sql_scope.applies(table))


@functools.cache
def _select_where(
    table: Table, columns: tuple[str, ...], names: tuple[str, ...], lock: bool, scoped: bool
) -> Select[Any]:
    stmt = select(*(table.c[name] for name in columns)).where(*_conditions(table, names, scoped))
    return stmt.with_for_update() if lock else stmt


def exists_stmt(table: Table) -> Select[Any]:
    return _exists_stmt(table, sql_scope.applies(table))


@functools.cache
def _exists_stmt(table: Table, scoped: bool) -> Select[Any]:
    return select(exists().where(*_conditions(table, ("id",), scoped)))


def newest_stmt(table: Table, scope: tuple[str, ...]) -> Select[Any]:
    """The `created_at` of the last row of a list (by `seq`)."""
    return _newest_stmt(table, scope, sql_scope.applies(table))


@functools.cache
def _newest_stmt(table: Table, scope: tuple[str, ...], scoped: bool) -> Select[Any]:
    return (
        select(table.c.created_at)
        .where(*_conditions(table, scope, scoped))
        .order_by(table.c.seq.desc())
        .limit(1)
    )


def page_stmt(
    table: Table, names: tuple[str, ...], after: bool, before: bool, descending: bool
) -> Select[Any]:
    """The bodies of a keyset page (see `sql_rows.page`); the cursors' seqs bind as `p_after`
    and `p_before`, the number of rows to read as `p_limit`."""
    return _page_stmt(table, names, after, before, descending, sql_scope.applies(table))


@functools.cache
def _page_stmt(
    table: Table, names: tuple[str, ...], after: bool, before: bool, descending: bool, scoped: bool
) -> Select[Any]:
    seq = table.c.seq
    conditions = _conditions(table, names, scoped)
    if after:
        after_seq = bindparam(param("after"), type_=seq.type)
        conditions.append(seq < after_seq if descending else seq > after_seq)
    if before:
        before_seq = bindparam(param("before"), type_=seq.type)
        conditions.append(seq > before_seq if descending else seq < before_seq)
    # Read starting next to the cursor the page hangs on: `before` when given, else `after`.
    ascending = descending == before
    return (
        select(table.c.body)
        .where(*conditions)
        .order_by(seq.asc() if ascending else seq.desc())
        .limit(bindparam(param("limit"), type_=Integer))
    )


def all_stmt(table: Table, parent: str) -> Select[Any]:
    return _all_stmt(table, parent, sql_scope.applies(table))


@functools.cache
def _all_stmt(table: Table, parent: str, scoped: bool) -> Select[Any]:
    return (
        select(table.c.body)
        .where(*_conditions(table, (parent,), scoped))
        .order_by(table.c.seq.asc())
    )


def first_stmt(table: Table, parent: str) -> Select[Any]:
    return _first_stmt(table, parent, sql_scope.applies(table))


@functools.cache
def _first_stmt(table: Table, parent: str, scoped: bool) -> Select[Any]:
    return _all_stmt(table, parent, scoped).limit(bindparam(param("limit"), type_=Integer))


@functools.cache
def insert_stmt(table: Table) -> Insert:
    """An INSERT; the rows of a tenant's table carry their project (`sql_scope.stamp`)."""
    return table.insert()


def rewrite_stmt(table: Table) -> Update:
    """An UPDATE of the row at `:p_seq`, setting the columns its parameters name."""
    return _rewrite_stmt(table, sql_scope.applies(table))


@functools.cache
def _rewrite_stmt(table: Table, scoped: bool) -> Update:
    conditions = [table.c.seq == bindparam(param("seq"))]
    if scoped:
        conditions.append(table.c.project_id == sql_scope.project_param())
    return table.update().where(*conditions)


def delete_stmt(table: Table, names: tuple[str, ...]) -> Delete:
    return _delete_stmt(table, names, sql_scope.applies(table))


@functools.cache
def _delete_stmt(table: Table, names: tuple[str, ...], scoped: bool) -> Delete:
    return table.delete().where(*_conditions(table, names, scoped))
