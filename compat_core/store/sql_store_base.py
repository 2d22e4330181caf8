"""What every `SqlStore` mixin shares: the transaction runner and the bounded read on it, the
listener of a shared database, and what a process keeps for dense vectors.

`_db` runs every transaction in the project scope of its caller (`sql_scope.ScopedRunner`):
the mixins never see a project.

One small base rather than each mixin declaring what it expects of `self`: mypy checks every
mixin's use of `_db` and `_lookup` against one definition, and the store has one `__init__`.
`_ensure_dimension` is here because two domains write vectors (a file's ingestion and the
re-embedding of a store).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection

from compat_core.store import sql_scope, sql_vectors
from compat_core.store.notify import PostgresListener
from compat_core.store.runner import TransactionRunner
from compat_core.store.vector_cache import VectorCache

T = TypeVar("T")


class SqlStoreBase:
    """The state of a `SqlStore`, set up once for all of its mixins."""

    def __init__(
        self, database: TransactionRunner, listener: PostgresListener | None = None
    ) -> None:
        self._db = sql_scope.ScopedRunner(database)
        self._listener = listener
        # SQLite's dense search runs in the core on these (PostgreSQL's runs in pgvector).
        self._vectors = VectorCache()
        # Vector lengths whose index this process has made sure of (see `_ensure_dimension`).
        self._dimensions: set[int] = set()
        # Called with the ID of each API key another core revokes (`Projects.on_key_revoked`).
        self._revocation_watchers: list[Callable[[str], None]] = []

    async def _lookup(self, fn: Callable[[Connection], T]) -> T:
        """A bounded read: rows by key, or one page of a list (see `TransactionRunner.read`)."""
        return await self._db.read(fn, bounded=True)

    async def _ensure_dimension(self, dimensions: int) -> None:
        """The index for vectors of this length, in a transaction before the one that writes
        the first such vectors (see `pg_vectors.ensure_index`); once per process."""
        if dimensions and dimensions not in self._dimensions:
            await self._db.write_across(lambda conn: sql_vectors.ensure_dimension(conn, dimensions))
            self._dimensions.add(dimensions)
