"""How the store applies the project scope (`compat_core.tenancy`) to SQL.

Three places, one per kind of statement, and nothing else in the store knows of projects:

- Transactions: `ScopedRunner` takes the scope of the caller when a transaction is submitted
  (the SQLite writer runs it on a thread of its own, whose context is not the caller's) and
  runs the transaction's function inside it. No scope: refused before the database is
  touched.
- SELECT, UPDATE and DELETE: `where(table)` is the condition every statement on a tenant's
  table carries, `project_id = :p_project_id`. Its value is a bound parameter whose value is
  read from the scope when the statement executes (`bindparam(callable_=...)`), so statements
  built once (`sql_statements`) stay built once: they are built in two forms, scoped and not,
  and the all-projects scope of maintenance work takes the unscoped one.
- INSERT: `stamp(row)` sets the row's `project_id` to the scope's project; in the all-projects
  scope there is none to set and the insert is refused.

An object of another project is so exactly as absent as a missing one, on every path that
reads it: not found, not in a page, not a cursor, not a reference.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import BindParameter, ColumnElement, Connection, Table, bindparam

from compat_core import tenancy
from compat_core.store.runner import TransactionRunner
from compat_core.store.schema import ID_TYPE, TENANT_TABLES

T = TypeVar("T")
PROJECT_PARAM = "p_project_id"


def project_param() -> BindParameter[str]:
    """The scope's project as a parameter, its value read at each execution."""
    return bindparam(PROJECT_PARAM, callable_=tenancy.project_id, type_=ID_TYPE)


def applies(table: Table) -> bool:
    """Whether statements on `table` filter on the project now (a tenant's table, in one
    project's scope)."""
    return table.name in TENANT_TABLES and tenancy.filtered()


def where(table: Table) -> tuple[ColumnElement[bool], ...]:
    """The project condition of a statement on `table` in the current scope (none for a table
    of no tenant, or across all projects)."""
    if not applies(table):
        return ()
    return (table.c.project_id == project_param(),)


def stamp(row: dict[str, Any]) -> dict[str, Any]:
    """An inserted row of a tenant's table, given the scope's project (set in place)."""
    row["project_id"] = tenancy.project_id()
    return row


def _run_in(scope: tenancy.Scope, fn: Callable[[Connection], T], conn: Connection) -> T:
    token = tenancy.enter(scope)
    try:
        return fn(conn)
    finally:
        tenancy.leave(token)


class ScopedRunner:
    """A `TransactionRunner` whose transactions run in their submitter's project scope."""

    def __init__(self, inner: TransactionRunner) -> None:
        self.inner = inner

    async def write(self, fn: Callable[[Connection], T]) -> T:
        return await self.inner.write(functools.partial(_run_in, tenancy.current(), fn))

    async def read(self, fn: Callable[[Connection], T], *, bounded: bool = False) -> T:
        scoped = functools.partial(_run_in, tenancy.current(), fn)
        return await self.inner.read(scoped, bounded=bounded)

    async def write_across(self, fn: Callable[[Connection], T]) -> T:
        """A write of maintenance that works across projects, whatever the caller's project
        (it must have entered some scope all the same)."""
        tenancy.current()
        return await self.inner.write(functools.partial(_run_in, tenancy.ALL_PROJECTS, fn))

    async def read_across(self, fn: Callable[[Connection], T], *, bounded: bool = False) -> T:
        tenancy.current()
        scoped = functools.partial(_run_in, tenancy.ALL_PROJECTS, fn)
        return await self.inner.read(scoped, bounded=bounded)

    def pending(self) -> int:
        return self.inner.pending()

    async def run_migrations(self) -> None:
        await self.inner.run_migrations()

    async def close(self) -> None:
        await self.inner.close()
