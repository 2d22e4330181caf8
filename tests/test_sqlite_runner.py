"""SQLite's transaction runner (`Database`): each worker thread keeps its connection from one
transaction to the next, so a transaction that fails must leave that connection clean, and
close() must still wait for submitted work and then close every connection.

Real SQLite files; these run in the PostgreSQL pass too, since `Database` is SQLite's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import Connection, func, insert, select
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


def orphan_run(conn: Connection) -> None:
    """A run of a thread that does not exist, its foreign key checked only at COMMIT."""
    conn.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
    conn.execute(
        insert(schema.runs).values(
            id="run_x", thread_id="thread_none", status=1, created_at=0, body=b""
        )
    )


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


@pytest.mark.parametrize("bounded", [True, False])
async def test_a_read_sees_one_snapshot_and_leaves_no_transaction_open(
    db: Database, db_file: Path, bounded: bool
) -> None:
    # Reads open their transaction on the driver and roll it back, whether their statements
    # went to the driver or through SQLAlchemy; a write committed meanwhile stays unseen.
    await db.write(add_thread("thread_a"))
    statements: list[str] = []
    drivers: list[sqlite3.Connection] = []

    def read(conn: Connection) -> tuple[bool, int, int]:
        driver = driver_of(conn)
        drivers.append(driver)
        driver.set_trace_callback(statements.append)
        began = driver.in_transaction
        first = driver.execute("SELECT count(*) FROM threads").fetchone()[0]
        with contextlib.closing(sqlite3.connect(db_file)) as other:
            other.execute("INSERT INTO threads (id, created_at, body) VALUES ('thread_b', 0, x'')")
            other.commit()
        second = conn.execute(select(func.count()).select_from(schema.threads)).scalar_one()
        return began, first, second

    assert await db.read(read, bounded=bounded) == (True, 1, 1)
    assert statements[-1] == "ROLLBACK"
    assert not drivers[0].in_transaction
    drivers[0].set_trace_callback(None)

    def fail(conn: Connection) -> None:
        driver_of(conn).execute("SELECT 1")
        raise Boom

    with pytest.raises(Boom):
        await db.read(fail, bounded=bounded)
    assert sorted(await thread_ids(db)) == ["thread_a", "thread_b"]

    def connection_state(conn: Connection) -> tuple[bool, bool]:
        return driver_of(conn).in_transaction, conn.in_transaction()

    # The next read on the same connection begins afresh (a transaction left open would make
    # its BEGIN fail, and SQLAlchemy's would make it keep the old snapshot).
    assert await db.read(connection_state, bounded=bounded) == (True, False)


async def queued_behind_a_held_write(
    db: Database, fns: list[Callable[[Connection], object]]
) -> tuple[list[object], list[str]]:
    """Run `fns` as writes queued while the writer is busy, so that they go in as one group:
    what each returned or raised, and the SQL the writer sent for them."""
    holding, release = threading.Event(), threading.Event()
    statements: list[str] = []

    def hold(conn: Connection) -> None:
        driver_of(conn).set_trace_callback(statements.append)
        holding.set()
        assert release.wait(timeout=10)

    def untrace(conn: Connection) -> None:
        driver_of(conn).set_trace_callback(None)

    held = asyncio.create_task(db.write(hold))
    assert await asyncio.to_thread(holding.wait, 10)
    tasks = [asyncio.create_task(db.write(fn)) for fn in fns]
    # One step each queues every write behind the held one.
    await asyncio.sleep(0)
    release.set()
    await held
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    await db.write(untrace)
    # `untrace`'s own BEGIN, unless the group's failure replaced the traced connection.
    if statements[-1] == "BEGIN IMMEDIATE":
        statements.pop()
    return outcomes, statements


async def test_writes_queued_together_commit_as_one_and_a_failing_one_alone_rolls_back(
    db: Database,
) -> None:
    def fail(conn: Connection) -> None:
        add_thread("thread_b")(conn)
        raise Boom

    def sees_thread_a(conn: Connection) -> list[str]:
        return list(conn.execute(select(schema.threads.c.id)).scalars())

    outcomes, statements = await queued_behind_a_held_write(
        db,
        [
            add_thread("thread_a"),
            fail,
            sees_thread_a,
            add_thread("thread_a"),
            add_thread("thread_c"),
        ],
    )
    assert outcomes[0] is None
    assert isinstance(outcomes[1], Boom)
    # Each write sees those before it, and not one that failed.
    assert outcomes[2] == ["thread_a"]
    assert isinstance(outcomes[3], DBAPIError)
    assert "UNIQUE" in str(outcomes[3])
    assert outcomes[4] is None
    assert await thread_ids(db) == ["thread_a", "thread_c"]
    # One transaction for the five, after the held write's own COMMIT.
    assert statements[:2] == ["COMMIT", "BEGIN IMMEDIATE"]
    assert statements.count("BEGIN IMMEDIATE") == 1
    assert statements.count("COMMIT") == 2
    assert statements.count("SAVEPOINT grouped_write") == 5
    assert statements.count("ROLLBACK TO grouped_write") == 2


async def test_a_group_whose_commit_fails_fails_every_write_in_it(db: Database) -> None:
    outcomes, _ = await queued_behind_a_held_write(
        db, [add_thread("thread_a"), orphan_run, add_thread("thread_b")]
    )
    assert all(isinstance(outcome, DBAPIError) for outcome in outcomes)
    assert all("FOREIGN KEY" in str(outcome) for outcome in outcomes)
    assert await thread_ids(db) == []
    # The writer starts afresh.
    await db.write(add_thread("thread_c"))
    assert await thread_ids(db) == ["thread_c"]


async def test_when_sqlite_drops_a_group_those_after_run_again(db: Database) -> None:
    # A statement after which SQLite has rolled the whole transaction back (as on a full disk)
    # takes the writes before it along; those not yet run still run, in a new transaction.
    def lose_the_transaction(conn: Connection) -> None:
        driver_of(conn).execute("ROLLBACK")
        raise Boom

    outcomes, _ = await queued_behind_a_held_write(
        db, [add_thread("thread_a"), lose_the_transaction, add_thread("thread_b")]
    )
    assert isinstance(outcomes[0], Boom)
    assert isinstance(outcomes[1], Boom)
    assert outcomes[2] is None
    assert await thread_ids(db) == ["thread_b"]


async def test_a_group_the_writer_cannot_run_fails_its_writes_and_the_writer_goes_on(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whatever breaks under a group, every write taken is answered: none waits forever.
    real = database_module._transact_group
    groups: list[object] = []

    def transact_group(*args: Any) -> Any:
        groups.append(args)
        if len(groups) == 1:
            raise Boom
        return real(*args)

    monkeypatch.setattr(database_module, "_transact_group", transact_group)
    outcomes, _ = await queued_behind_a_held_write(
        db, [add_thread("thread_a"), add_thread("thread_b")]
    )
    assert [type(outcome) for outcome in outcomes] == [Boom, Boom]
    outcomes, _ = await queued_behind_a_held_write(
        db, [add_thread("thread_c"), add_thread("thread_d")]
    )
    assert outcomes == [None, None]
    assert await thread_ids(db) == ["thread_c", "thread_d"]


async def test_a_group_that_cannot_begin_answers_its_first_write_and_runs_the_rest_again(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = database_module._transact_group
    groups: list[int] = []

    def first_begin_fails(conn: Connection, driver: Any, begin: str, fns: Any) -> Any:
        groups.append(len(fns))
        return real(conn, driver, "BEGIN NOT VALID SQL" if len(groups) == 1 else begin, fns)

    monkeypatch.setattr(database_module, "_transact_group", first_begin_fails)
    outcomes, _ = await queued_behind_a_held_write(
        db, [add_thread("thread_a"), add_thread("thread_b"), add_thread("thread_c")]
    )
    assert isinstance(outcomes[0], sqlite3.OperationalError)
    assert outcomes[1:] == [None, None]
    assert groups == [3, 2]
    assert await thread_ids(db) == ["thread_b", "thread_c"]
