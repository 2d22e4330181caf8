"""Where store transactions run on PostgreSQL: everything that is particular to it lives here.

The store's operations are the same synchronous functions of a `sqlalchemy.Connection` that
run on SQLite; here each runs inside one transaction of SQLAlchemy's async engine on asyncpg,
through `AsyncConnection.run_sync` (a greenlet, so the driver's awaits happen on the event
loop and no thread is involved). Unlike SQLite, PostgreSQL runs writers side by side, and
several core replicas may share one database:

- Write transactions are READ COMMITTED. The store functions lock the rows they decide on
  (`SELECT … FOR UPDATE`, see `sql_store`), and at this level a statement that waited for a
  lock sees what the transaction holding it committed, so the decision is made on the newest
  state instead of failing with a serialisation error that would need retrying.
- Read transactions are REPEATABLE READ and READ ONLY: every statement of one store read sees
  the same snapshot, as an SQLite reader does in WAL mode, and such a transaction can never
  fail to serialise. Both settings travel in the BEGIN that asyncpg sends: no extra round trip.
- Migrations take a transaction-scoped advisory lock before Alembic reads the current
  revision. PostgreSQL DDL is transactional, so a second replica starting at the same moment
  waits for the first one's commit and then finds nothing left to do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from compat_core.store.migrate import ALEMBIC_LOCK, upgrade_to_head

T = TypeVar("T")

DRIVER = "postgresql+asyncpg"
ACCEPTED_DRIVERS = frozenset({"postgresql", DRIVER})

# Connections per process. A store transaction is a handful of indexed statements, so a few
# connections keep up with many requests: a process keeps up to POOL_SIZE open, opens up to
# POOL_OVERFLOW more in a burst, and one of its own while it migrates. A transaction that
# waits for a row lock holds its connection meanwhile, hence some headroom.
POOL_SIZE = 10
POOL_OVERFLOW = 5

# The key of the advisory lock that serialises migrations across processes: the bytes of
# "asst-mig", unlikely to collide with the keys of another application sharing the database.
MIGRATION_LOCK_KEY = int.from_bytes(b"asst-mig", "big")

APPLICATION_NAME = "assistants-compat"


def async_url(url: str | URL) -> URL:
    """The asyncpg URL for `postgresql://…` or `postgresql+asyncpg://…`.

    Raises ValueError for any other scheme, naming only the scheme (the rest of a URL may hold
    a password).
    """
    parsed = make_url(url)
    if parsed.drivername not in ACCEPTED_DRIVERS:
        raise ValueError(f"expected a postgresql:// or {DRIVER}:// URL, not {parsed.drivername}://")
    return parsed.set(drivername=DRIVER)


class PostgresDatabase:
    """A PostgreSQL database reached through a pool of asyncpg connections (a TransactionRunner).

    Every transaction runs as a task of its own, which the caller awaits through a shield: a
    cancelled caller must not cut a transaction short between its statements, or during its
    COMMIT, without knowing whether it committed (the SQLite `Database` behaves the same way,
    its transactions run on threads). `close()` waits for those tasks.
    """

    def __init__(
        self, url: str | URL, *, pool_size: int = POOL_SIZE, max_overflow: int = POOL_OVERFLOW
    ) -> None:
        self._url = async_url(url)
        self._engine: AsyncEngine = create_async_engine(
            self._url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            connect_args=_connect_args(),
        )
        # Shares the pool; the options apply to each connection while it is checked out.
        self._reader = self._engine.execution_options(
            isolation_level="REPEATABLE READ", postgresql_readonly=True
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    @property
    def url(self) -> URL:
        """The database's asyncpg URL."""
        return self._url

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` as one READ COMMITTED transaction; commit unless it raises.

        Unlike on SQLite, writes run side by side: the store functions lock what they must.
        """
        return await self._submit(self._engine, fn)

    async def read(self, fn: Callable[[Connection], T], *, bounded: bool = False) -> T:
        """Run `fn` as one REPEATABLE READ, READ ONLY transaction (a consistent snapshot).

        Every read is a round trip to the server, on the event loop already: `bounded`
        changes nothing here.
        """
        return await self._submit(self._reader, fn)

    async def _submit(self, engine: AsyncEngine, fn: Callable[[Connection], T]) -> T:
        if self._closed:
            raise RuntimeError("the database is closed")
        task = asyncio.create_task(_transact(engine, fn))
        self._tasks.add(task)
        task.add_done_callback(self._forget)
        return await asyncio.shield(task)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        # Its caller may have been cancelled and never look: mark the outcome as seen so that
        # asyncio does not log it as lost. The caller, if still there, gets it from the shield.
        if not task.cancelled():
            task.exception()

    def pending(self) -> int:
        """Transactions submitted and not yet done (each runs at once, as a task)."""
        return len(self._tasks)

    def migrate(self) -> None:
        """Bring the schema to the newest revision; a no-op when it is there already.

        Synchronous, for command-line use and tests; async callers use `run_migrations()`.
        Runs on an event loop and a connection of its own (Alembic is synchronous code that
        must not share the caller's loop with another migration, see `ALEMBIC_LOCK`), so it
        must not be called from a thread whose event loop is running.
        """
        with ALEMBIC_LOCK:
            asyncio.run(self._migrate())

    async def run_migrations(self) -> None:
        """`migrate()` on a worker thread, so that the caller's event loop keeps running."""
        await asyncio.to_thread(self.migrate)

    async def _migrate(self) -> None:
        engine = create_async_engine(self._url, poolclass=NullPool, connect_args=_connect_args())
        try:
            async with engine.begin() as conn:
                # Held until this transaction ends. Another process migrating waits here, then
                # reads the revision that process committed.
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
                await conn.run_sync(upgrade_to_head)
        finally:
            await engine.dispose()

    async def close(self) -> None:
        """Let submitted transactions finish, then close every connection.

        Idempotent. Submitting work afterwards raises RuntimeError.
        """
        if self._closed:
            return
        self._closed = True
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        await self._engine.dispose()


async def _transact(engine: AsyncEngine, fn: Callable[[Connection], T]) -> T:
    async with engine.begin() as conn:
        return await conn.run_sync(fn)


def _connect_args() -> dict[str, Any]:
    # Names our sessions in pg_stat_activity, for operators watching a shared server.
    return {"server_settings": {"application_name": APPLICATION_NAME}}
