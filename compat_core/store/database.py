"""Where store transactions run on SQLite: everything that is particular to SQLite lives here.

The store's operations are plain synchronous functions of a `sqlalchemy.Connection`, so that
the same functions run on PostgreSQL through `AsyncConnection.run_sync` (`postgres.py`). This
module runs them on SQLite without blocking the event loop on anything that may take long, at
one thread hop per transaction (not per statement, which would cost a hop for every query), or
none for a short read:

- One writer connection on one dedicated thread. SQLite admits one writer at a time anyway;
  queuing writes in-process is cheaper than having connections fight over the file lock, and
  `BEGIN IMMEDIATE` takes that lock up front so that a transaction never fails half-way when
  its first write finds another process writing (it waits, up to `busy_timeout`, instead).
- A few reader connections on their own threads. In WAL mode readers see the last committed
  state and neither block the writer nor wait for it.
- A bounded read (a row by key, one page of a list) runs on the calling thread, on a reader
  connection of that thread's own: it takes tens of microseconds of work in SQLite, while the
  hop to a thread and back took some 150 us of CPU on a 2-core VM (four thread wake-ups and
  the GIL handed back and forth), more under load. Reads that may be long (a whole thread's
  messages for a prompt) keep their thread, so they never stall the event loop.

Each thread keeps one connection from its first transaction until `close()`, and the BEGIN is
sent straight to the driver. A store transaction is a few small statements, so what surrounds
them weighs: checking a connection out of a pool and resetting it on return, and the engine
`begin` event of SQLAlchemy's recipe for pysqlite (an engine with any listener dispatches
events around every statement), took about 40 of the 100 µs of CPU that reading one run cost.

The hop itself is a queue and a future of the event loop (`_Workers`), not an executor's
`run_in_executor`: that one chains a `concurrent.futures.Future`, with its lock and condition,
to an asyncio future, and every lock a thread waits on lets go of the GIL, which under load
hands it to another thread and waits to get it back. Listing 20 messages over gRPC at 64
calls at once cost about 50 µs of CPU less per call this way (some 510 µs against 460), more
than the 12 µs that the hop alone saves.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from compat_core.store.migrate import ALEMBIC_LOCK, MIGRATIONS_DIR, upgrade_to_head

__all__ = ["BUSY_TIMEOUT_MS", "MIGRATIONS_DIR", "READER_THREADS", "Database"]

T = TypeVar("T")

READER_THREADS = 2
BUSY_TIMEOUT_MS = 5000
WAL_RETRY_SECONDS = 0.02
_BEGIN_WRITE = "BEGIN IMMEDIATE"
# Deferred: a reader's snapshot starts at its first read, and it never asks for the write lock.
_BEGIN_READ = "BEGIN"


class Database:
    """A SQLite file, reached through one writer thread and a small pool of reader threads."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        if parsed.drivername not in ("sqlite", "sqlite+pysqlite"):
            raise ValueError(f"Database takes a sqlite:///PATH URL, not {parsed.drivername}://")
        path = parsed.database or ""
        if path in ("", ":memory:") or parsed.query.get("mode") == "memory":
            # Each connection would get its own private database: writes would be invisible
            # to readers.
            raise ValueError("Database needs a SQLite file: sqlite:///PATH")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # check_same_thread=False: close() closes the worker threads' connections from the
        # thread it runs on, once those threads have stopped. Each connection is still used by
        # one thread at a time.
        connect_args = {"check_same_thread": False}
        # NullPool: each thread holds its connection for good, so a pool would only keep the
        # same connections a second time (and reset each one it got back).
        self._writer = create_engine(parsed, poolclass=NullPool, connect_args=connect_args)
        reader = create_engine(parsed, poolclass=NullPool, connect_args=connect_args)
        _configure(self._writer, read_only=False)
        _configure(reader, read_only=True)
        self._writes = _ThreadConnections(self._writer, _BEGIN_WRITE)
        self._reads = _ThreadConnections(reader, _BEGIN_READ)
        self._write_thread = _Workers(1, "sqlite-writer")
        self._read_threads = _Workers(READER_THREADS, "sqlite-reader")
        self._closed = False

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` as one write transaction on the writer thread; commit unless it raises.

        Writes run one at a time in submission order. If the awaiting task is cancelled the
        transaction still runs to its end: it may have committed.
        """
        return await self._write_thread.submit(functools.partial(self._writes.transact, fn))

    async def read(self, fn: Callable[[Connection], T], *, bounded: bool = False) -> T:
        """Run `fn` as one read-only transaction (a consistent snapshot) on a reader thread,
        or, `bounded`, at once on the calling thread (see the module's docstring)."""
        if bounded:
            if self._closed:
                raise RuntimeError("the database is closed")
            return self._reads.transact(fn)
        return await self._read_threads.submit(functools.partial(self._reads.transact, fn))

    def migrate(self) -> None:
        """Bring the schema to the newest revision; a no-op when it is there already.

        Synchronous, for command-line use; async callers use `run_migrations()`. Across
        processes the writer's BEGIN IMMEDIATE serialises migrations: the second process
        waits for the first to commit, then finds nothing left to do. It runs on a connection
        of its own, closed at the end: it may be called from any thread, and seldom.
        """
        with ALEMBIC_LOCK, self._writer.connect() as conn:
            _transact(conn, _driver(conn), _BEGIN_WRITE, upgrade_to_head)

    async def run_migrations(self) -> None:
        """`migrate()` on the writer thread, queued behind any writes already submitted."""
        await self._write_thread.submit(self.migrate)

    async def close(self) -> None:
        """Let submitted transactions finish, then close every connection and thread.

        Idempotent. Submitting work afterwards raises RuntimeError.
        """
        if self._closed:
            return
        self._closed = True
        self._write_thread.refuse()
        self._read_threads.refuse()
        await asyncio.to_thread(self._shut_down)

    def _shut_down(self) -> None:
        self._write_thread.stop()
        self._read_threads.stop()
        self._writes.close()
        self._reads.close()


# A call for a worker thread, the future that awaits its outcome and that future's loop.
_Job = tuple[Callable[[], Any], asyncio.Future[Any], asyncio.AbstractEventLoop]


class _Workers:
    """Threads that run calls taken from one queue, in submission order, and hand each
    outcome to the awaiting future on its event loop.

    A call whose future was cancelled before a thread took it up is dropped, as an executor
    drops a work item cancelled before it starts; once started it runs to its end and its
    outcome is dropped instead. The threads start with the first call and are daemons: a
    process that never closes its database still exits (SQLite rolls back whatever a killed
    transaction left open), while `stop()` lets every submitted call finish first.
    """

    def __init__(self, count: int, name: str) -> None:
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._serve, name=f"{name}_{index}", daemon=True)
            for index in range(count)
        ]
        self._lock = threading.Lock()
        self._started = False
        self._refused = False

    def submit(self, call: Callable[[], T]) -> asyncio.Future[T]:
        """Queue `call`; the returned future of the running loop gets its result or error."""
        if self._refused:
            raise RuntimeError("the database is closed")
        if not self._started:
            self._start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((call, future, loop))
        return future

    def refuse(self) -> None:
        """Refuse calls from now on; those already queued still run."""
        self._refused = True

    def stop(self) -> None:
        """Refuse new calls, let the queued ones finish and end the threads (blocking)."""
        self._refused = True
        with self._lock:
            started, self._started = self._started, False
        if not started:
            return
        # Queued after every submitted call: each thread ends once the queue before it is done.
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()

    def _start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
            for thread in self._threads:
                thread.start()

    def _serve(self) -> None:
        while (job := self._queue.get()) is not None:
            _run(*job)
            # Hold nothing of a finished call while waiting for the next one.
            del job


def _run(
    call: Callable[[], Any], future: asyncio.Future[Any], loop: asyncio.AbstractEventLoop
) -> None:
    if future.cancelled():
        return
    try:
        outcome = (True, call())
    except BaseException as exc:
        outcome = (False, exc)
    # A closed loop has no one left to await the outcome.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_settle, future, *outcome)


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class _Held(threading.local):
    conn: Connection | None = None


class _ThreadConnections:
    """The connections of one engine, one per thread, each kept from its thread's first
    transaction until `close()`."""

    def __init__(self, engine: Engine, begin: str) -> None:
        self._engine = engine
        self._begin = begin
        self._held = _Held()
        # Every connection still open, whatever thread holds it, for close().
        self._lock = threading.Lock()
        self._open: set[Connection] = set()

    def transact(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` as one transaction on the calling thread's connection.

        The connection outlives the transaction, so nothing may outlive it on the connection.
        When a COMMIT fails (a deferred foreign key, say) SQLite keeps the transaction open,
        and SQLAlchemy, which counts it finished, does not roll it back: the next BEGIN would
        fail, on every later write. Such a connection, or one that lost its driver connection,
        is closed (which ends what SQLite held open) and the thread opens a new one next time.
        """
        conn = self._held.conn
        if conn is None:
            conn = self._engine.connect()
            with self._lock:
                self._open.add(conn)
            self._held.conn = conn
        driver = _driver(conn)
        try:
            return _transact(conn, driver, self._begin, fn)
        finally:
            if conn.invalidated or driver.in_transaction:
                self._held.conn = None
                with self._lock:
                    self._open.discard(conn)
                conn.close()

    def close(self) -> None:
        """Close every connection; the threads that held them must have stopped."""
        with self._lock:
            held, self._open = self._open, set()
        for conn in held:
            conn.close()


def _driver(conn: Connection) -> sqlite3.Connection:
    return cast(sqlite3.Connection, conn.connection.driver_connection)


def _transact(
    conn: Connection, driver: sqlite3.Connection, begin: str, fn: Callable[[Connection], T]
) -> T:
    """Run `fn` in a transaction that SQLAlchemy commits, or rolls back if `fn` raises.

    SQLAlchemy's begin sends nothing to pysqlite, and pysqlite (`isolation_level = None`, see
    `_configure`) sends no BEGIN of its own: we send ours first.
    """
    driver.execute(begin)
    with conn.begin():
        return fn(conn)


def _use_wal(cursor: Any) -> None:
    """Put the file in WAL mode (a lasting property of the file, so usually already done).

    The first switch needs the file to itself, and SQLite may answer "database is locked" at
    once, without waiting out `busy_timeout`, when several processes open a new file together:
    try again for a while before giving up.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        cursor.execute("PRAGMA journal_mode")
        if str(cursor.fetchone()[0]).lower() == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.fetchall()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(WAL_RETRY_SECONDS)


def _configure(engine: Engine, *, read_only: bool) -> None:
    """Take transaction control away from pysqlite and set up each new connection.

    pysqlite's default (legacy) mode emits BEGIN itself, and only before DML: a SELECT would run
    outside any transaction and DDL would autocommit. With `isolation_level = None` it emits
    nothing and `_transact` sends our own BEGIN. pysqlite still commits and rolls back
    correctly. The hook is a pool event: unlike engine events, it costs nothing per statement.
    """

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # busy_timeout first: switching the journal to WAL needs a lock a concurrent
            # starter may hold.
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            _use_wal(cursor)
            # NORMAL is durable in WAL mode except for the last transactions before a power
            # loss (never corruption), and spares an fsync per commit.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            if read_only:
                # A write on a reader would take the file lock behind the writer's back and
                # could fail with "database is locked"; make it fail at once instead.
                cursor.execute("PRAGMA query_only=ON")
        finally:
            cursor.close()

    event.listen(engine, "connect", on_connect)
