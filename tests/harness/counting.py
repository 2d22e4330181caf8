"""A database that counts the write transactions asked of it: what tells a test that an idle
poll or a use that changes nothing stays off the single writer (SQLite) and takes no row lock
or WAL flush (PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection

from compat_core.store import TransactionRunner

T = TypeVar("T")


class CountingRunner:
    """The database as it is, counting the write transactions asked of it."""

    def __init__(self, inner: TransactionRunner) -> None:
        self._inner = inner
        self.writes = 0

    async def write(self, fn: Callable[[Connection], T]) -> T:
        self.writes += 1
        return await self._inner.write(fn)

    async def read(self, fn: Callable[[Connection], T], *, bounded: bool = False) -> T:
        return await self._inner.read(fn, bounded=bounded)

    def pending(self) -> int:
        return self._inner.pending()

    async def run_migrations(self) -> None:
        await self._inner.run_migrations()

    async def close(self) -> None:
        await self._inner.close()
