"""SQLite's transaction runner (`Database`): each worker thread keeps its connection from one
transaction to the next, so a transaction that fails must leave that connection clean, and
close() must still wait for submitted work and then close every connection.

Real SQLite files; these run in the PostgreSQL pass too, since `Database` is SQLite's own.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import DBAPIError

from compat_core.store import Database, schema
from compat_core.store import database as database_module

SLOW_WRITE_SECONDS = 0.05


class Boom(Exception):
    pass


@pytest_asyncio.fixture(loop_scope="function")
async def db(db_file: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{db_file}")
    await database.run_migrations()
    yield database
    await database.close()


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    return tmp_path / "compat.db"


def add_thread(thread_id: str) -> Callable[[Connection], None]:
    def add(conn: Connection) -> None:
        conn.execute(insert(schema.threads).values(id=thread_id, created_at=0, body=b""))

    return add


async def thread_ids(db: Database) -> list[str]:
    def read(conn: Connection) -> list[str]:
        return list(conn.execute(select(schema.threads.c.id).order_by("id")).scalars())

    return await db.read(read)


def driver_of(conn: Connection) -> sqlite3.Connection:
    driver = conn.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    return driver


async def test_a_failed_write_rolls_back_and_the_next_write_works(db: Database) -> None:
    def fail(conn: Connection) -> None:
        conn.execute(insert(schema.threads).values(id="thread_a", created_at=0, body=b""))
        raise Boom

    with pytest.raises(Boom):
        await db.write(fail)
    await db.write(add_thread("thread_b"))
    assert await thread_ids(db) == ["thread_b"]


async def test_a_failed_commit_leaves_no_transaction_open(db: Database) -> None:
    # A deferred foreign key fails at COMMIT, and SQLite keeps the transaction open after a
    # failed COMMIT: the writer must not start its next transaction inside that one.
    def orphan_run(conn: Connection) -> None:
        conn.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
        conn.execute(
            insert(schema.runs).values(
                id="run_x", thread_id="thread_none", status=1, created_at=0, body=b""
            )
        )

    with pytest.raises(Exception, match="FOREIGN KEY"):
        await db.write(orphan_run)
    await db.write(add_thread("thread_a"))
    assert await thread_ids(db) == ["thread_a"]
    runs = await db.read(lambda conn: conn.execute(select(schema.runs.c.id)).all())
    assert runs == []


async def test_a_write_that_cannot_begin_leaves_the_writer_usable(
    db_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Read when each connection is set up: the write below gives up after 50 ms, not 5 s.
    monkeypatch.setattr(database_module, "BUSY_TIMEOUT_MS", 50)
    db = Database(f"sqlite:///{db_file}")
    try:
        await db.run_migrations()
        await db.write(add_thread("thread_a"))
        other = sqlite3.connect(db_file, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(Exception, match="locked"):
                await db.write(add_thread("thread_b"))
            other.execute("ROLLBACK")
        finally:
            other.close()
        await db.write(add_thread("thread_c"))
        assert await thread_ids(db) == ["thread_a", "thread_c"]
    finally:
        await db.close()


async def test_each_thread_keeps_its_connection(db: Database) -> None:
    writers: list[sqlite3.Connection] = []
    readers: list[sqlite3.Connection] = []

    def write(conn: Connection) -> None:
        writers.append(driver_of(conn))

    def read(conn: Connection) -> None:
        readers.append(driver_of(conn))
        # Long enough for the other reads to need the other reader threads.
        time.sleep(0.005)

    for _ in range(5):
        await db.write(write)
    await asyncio.gather(*(db.read(read) for _ in range(20)))
    assert len({id(driver) for driver in writers}) == 1
    assert 1 <= len({id(driver) for driver in readers}) <= database_module.READER_THREADS


async def test_close_lets_submitted_work_finish_then_closes_every_connection(
    db_file: Path,
) -> None:
    db = Database(f"sqlite:///{db_file}")
    await db.run_migrations()
    drivers: list[sqlite3.Connection] = []
    finished: list[float] = []

    def slow_write(thread_id: str) -> Callable[[Connection], None]:
        def write(conn: Connection) -> None:
            drivers.append(driver_of(conn))
            time.sleep(SLOW_WRITE_SECONDS)
            conn.execute(insert(schema.threads).values(id=thread_id, created_at=0, body=b""))
            finished.append(time.monotonic())

        return write

    def slow_read(conn: Connection) -> None:
        drivers.append(driver_of(conn))
        time.sleep(SLOW_WRITE_SECONDS)
        conn.execute(select(schema.threads.c.id)).all()
        finished.append(time.monotonic())

    writes = [asyncio.create_task(db.write(slow_write(f"thread_{n}"))) for n in range(3)]
    reads = [asyncio.create_task(db.read(slow_read)) for _ in range(3)]
    # One step each submits the transactions to their threads.
    await asyncio.sleep(0)
    await db.close()
    closed = time.monotonic()
    await asyncio.gather(*writes, *reads)
    assert len(finished) == 6
    assert max(finished) <= closed

    with pytest.raises(RuntimeError):
        await db.write(add_thread("thread_late"))
    await db.close()
    assert len(drivers) == 6
    for driver in drivers:
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            driver.execute("SELECT 1")
    check = sqlite3.connect(db_file)
    try:
        stored = sorted(row[0] for row in check.execute("SELECT id FROM threads"))
    finally:
        check.close()
    assert stored == ["thread_0", "thread_1", "thread_2"]


async def test_a_bounded_read_runs_on_the_calling_thread_and_cannot_write(
    db_file: Path,
) -> None:
    db = Database(f"sqlite:///{db_file}")
    await db.run_migrations()
    await db.write(add_thread("thread_a"))
    seen: list[tuple[threading.Thread, sqlite3.Connection]] = []

    def read(conn: Connection) -> list[str]:
        seen.append((threading.current_thread(), driver_of(conn)))
        return list(conn.execute(select(schema.threads.c.id)).scalars())

    assert await db.read(read, bounded=True) == ["thread_a"]
    await db.write(add_thread("thread_b"))
    # A new snapshot each time, on the same connection of this thread.
    assert sorted(await db.read(read, bounded=True)) == ["thread_a", "thread_b"]
    assert [thread for thread, _ in seen] == [threading.current_thread()] * 2
    assert seen[0][1] is seen[1][1]

    # It is a reader's connection: query_only, as on the reader threads.
    with pytest.raises(DBAPIError, match="readonly"):
        await db.read(add_thread("thread_c"), bounded=True)
    assert sorted(await thread_ids(db)) == ["thread_a", "thread_b"]

    await db.close()
    # close() closes this thread's connection too, and refuses later reads.
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        seen[0][1].execute("SELECT 1")
    with pytest.raises(RuntimeError, match="closed"):
        await db.read(read, bounded=True)
