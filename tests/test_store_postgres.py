"""What only PostgreSQL has to get right: its DDL, migrations racing across processes, row locks
under truly concurrent transactions (SQLite runs one writer at a time, PostgreSQL does not),
snapshot reads, and the list queries' plans.

PostgreSQL pass only. Every behavioural store test also runs there (`test_store.py`,
`test_store_runs.py`); these add what SQLite cannot show.

Races are made deterministic rather than left to timing: the test's own transaction (a
`Holder`) takes the lock the store's transactions are expected to queue on, the contenders are
started, the test waits until PostgreSQL reports them all waiting on a lock, and only then lets
them go. Had a store transaction not locked what it should, it would not queue and would act on
stale data, which the outcome shows.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_asyncio
from alembic.script import ScriptDirectory
from harness.server import database_url, drop_database
from sqlalchemy import Connection, Engine, event, inspect, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from test_store import (
    HEAD,
    ON_POSTGRES,
    T0,
    assistant,
    current_revision,
    file,
    ids,
    message,
    thread,
)
from test_store_runs import ids_of, run, step, with_status

from compat_core.store import PageQuery, PostgresDatabase, SqlStore
from compat_core.store.base import ACTIVE_RUN_STATUSES, ThreadBusy
from compat_core.store.migrate import MIGRATIONS_DIR
from compat_core.store.postgres import MIGRATION_LOCK_KEY, async_url
from compat_core.v1 import assistants_pb2, runs_pb2

# Every revision, counted from the files: their numbers may skip (a branch's migration keeps
# its number until the branches are chained).

pytestmark = pytest.mark.skipif(
    not ON_POSTGRES, reason="PostgreSQL pass only (set COMPAT_TEST_POSTGRES_URL)"
)

T = TypeVar("T")

WAIT_SECONDS = 30.0
TABLES = (
    "assistants",
    "threads",
    "messages",
    "runs",
    "run_steps",
    "files",
    "vector_stores",
    "vector_store_files",
)
IN_PROGRESS = runs_pb2.RUN_STATUS_IN_PROGRESS
CANCELLING = runs_pb2.RUN_STATUS_CANCELLING


# Fixtures: a fresh database, and stores on it as separate replicas would open them.


@pytest.fixture
def db_url(tmp_path: Path) -> Iterator[str]:
    url = database_url(tmp_path)
    yield url
    drop_database(url)


# Async fixtures run in the test's own event loop: a connection belongs to the loop that
# opened it.


@pytest_asyncio.fixture(loop_scope="function")
async def db(db_url: str) -> AsyncIterator[PostgresDatabase]:
    database = PostgresDatabase(db_url)
    yield database
    await database.close()


@pytest_asyncio.fixture(loop_scope="function")
async def replicas(db: PostgresDatabase, db_url: str) -> AsyncIterator[list[SqlStore]]:
    """Two stores on the database, each with its own pool, like two core replicas."""
    stores = [SqlStore(db), SqlStore(PostgresDatabase(db_url))]
    for store in stores:
        await store.open()
    yield stores
    for store in stores:
        await store.close()


@pytest.fixture
def store(replicas: list[SqlStore]) -> SqlStore:
    return replicas[0]


@pytest_asyncio.fixture(loop_scope="function")
async def observer(db_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine of the test's own on the database, for holders and for watching locks."""
    engine = create_async_engine(async_url(db_url), poolclass=NullPool)
    yield engine
    await engine.dispose()


# Holding locks and watching who waits on them


class Holder:
    """A transaction of the test's own that holds the locks its statements take until released."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None

    async def __aenter__(self) -> Holder:
        self._conn = await self._engine.connect()
        await self._conn.begin()
        return self

    async def take(self, statement: str, **params: Any) -> None:
        assert self._conn is not None
        await self._conn.execute(text(statement), params)

    async def release(self) -> None:
        """Commit, letting the waiters go (idempotent)."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.commit()
            await conn.close()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.release()


async def until_waiting(engine: AsyncEngine, count: int, wait_event: str | None = None) -> None:
    """Return once `count` sessions on this database wait on a lock (of that `wait_event`, if
    given): the contenders are all queued.

    PostgreSQL offers no notification of a lock wait, so this asks again after each answer
    (each question is a round trip; nothing sleeps), up to WAIT_SECONDS. In AUTOCOMMIT, each
    question is a transaction of its own: pg_stat_activity is a snapshot per transaction.
    """
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' "
        "AND (CAST(:event AS text) IS NULL OR wait_event = CAST(:event AS text))"
    )
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        async with asyncio.timeout(WAIT_SECONDS):
            while True:
                waiting = (await conn.execute(query, {"event": wait_event})).scalar_one()
                if waiting >= count:
                    break
    assert waiting == count


def start(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    return asyncio.ensure_future(coro)


async def outcomes(tasks: list[asyncio.Task[T]]) -> list[T | BaseException]:
    return list(await asyncio.gather(*tasks, return_exceptions=True))


# Schema


async def test_migrations_create_bigserial_keys_and_bytea_bodies(
    store: SqlStore, db: PostgresDatabase
) -> None:
    def describe(conn: Connection) -> dict[str, Any]:
        inspector = inspect(conn)
        return {
            table: {
                "columns": {c["name"]: c for c in inspector.get_columns(table)},
                "pk": inspector.get_pk_constraint(table)["constrained_columns"],
            }
            for table in TABLES
        }

    tables = await db.read(describe)
    for table in TABLES:
        columns = tables[table]["columns"]
        assert tables[table]["pk"] == ["seq"], table
        seq, body = columns["seq"], columns["body"]
        assert str(seq["type"]) == "BIGINT", table
        # BIGSERIAL: a sequence of the column's own, which never hands a value out twice.
        assert str(seq["default"]).startswith(f"nextval('{table}_seq_seq'"), table
        assert str(body["type"]) == "BYTEA", table
        assert columns["id"]["nullable"] is False

    def sequence_types(conn: Connection) -> list[str]:
        statement = "SELECT data_type FROM information_schema.sequences ORDER BY sequence_name"
        return [str(t) for t in conn.execute(text(statement)).scalars()]

    def chunk_key(conn: Connection) -> Any:
        return {c["name"]: c for c in inspect(conn).get_columns("vector_store_chunks")}["id"]

    # Chunks have no `seq`: their own key is the BIGSERIAL (the rowid FTS5 needs on SQLite).
    key = await db.read(chunk_key)
    assert str(key["type"]) == "BIGINT"
    assert str(key["default"]).startswith("nextval('vector_store_chunks_id_seq'")
    # A BIGSERIAL sequence is 64-bit, as the column is.
    assert await db.read(sequence_types) == ["bigint"] * (len(TABLES) + 1)


# Transactions


async def test_reads_are_snapshots_and_writes_read_committed(
    store: SqlStore, db: PostgresDatabase
) -> None:
    def show(conn: Connection) -> tuple[str, str]:
        row = conn.execute(
            text(
                "SELECT current_setting('transaction_isolation'), "
                "current_setting('transaction_read_only')"
            )
        ).one()
        return str(row[0]), str(row[1])

    assert await db.read(show) == ("repeatable read", "on")
    assert await db.write(show) == ("read committed", "off")
    # Neither sticks to a pooled connection: concurrent reads and writes reuse each other's.
    for _ in range(3):
        reads = [db.read(show) for _ in range(6)]
        writes = [db.write(show) for _ in range(6)]
        results = await asyncio.gather(*reads, *writes)
        assert results == [("repeatable read", "on")] * 6 + [("read committed", "off")] * 6


async def test_a_cancelled_caller_does_not_cut_its_transaction_short(
    db_url: str, observer: AsyncEngine
) -> None:
    db = PostgresDatabase(db_url)
    store = SqlStore(db)
    await store.open()
    await store.create_assistant(assistant(1))

    def rename(a: assistants_pb2.Assistant) -> None:
        a.name = "renamed"

    async with Holder(observer) as holder:
        await holder.take("SELECT 1 FROM assistants WHERE id = 'asst_001' FOR UPDATE")
        caller = start(store.update_assistant("asst_001", rename))
        await until_waiting(observer, 1)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        await holder.release()
    # close() waits for the transaction the cancelled caller left running, which commits.
    await store.close()
    reopened = SqlStore(PostgresDatabase(db_url))
    await reopened.open()
    try:
        stored = await reopened.get_assistant("asst_001")
    finally:
        await reopened.close()
    assert stored is not None
    assert stored.name == "renamed"


# Migrations


async def test_replicas_migrating_at_once_wait_for_each_other(
    db_url: str, observer: AsyncEngine, tmp_path: Path
) -> None:
    """Several `assistants-compat migrate` processes on one fresh database, all let go at once.

    They queue on the migration's advisory lock (the test holds it until all of them wait
    there), then one migrates and the others find the work done: every one exits cleanly.
    """
    processes = 3
    # The command line's own entry point, after a word on stdout once the (slow) imports are
    # done, so that the test waits on pipes rather than asking PostgreSQL all that while.
    code = "from compat_core.cli import main; print('imported', flush=True); main(['migrate'])"
    env = {**os.environ, "COMPAT_DATABASE_URL": db_url}
    async with Holder(observer) as holder:
        await holder.take("SELECT pg_advisory_xact_lock(:key)", key=MIGRATION_LOCK_KEY)
        started = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                code,
                env=env,
                # No .env of a developer's working directory can reach them.
                cwd=tmp_path,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(processes)
        ]
        async with asyncio.timeout(WAIT_SECONDS):
            for process in started:
                assert process.stdout is not None
                assert await process.stdout.readline() == b"imported\n"
        await until_waiting(observer, processes, wait_event="advisory")
        # All of them queue before even looking at the revision.
        assert await table_names(observer) == set()
        await holder.release()
    results = [await process.communicate() for process in started]
    codes = [process.returncode for process in started]
    assert codes == [0] * processes, [err.decode() for _, err in results]
    assert await current_revision(db_url) == HEAD
    assert await table_names(observer) == {
        "alembic_version",
        "list_locks",
        "run_leases",
        "run_events",
        "vector_store_chunks",
        "vector_store_file_batches",
        "vector_store_file_attributes",
        "vector_store_embeddings",
        "projects",
        "api_keys",
        "project_limits",
        "rate_windows",
        "usage_daily",
        "stream_slots",
        *TABLES,
    }
    # Exactly one of them ran the revisions; the others found nothing to do.
    ran = [err.decode().count("Running upgrade") for _, err in results]
    revisions = len(list(ScriptDirectory(str(MIGRATIONS_DIR)).walk_revisions()))
    assert sorted(ran) == [0] * (processes - 1) + [revisions], ran


async def table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))


# The one-active-run rule under concurrent transactions


async def test_concurrent_create_runs_admit_exactly_one(
    replicas: list[SqlStore], observer: AsyncEngine
) -> None:
    contenders = 10
    store = replicas[0]
    await store.create_thread(thread("thread_a"), [])
    async with Holder(observer) as holder:
        await holder.take("SELECT 1 FROM threads WHERE id = 'thread_a' FOR UPDATE")
        tasks = [
            start(replicas[n % 2].create_run(run("thread_a", f"r{n}"))) for n in range(contenders)
        ]
        await until_waiting(observer, contenders)
        await holder.release()
    results = await outcomes(tasks)

    assert results.count(True) == 1, results
    winner = f"run_r{results.index(True)}"
    busy = [r for r in results if isinstance(r, ThreadBusy)]
    assert len(busy) == contenders - 1, results
    assert {b.run_id for b in busy} == {winner}
    page = await store.list_runs("thread_a", PageQuery(limit=20))
    assert page is not None
    assert ids(page) == [winner]
    assert ids_of(await store.runs_with_status(ACTIVE_RUN_STATUSES)) == [winner]


async def test_concurrent_create_runs_on_many_threads_admit_one_each(
    replicas: list[SqlStore],
) -> None:
    """The same race left to the scheduler, on several threads at once."""
    threads, contenders = 5, 6
    for t in range(threads):
        await replicas[0].create_thread(thread(f"thread_{t}"), [])
    tasks = [
        start(replicas[(t + n) % 2].create_run(run(f"thread_{t}", f"{t}_{n}")))
        for n in range(contenders)
        for t in range(threads)
    ]
    results = await outcomes(tasks)
    assert results.count(True) == threads, results
    assert sum(isinstance(r, ThreadBusy) for r in results) == threads * (contenders - 1)
    for t in range(threads):
        page = await replicas[1].list_runs(f"thread_{t}", PageQuery(limit=20))
        assert page is not None
        assert len(page.items) == 1


async def test_messages_queued_behind_a_new_run_find_the_thread_busy(
    replicas: list[SqlStore], observer: AsyncEngine
) -> None:
    writers = 6
    store = replicas[0]
    await store.create_thread(thread("thread_a"), [message("thread_a", "first")])
    async with Holder(observer) as holder:
        await holder.take("SELECT 1 FROM threads WHERE id = 'thread_a' FOR UPDATE")
        # The run queues first, so it gets the thread first when the holder lets go.
        creating = start(replicas[1].create_run(run("thread_a", "r1")))
        await until_waiting(observer, 1)
        posts = [
            start(replicas[n % 2].create_message(message("thread_a", f"late{n}")))
            for n in range(writers)
        ]
        await until_waiting(observer, 1 + writers)
        await holder.release()
    assert await creating is True
    results = await outcomes(posts)
    assert all(isinstance(r, ThreadBusy) and r.run_id == "run_r1" for r in results), results
    assert ids_of(await store.thread_messages("thread_a")) == ["msg_first"]


async def test_reactivations_racing_a_new_run_keep_one_active(
    replicas: list[SqlStore], observer: AsyncEngine
) -> None:
    """A finished run made active again (update_run, save_progress) races a new run."""
    store = replicas[0]
    await store.create_thread(thread("thread_a"), [])
    old = run("thread_a", "old")
    assert await store.create_run(old) is True
    await store.save_progress(run=with_status(old, runs_pb2.RUN_STATUS_COMPLETED))

    def requeue(r: runs_pb2.Run) -> None:
        r.status = runs_pb2.RUN_STATUS_QUEUED

    async with Holder(observer) as holder:
        await holder.take("SELECT 1 FROM threads WHERE id = 'thread_a' FOR UPDATE")
        tasks: list[asyncio.Task[Any]] = [
            start(replicas[0].create_run(run("thread_a", "new"))),
            start(replicas[1].update_run("thread_a", "run_old", requeue)),
            start(replicas[0].save_progress(run=with_status(old, IN_PROGRESS))),
        ]
        await until_waiting(observer, len(tasks))
        await holder.release()
    created, requeued, resumed = await outcomes(tasks)
    active = ids_of(await store.runs_with_status(ACTIVE_RUN_STATUSES))
    # Whichever got the thread first decided: either the new run is the active one and both
    # reactivations were refused, or the old run is active again and the new one was refused.
    if created is True:
        assert active == ["run_new"]
        assert isinstance(requeued, ThreadBusy)
        assert isinstance(resumed, ThreadBusy)
    else:
        assert isinstance(created, ThreadBusy)
        assert active == ["run_old"]
    assert not any(
        isinstance(r, BaseException) and not isinstance(r, ThreadBusy)
        for r in (created, requeued, resumed)
    )


# Read-modify-write under concurrent transactions


async def test_concurrent_updates_of_one_row_all_apply(
    replicas: list[SqlStore], observer: AsyncEngine
) -> None:
    """Ten increments of one counter: each mutation reads what the previous one wrote."""
    updates = 10
    await replicas[0].create_assistant(assistant(1))
    seen: list[int] = []

    def increment(a: assistants_pb2.Assistant) -> None:
        n = int(a.metadata.get("n", "0"))
        seen.append(n)
        a.metadata["n"] = str(n + 1)

    async with Holder(observer) as holder:
        await holder.take("SELECT 1 FROM assistants WHERE id = 'asst_001' FOR UPDATE")
        tasks = [
            start(replicas[n % 2].update_assistant("asst_001", increment)) for n in range(updates)
        ]
        await until_waiting(observer, updates)
        await holder.release()
    await outcomes(tasks)
    stored = await replicas[1].get_assistant("asst_001")
    assert stored is not None
    assert stored.metadata["n"] == str(updates)
    assert sorted(seen) == list(range(updates))


class AlreadyCancelling(Exception):
    pass


async def test_concurrent_cancels_have_one_winner(
    replicas: list[SqlStore], observer: AsyncEngine
) -> None:
    """As the runs service cancels: only a run that is not cancelling yet can be cancelled."""
    cancels = 5
    store = replicas[0]
    await store.create_thread(thread("thread_a"), [])
    r1 = run("thread_a", "r1")
    assert await store.create_run(r1) is True
    await store.save_progress(run=with_status(r1, IN_PROGRESS))

    def cancel(r: runs_pb2.Run) -> None:
        if r.status == CANCELLING:
            raise AlreadyCancelling(r.id)
        r.status = CANCELLING

    async with Holder(observer) as holder:
        # The run's row itself, so the cancels queue both on it and on the thread.
        await holder.take("SELECT 1 FROM runs WHERE id = 'run_r1' FOR UPDATE")
        tasks = [
            start(replicas[n % 2].update_run("thread_a", "run_r1", cancel)) for n in range(cancels)
        ]
        await until_waiting(observer, cancels)
        await holder.release()
    results = await outcomes(tasks)
    winners = [r for r in results if isinstance(r, runs_pb2.Run)]
    assert len(winners) == 1, results
    assert sum(isinstance(r, AlreadyCancelling) for r in results) == cancels - 1
    assert await store.get_run("thread_a", "run_r1") == winners[0]


# Time order under concurrent transactions


async def test_messages_stored_in_another_order_than_stamped_keep_time_order(
    replicas: list[SqlStore], observer: AsyncEngine
) -> None:
    """Two posts to one thread: the one stamped later gets the thread first."""
    await replicas[0].create_thread(thread("thread_a"), [])
    later = message("thread_a", "later")
    later.created_at = T0 + 9
    earlier = message("thread_a", "earlier")
    earlier.created_at = T0 + 5
    async with Holder(observer) as holder:
        await holder.take("SELECT 1 FROM threads WHERE id = 'thread_a' FOR UPDATE")
        first = start(replicas[0].create_message(later))
        await until_waiting(observer, 1)
        second = start(replicas[1].create_message(earlier))
        await until_waiting(observer, 2)
        await holder.release()
    assert await outcomes([first, second]) == [True, True]
    assert earlier.created_at == T0 + 9
    assert await replicas[1].thread_messages("thread_a") == [later, earlier]


async def test_assistants_created_at_once_are_stored_one_by_one_in_time_order(
    replicas: list[SqlStore], observer: AsyncEngine
) -> None:
    """Assistants have no parent row: their list's row in list_locks serialises the inserts."""
    later = assistant(1)
    later.created_at = T0 + 9
    earlier = assistant(2)
    earlier.created_at = T0 + 5
    async with Holder(observer) as holder:
        await holder.take("SELECT 1 FROM list_locks WHERE name = 'assistants' FOR UPDATE")
        first = start(replicas[0].create_assistant(later))
        await until_waiting(observer, 1)
        second = start(replicas[1].create_assistant(earlier))
        await until_waiting(observer, 2)
        await holder.release()
    await outcomes([first, second])
    assert earlier.created_at == T0 + 9
    page = await replicas[1].list_assistants(PageQuery(limit=10, order="asc"))
    assert page.items == [later, earlier]


# Appends and deletes under concurrent transactions


async def test_concurrent_appends_to_one_thread_all_land(replicas: list[SqlStore]) -> None:
    writers = 30
    await replicas[0].create_thread(thread("thread_a"), [])
    results = await asyncio.gather(
        *(replicas[n % 2].create_message(message("thread_a", f"m{n:02d}")) for n in range(writers))
    )
    assert results == [True] * writers
    stored = ids_of(await replicas[1].thread_messages("thread_a"))
    assert sorted(stored) == [f"msg_m{n:02d}" for n in range(writers)]
    # Paged in small steps, the list has every message exactly once, in the same order.
    paged: list[str] = []
    after = ""
    while True:
        page = await replicas[0].list_messages(
            "thread_a", PageQuery(limit=7, order="asc", after=after)
        )
        assert page is not None
        paged += ids(page)
        if not page.has_more:
            break
        after = paged[-1]
    assert paged == stored


async def test_deleting_a_thread_while_its_run_saves_does_not_deadlock(
    replicas: list[SqlStore], observer: AsyncEngine
) -> None:
    """Both lock the thread first, so neither holds a row the other waits on."""
    store = replicas[0]
    await store.create_thread(thread("thread_a"), [message("thread_a", "m1")])
    r1 = run("thread_a", "r1")
    assert await store.create_run(r1) is True
    s1 = step(r1, "s1")
    out = message("thread_a", "out", run_id="run_r1")
    await store.save_progress(run=with_status(r1, IN_PROGRESS), steps=[s1], messages=[out])

    async with Holder(observer) as holder:
        await holder.take("SELECT 1 FROM threads WHERE id = 'thread_a' FOR UPDATE")
        # The save queues first and rewrites rows the delete would otherwise take first.
        saving = start(replicas[1].save_progress(run=r1, steps=[s1], messages=[out]))
        await until_waiting(observer, 1)
        deleting = start(replicas[0].delete_thread("thread_a"))
        await until_waiting(observer, 2)
        await holder.release()
    await saving
    assert await deleting is True
    assert await store.get_thread("thread_a") is None
    assert await store.find_run("run_r1") is None
    assert await store.run_steps("run_r1") == []


# Query plans


async def test_list_queries_use_indexes_and_never_sort(
    store: SqlStore, db: PostgresDatabase, db_url: str
) -> None:
    """Every query a list, a sweep or an append runs can walk an index in order, with no Sort.

    The tables are small, so the planner is told to avoid sequential scans (the way to ask
    PostgreSQL whether an index serves a query); sorting stays allowed, so a Sort node would
    show an ORDER BY that no index serves.
    """
    await store.create_thread(thread("thread_a"), [message("thread_a", f"m{n}") for n in range(5)])
    r1 = run("thread_a", "r1")
    assert await store.create_run(r1) is True
    await store.save_progress(run=r1, steps=[step(r1, f"s{n}") for n in range(5)])
    await store.save_progress(run=with_status(r1, runs_pb2.RUN_STATUS_COMPLETED))
    for n in range(5):
        await store.create_file(file(n, "batch"))
        await store.create_assistant(assistant(n))

    database = async_url(db_url).database
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        # Engines are listened to as a class: only this database's queries count.
        if conn.engine.url.database == database and statement.lstrip().startswith("SELECT"):
            captured.append((statement, parameters))

    event.listen(Engine, "before_cursor_execute", capture)
    try:
        for order in ("asc", "desc"):
            for after, before in (("", ""), ("msg_m2", ""), ("", "msg_m2")):
                query = PageQuery(limit=2, order=order, after=after, before=before)
                await store.list_messages("thread_a", query)
                await store.list_messages("thread_a", query, run_id="run_x")
            await store.list_files(PageQuery(limit=2, order=order, after="file-002"), "batch")
            await store.list_assistants(PageQuery(limit=2, order=order, before="asst_002"))
            await store.list_runs("thread_a", PageQuery(limit=2, order=order, after="run_r1"))
            await store.list_steps("thread_a", "run_r1", PageQuery(limit=2, order=order))
        await store.runs_with_status(ACTIVE_RUN_STATUSES, limit=5)
        await store.run_steps("run_r1")
        await store.thread_messages("thread_a")
        # Appends read the newest `created_at` of their list, and lock what they must.
        await store.create_assistant(assistant(9))
        await store.create_file(file(9, "batch"))
        assert await store.create_message(message("thread_a", "m9")) is True
        await store.save_progress(steps=[step(r1, "s9")])
        assert await store.create_run(run("thread_a", "r2"), [message("thread_a", "m10")])
    finally:
        event.remove(Engine, "before_cursor_execute", capture)

    ordered = [(s, p) for s, p in captured if "ORDER BY" in s]
    assert len(ordered) > 26, [s for s, _ in ordered]

    def explain_all(conn: Connection) -> list[tuple[str, dict[str, Any]]]:
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        plans = []
        for statement, parameters in captured:
            explain = f"EXPLAIN (FORMAT JSON) {statement}"
            raw = conn.exec_driver_sql(explain, tuple(parameters)).scalar()
            # asyncpg hands json over decoded; a text rendering would be a string.
            document = json.loads(raw) if isinstance(raw, str) else raw
            assert isinstance(document, list)
            plans.append((statement, document[0]["Plan"]))
        return plans

    # The index an ordered query should walk: the first whose marker the statement contains.
    expected_index = [
        ("FROM messages", "ix_messages_thread_id_seq"),
        # Lists of a whole table range over one project's rows (migration 0012).
        ("files.purpose =", "ix_files_project_id_purpose_seq"),
        ("FROM files", "ix_files_project_id_seq"),
        ("FROM assistants", "ix_assistants_project_id_seq"),
        ("FROM run_steps", "ix_run_steps_run_id_seq"),
        ("runs.thread_id =", "ix_runs_thread_id_seq"),
        ("runs.status =", "ix_runs_status_seq"),
    ]
    seen: set[str] = set()
    # In a write transaction: some of the statements lock rows (EXPLAIN runs none of them).
    for statement, plan in await db.write(explain_all):
        nodes = list(plan_nodes(plan))
        types = [node["Node Type"] for node in nodes]
        assert not any("Sort" in t or t == "Seq Scan" for t in types), (statement, types)
        if "ORDER BY" not in statement:
            continue
        indexes = {node.get("Index Name") for node in nodes}
        index = next(name for marker, name in expected_index if marker in statement)
        assert index in indexes, (statement, types, indexes)
        seen.add(index)
    assert seen == {name for _, name in expected_index}


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)
