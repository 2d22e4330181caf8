"""Where store transactions run on SQLite: everything that is particular to SQLite lives here.

The store's operations are plain synchronous functions of a `sqlalchemy.Connection`, so that
the same functions run on PostgreSQL through `AsyncConnection.run_sync` (`postgres.py`). This
module runs them on SQLite without blocking the event loop on anything that may take long, at
one thread hop per transaction (not per statement, which would cost a hop for every query),
fewer for writes that queue up, and none for a short read:

- One writer connection on one dedicated thread. SQLite admits one writer at a time anyway;
  queuing writes in-process is cheaper than having connections fight over the file lock, and
  `BEGIN IMMEDIATE` takes that lock up front so that a transaction never fails half-way when
  its first write finds another process writing (it waits, up to `busy_timeout`, instead).
- Writes that queue up while the writer is busy go in together as one transaction, each in
  a savepoint of its own (a group commit): one that raises is rolled back to its savepoint
  and fails alone, and every caller hears of its write only once the whole group committed.
  Under load the writer spent a quarter of its time committing, one commit per write;
  creating messages over gRPC at 64 calls at once went from about 900 to 1,200 a second
  with groups. A write that finds the writer idle goes alone, without a savepoint.
- A few reader connections on their own threads. In WAL mode readers see the last committed
  state and neither block the writer nor wait for it.
- A bounded read (a row by key, one page of a list) runs on the calling thread, on a reader
  connection of that thread's own: it takes tens of microseconds of work in SQLite, while the
  hop to a thread and back took some 150 us of CPU on a 2-core VM (four thread wake-ups and
  the GIL handed back and forth), more under load. Reads that may be long (a whole thread's
  messages for a prompt) keep their thread, so they never stall the event loop.

Each thread keeps one connection from its first transaction until `close()`, and the BEGIN is
sent straight to the driver (a read's ROLLBACK too, see `_read`). A store transaction is a few
small statements, so what surrounds them weighs: checking a connection out of a pool and
resetting it on return, and the engine `begin` event of SQLAlchemy's recipe for pysqlite (an
engine with any listener dispatches events around every statement), took about 40 of the
100 µs of CPU that reading one run cost.

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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from compat_core.store.lock import DatabaseLock
from compat_core.store.migrate import ALEMBIC_LOCK, MIGRATIONS_DIR, upgrade_to_head

__all__ = ["BUSY_TIMEOUT_MS", "MIGRATIONS_DIR", "READER_THREADS", "Database"]

T = TypeVar("T")

READER_THREADS = 2
# The most writes committed together: enough to spread a commit thin, few enough that the
# first of them does not wait long for the last.
GROUP_WRITES = 32
BUSY_TIMEOUT_MS = 5000
WAL_RETRY_SECONDS = 0.02
_BEGIN_WRITE = "BEGIN IMMEDIATE"
# Deferred: a reader's snapshot starts at its first read, and it never asks for the write lock.
_BEGIN_READ = "BEGIN"
_SAVEPOINT = "SAVEPOINT grouped_write"
_ROLLBACK_TO = "ROLLBACK TO grouped_write"
_ROLLBACK = "ROLLBACK"
_RELEASE = "RELEASE grouped_write"


class Database:
    """A SQLite file, reached through one writer thread and a small pool of reader threads.

    `exclusive`: this is a server's database (or `migrate`'s), which no other may open
    exclusively until this one is closed (see `lock`); raises DatabaseInUse if another holds
    it. Tests that look into a running server's file do not ask for it.
    """

    def __init__(self, url: str, *, exclusive: bool = False) -> None:
        parsed = make_url(url)
        if parsed.drivername not in ("sqlite", "sqlite+pysqlite"):
            raise ValueError(f"Database takes a sqlite:///PATH URL, not {parsed.drivername}://")
        path = parsed.database or ""
        if path in ("", ":memory:") or parsed.query.get("mode") == "memory":
            # Each connection would get its own private database: writes would be invisible
            # to readers.
            raise ValueError("Database needs a SQLite file: sqlite:///PATH")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._claim: DatabaseLock | None = None
        if exclusive:
            # Before anything touches the file: a refused server must not even set it up.
            self._claim = DatabaseLock(Path(path))
            self._claim.acquire()
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
        self._writes = _ThreadConnections(self._writer, _BEGIN_WRITE, _transact)
        self._reads = _ThreadConnections(reader, _BEGIN_READ, _read)
        self._write_thread = _Workers(1, "sqlite-writer", self._writes.transact_group, GROUP_WRITES)
        self._read_threads = _Workers(READER_THREADS, "sqlite-reader", self._reads.transact_group)
        self._closed = False

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` as one write transaction on the writer thread; commit unless it raises.

        Writes run one at a time in submission order, each seeing those before it; several
        may share one commit (see the module's docstring). If the awaiting task is cancelled
        the transaction still runs to its end: it may have committed.
        """
        return await self._write_thread.submit(fn)

    async def read(self, fn: Callable[[Connection], T], *, bounded: bool = False) -> T:
        """Run `fn` as one read-only transaction (a consistent snapshot) on a reader thread,
        or, `bounded`, at once on the calling thread (see the module's docstring)."""
        if bounded:
            if self._closed:
                raise RuntimeError("the database is closed")
            return self._reads.transact(fn)
        return await self._read_threads.submit(fn)

    def pending(self) -> int:
        """Transactions waiting for the writer or a reader thread."""
        return self._write_thread.pending() + self._read_threads.pending()

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
        """What `migrate()` does, as a write of the writer thread on its own connection,
        queued behind any writes already submitted."""
        await self._write_thread.submit(_upgrade)

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
        # Only once every connection is closed: the next server never overlaps this one.
        if self._claim is not None:
            self._claim.release()

    def _shut_down(self) -> None:
        self._write_thread.stop()
        self._read_threads.stop()
        self._writes.close()
        self._reads.close()


# A store function for a worker thread, the future that awaits its outcome and that future's
# loop.
_Job = tuple[Callable[[Connection], Any], asyncio.Future[Any], asyncio.AbstractEventLoop]
# A store function's outcome: (True, what it returned) or (False, what it raised).
_Outcome = tuple[bool, Any]
# Runs store functions, in order, on the calling thread: one outcome for each.
_Runner = Callable[[Sequence[Callable[[Connection], Any]]], list[_Outcome]]


class _Workers:
    """Threads that run store functions taken from one queue, in submission order, and hand
    each outcome to the awaiting future on its event loop.

    A thread takes up to `group` functions at a time, as many as are waiting, and hands them
    to `run` together (the writer commits them as one transaction), then settles their futures
    with one wake-up of the loop. A function whose future was cancelled before a thread took
    it up is dropped, as an executor drops a work item cancelled before it starts; once
    started it runs to its end and its outcome is dropped instead. The threads start with the
    first call and are daemons: a process that never closes its database still exits (SQLite
    rolls back whatever a killed transaction left open), while `stop()` lets every submitted
    call finish first.
    """

    def __init__(self, count: int, name: str, run: _Runner, group: int = 1) -> None:
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._serve, name=f"{name}_{index}", daemon=True)
            for index in range(count)
        ]
        self._run = run
        self._group = group
        self._lock = threading.Lock()
        self._started = False
        self._refused = False

    def pending(self) -> int:
        """Calls queued and not yet taken up by a thread."""
        return self._queue.qsize()

    def submit(self, fn: Callable[[Connection], T]) -> asyncio.Future[T]:
        """Queue `fn`; the returned future of the running loop gets its result or error."""
        if self._refused:
            raise RuntimeError("the database is closed")
        if not self._started:
            self._start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((fn, future, loop))
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
        ending = False
        while not ending:
            jobs, ending = self._take()
            self._serve_jobs([job for job in jobs if not job[1].cancelled()])
            # Hold nothing of finished calls while waiting for the next ones.
            del jobs

    def _serve_jobs(self, jobs: list[_Job]) -> None:
        if not jobs:
            return
        try:
            outcomes = self._run([fn for fn, _, _ in jobs])
        except BaseException as exc:
            # Every future taken is settled, whatever happens: none may wait forever.
            outcomes = [(False, exc)] * len(jobs)
        _hand_back(jobs, outcomes)

    def _take(self) -> tuple[list[_Job], bool]:
        """The next calls: one, waited for, then those already queued behind it, up to
        `group`; and whether the end of the queue (`stop()`'s marker) was reached."""
        first = self._queue.get()
        if first is None:
            return [], True
        jobs = [first]
        while len(jobs) < self._group:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
        return jobs, False


def _hand_back(jobs: Sequence[_Job], outcomes: Sequence[_Outcome]) -> None:
    """Settle each job's future with its outcome: one callback per event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], _Outcome]]] = {}
    for (_, future, loop), outcome in zip(jobs, outcomes, strict=True):
        by_loop.setdefault(loop, []).append((future, outcome))
    for loop, settled in by_loop.items():
        # A closed loop has no one left to await the outcome.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, settled)


def _settle(settled: list[tuple[asyncio.Future[Any], _Outcome]]) -> None:
    for future, (ok, value) in settled:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def _outcome(call: Callable[[], Any]) -> _Outcome:
    try:
        return True, call()
    except BaseException as exc:
        return False, exc


class _Transaction(Protocol):
    """Runs a store function as one transaction on a connection (and its driver connection),
    opened with the BEGIN statement given: `_transact` or `_read`."""

    def __call__(
        self,
        conn: Connection,
        driver: sqlite3.Connection,
        begin: str,
        fn: Callable[[Connection], T],
    ) -> T: ...


class _Held(threading.local):
    conn: Connection | None = None


class _ThreadConnections:
    """The connections of one engine, one per thread, each kept from its thread's first
    transaction until `close()`."""

    def __init__(self, engine: Engine, begin: str, run: _Transaction) -> None:
        self._engine = engine
        self._begin = begin
        self._run = run
        self._held = _Held()
        # Every connection still open, whatever thread holds it, for close().
        self._lock = threading.Lock()
        self._open: set[Connection] = set()

    def transact(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` as one transaction on the calling thread's connection."""
        conn = self._connection()
        driver = _driver(conn)
        try:
            return self._run(conn, driver, self._begin, fn)
        finally:
            self._drop_if_unusable(conn, driver)

    def transact_group(self, fns: Sequence[Callable[[Connection], Any]]) -> list[_Outcome]:
        """Run `fns` in order on the calling thread's connection: one alone as its own
        transaction, several as one transaction of savepoints (see `_transact_group`)."""
        if len(fns) == 1:
            return [_outcome(functools.partial(self.transact, fns[0]))]
        outcomes: list[_Outcome] = []
        while len(outcomes) < len(fns):
            outcomes += self._group(fns[len(outcomes) :])
        return outcomes

    def _group(self, fns: Sequence[Callable[[Connection], Any]]) -> list[_Outcome]:
        try:
            conn = self._connection()
        except BaseException as exc:
            return [(False, exc)]
        driver = _driver(conn)
        try:
            return _transact_group(conn, driver, self._begin, fns)
        finally:
            self._drop_if_unusable(conn, driver)

    def _connection(self) -> Connection:
        conn = self._held.conn
        if conn is None:
            conn = self._engine.connect()
            with self._lock:
                self._open.add(conn)
            self._held.conn = conn
        return conn

    def _drop_if_unusable(self, conn: Connection, driver: sqlite3.Connection) -> None:
        """Close the connection if a transaction was left open on it, or it lost its driver
        connection; the thread opens a new one next time.

        The connection outlives the transaction, so nothing may outlive it on the connection.
        When a COMMIT fails (a deferred foreign key, say) SQLite keeps the transaction open,
        and SQLAlchemy, which counts it finished, does not roll it back: the next BEGIN would
        fail, on every later write. Closing the connection ends what SQLite held open.
        """
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


def _read(
    conn: Connection, driver: sqlite3.Connection, begin: str, fn: Callable[[Connection], T]
) -> T:
    """Run `fn` in a read transaction of the driver's own: `_transact`'s snapshot without
    SQLAlchemy's transaction object around it.

    The store's hot statements go to the driver directly (`prepared`), so SQLAlchemy's begin
    and commit would only keep its books: about 15 µs of the 80 that listing 20 messages
    spent in the store under load. A read has nothing to commit and ends with a ROLLBACK. A
    statement that does go through SQLAlchemy makes it begin a transaction of its own (it
    sends nothing to pysqlite), which is rolled back here too.
    """
    driver.execute(begin)
    try:
        return fn(conn)
    finally:
        if conn.in_transaction():
            conn.rollback()
        if driver.in_transaction:
            driver.execute(_ROLLBACK)


def _transact_group(
    conn: Connection,
    driver: sqlite3.Connection,
    begin: str,
    fns: Sequence[Callable[[Connection], Any]],
) -> list[_Outcome]:
    """Run `fns` as one transaction, each in a savepoint: the outcomes of those that ran.

    A function that raises is rolled back to its savepoint and the others go on, so each
    still commits, or not, as if alone. If the transaction itself fails (its BEGIN or COMMIT,
    or a function after whose error SQLite had rolled all of it back, as on a full disk),
    what ran is gone: each function that ran gets that error. Those that did not run are left
    to the caller, which runs them in a new transaction; at least one outcome is returned.
    """
    outcomes: list[_Outcome] = []
    try:
        driver.execute(begin)
        with conn.begin():
            for fn in fns:
                driver.execute(_SAVEPOINT)
                outcome = _outcome(functools.partial(fn, conn))
                if not outcome[0]:
                    if not driver.in_transaction:
                        # SQLite rolled all of it back under `fn`: its error is the group's.
                        raise outcome[1]
                    driver.execute(_ROLLBACK_TO)
                driver.execute(_RELEASE)
                outcomes.append(outcome)
    except BaseException as exc:
        # Those that ran and the one running when it failed: all of them at the COMMIT, and
        # the first alone when the BEGIN failed (it is answered, so the caller moves on).
        ran = min(len(outcomes) + 1, len(fns))
        return [(False, exc)] * ran
    return outcomes


def _upgrade(conn: Connection) -> None:
    """`upgrade_to_head` as a write of the writer thread (Alembic's state is process-wide)."""
    with ALEMBIC_LOCK:
        upgrade_to_head(conn)


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
