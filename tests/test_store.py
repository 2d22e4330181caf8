"""The storage layer on a real database: objects, keyset paging, transactions, migrations,
and the blob directory.

A SQLite file; in the PostgreSQL pass (`COMPAT_TEST_POSTGRES_URL`, see `harness.server`) a
fresh PostgreSQL database for each test. The few tests of SQLite's own mechanics skip there;
`test_store_postgres.py` has PostgreSQL's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from harness.server import postgres_admin_url
from sqlalchemy import Connection, event, func, insert, inspect, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.pool import Pool

from compat_core.store import (
    BlobStore,
    BlobTooLarge,
    CursorNotFound,
    Database,
    Page,
    PageQuery,
    PostgresDatabase,
    SqlStore,
    TransactionRunner,
    create_store,
    open_database,
    schema,
)
from compat_core.store.base import Order
from compat_core.store.migrate import ALEMBIC_LOCK, alembic_config
from compat_core.store.sql_store import FEW_MESSAGES
from compat_core.tenancy import DEFAULT_PROJECT
from compat_core.v1 import assistants_pb2, files_pb2, messages_pb2, runs_pb2, threads_pb2

ListFn = Callable[[PageQuery], Awaitable[Page[Any]]]

T0 = 1_700_000_000


class Boom(Exception):
    pass


# Objects


def assistant(n: int) -> assistants_pb2.Assistant:
    return assistants_pb2.Assistant(
        id=f"asst_{n:03d}", created_at=T0 + n, model="gpt-4o", name=f"assistant {n}"
    )


def thread(thread_id: str) -> threads_pb2.Thread:
    return threads_pb2.Thread(id=thread_id, created_at=T0, metadata={"k": "v"})


def message(thread_id: str, name: str, run_id: str = "") -> messages_pb2.Message:
    msg = messages_pb2.Message(
        id=f"msg_{name}",
        created_at=T0,
        thread_id=thread_id,
        status=messages_pb2.MESSAGE_STATUS_COMPLETED,
        role=messages_pb2.MESSAGE_ROLE_USER,
        content=[
            messages_pb2.MessageContent(text=messages_pb2.TextContent(value=f"text of {name}"))
        ],
    )
    if run_id:
        msg.run_id = run_id
    return msg


def file(n: int, purpose: str) -> files_pb2.File:
    return files_pb2.File(
        id=f"file-{n:03d}",
        bytes=n,
        created_at=T0 + n,
        filename=f"f{n}.txt",
        purpose=purpose,
        status=files_pb2.FILE_STATUS_PROCESSED,
    )


def ids(page: Page[Any]) -> list[str]:
    return [item.id for item in page.items]


# Fixtures

ON_POSTGRES = postgres_admin_url() is not None
# The newest migration.
HEAD = "0015"
sqlite_only = pytest.mark.skipif(
    ON_POSTGRES,
    reason="SQLite's own mechanics (WAL, its query plans); test_store_postgres.py has PostgreSQL's",
)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


# The fixtures `db_path`, `db_url`, `db` and `store` live in `store_fixtures.py`.


async def count(db: TransactionRunner, table: Any, *where: Any) -> int:
    def run(conn: Connection) -> int:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())

    return await db.read(run)


async def current_revision(url: str) -> str | None:
    db = open_database(url)
    try:
        return await db.read(lambda conn: MigrationContext.configure(conn).get_current_revision())
    finally:
        await db.close()


def alembic(conn: Connection, action: Callable[..., None], revision: str) -> None:
    """Run an Alembic command (`command.upgrade`, say) inside the transaction on `conn`."""
    with ALEMBIC_LOCK:
        action(alembic_config(conn), revision)


# Create / get / update / delete


async def test_assistant_lifecycle(store: SqlStore) -> None:
    created = assistant(1)
    await store.create_assistant(created)
    assert await store.get_assistant("asst_001") == created
    assert await store.get_assistant("asst_nope") is None

    def rename(a: assistants_pb2.Assistant) -> None:
        a.name = "renamed"
        a.metadata["x"] = "y"

    updated = await store.update_assistant("asst_001", rename)
    assert updated is not None
    assert updated.name == "renamed"
    assert await store.get_assistant("asst_001") == updated

    called: list[str] = []
    assert await store.update_assistant("asst_nope", lambda a: called.append(a.id)) is None
    assert called == []

    assert await store.delete_assistant("asst_001") is True
    assert await store.get_assistant("asst_001") is None
    assert await store.delete_assistant("asst_001") is False


async def test_thread_lifecycle(store: SqlStore) -> None:
    await store.create_thread(thread("thread_a"), [])
    assert await store.get_thread("thread_a") == thread("thread_a")
    assert await store.get_thread("thread_b") is None

    updated = await store.update_thread("thread_a", lambda t: t.metadata.update({"k": "w"}))
    assert updated is not None
    assert dict(updated.metadata) == {"k": "w"}
    stored = await store.get_thread("thread_a")
    assert stored is not None
    assert dict(stored.metadata) == {"k": "w"}
    assert await store.update_thread("thread_b", lambda t: None) is None

    assert await store.delete_thread("thread_a") is True
    assert await store.get_thread("thread_a") is None
    assert await store.delete_thread("thread_a") is False


async def test_message_lifecycle(store: SqlStore) -> None:
    await store.create_thread(thread("thread_a"), [])
    created = message("thread_a", "m1")
    assert await store.create_message(created) is True
    assert await store.get_message("thread_a", "msg_m1") == created

    def tag(m: messages_pb2.Message) -> None:
        m.metadata["tag"] = "1"

    updated = await store.update_message("thread_a", "msg_m1", tag)
    assert updated is not None
    assert dict(updated.metadata) == {"tag": "1"}
    assert await store.get_message("thread_a", "msg_m1") == updated
    assert await store.update_message("thread_a", "msg_nope", tag) is None

    assert await store.delete_message("thread_a", "msg_m1") is True
    assert await store.get_message("thread_a", "msg_m1") is None
    assert await store.delete_message("thread_a", "msg_m1") is False


async def test_create_message_needs_its_thread(store: SqlStore) -> None:
    assert await store.create_message(message("thread_nope", "m1")) is False
    await store.create_thread(thread("thread_a"), [])
    page = await store.list_messages("thread_a", PageQuery(limit=10))
    assert page is not None
    assert page.items == []


async def test_file_lifecycle(store: SqlStore) -> None:
    created = file(1, "assistants")
    await store.create_file(created)
    assert await store.get_file("file-001") == created
    assert await store.get_file("file-002") is None
    assert await store.delete_file("file-001") is True
    assert await store.get_file("file-001") is None
    assert await store.delete_file("file-001") is False


async def test_duplicate_id_is_rejected(store: SqlStore) -> None:
    await store.create_assistant(assistant(1))
    with pytest.raises(IntegrityError):
        await store.create_assistant(assistant(1))


# Transactions


@pytest.mark.parametrize("count", [0, 1, FEW_MESSAGES, FEW_MESSAGES + 1, 3 * FEW_MESSAGES])
async def test_thread_messages_are_all_of_them_in_order_however_many(
    store: SqlStore, count: int
) -> None:
    # Up to FEW_MESSAGES are read in one bounded read, more again whole: the same answer.
    names = [f"m{n:03d}" for n in reversed(range(count))]
    await store.create_thread(thread("thread_a"), [message("thread_a", n) for n in names])
    await store.create_thread(thread("thread_b"), [message("thread_b", "other")])
    stored = await store.thread_messages("thread_a")
    assert [m.id for m in stored] == [f"msg_{n}" for n in names]
    assert await store.thread_messages("thread_nope") == []


async def test_create_thread_inserts_messages_in_list_order(store: SqlStore) -> None:
    # IDs sorted against the list order: the page order must come from insertion.
    names = ["z", "m", "a", "q"]
    await store.create_thread(thread("thread_a"), [message("thread_a", n) for n in names])
    page = await store.list_messages("thread_a", PageQuery(limit=10, order="asc"))
    assert page is not None
    assert ids(page) == ["msg_z", "msg_m", "msg_a", "msg_q"]
    assert page.has_more is False


async def test_create_thread_is_one_transaction(store: SqlStore, db: TransactionRunner) -> None:
    duplicate = [message("thread_a", "m1"), message("thread_a", "m1")]
    with pytest.raises(IntegrityError):
        await store.create_thread(thread("thread_a"), duplicate)
    assert await store.get_thread("thread_a") is None
    assert await count(db, schema.messages) == 0

    with pytest.raises(ValueError, match="names thread"):
        await store.create_thread(thread("thread_a"), [message("thread_other", "m2")])
    assert await store.get_thread("thread_a") is None


async def test_mutate_raising_rolls_back(store: SqlStore) -> None:
    await store.create_assistant(assistant(1))
    await store.create_thread(thread("thread_a"), [message("thread_a", "m1")])
    error = Boom("no")

    def rename_then_fail(a: assistants_pb2.Assistant) -> None:
        a.name = "changed"
        raise error

    with pytest.raises(Boom) as raised:
        await store.update_assistant("asst_001", rename_then_fail)
    assert raised.value is error
    assert await store.get_assistant("asst_001") == assistant(1)

    def tag_then_fail(m: messages_pb2.Message) -> None:
        m.metadata["x"] = "y"
        raise error

    with pytest.raises(Boom):
        await store.update_message("thread_a", "msg_m1", tag_then_fail)
    assert await store.get_message("thread_a", "msg_m1") == message("thread_a", "m1")

    def retag_then_fail(t: threads_pb2.Thread) -> None:
        t.metadata["k"] = "changed"
        raise error

    with pytest.raises(Boom):
        await store.update_thread("thread_a", retag_then_fail)
    assert await store.get_thread("thread_a") == thread("thread_a")


async def test_mutate_cannot_change_identity(store: SqlStore) -> None:
    await store.create_thread(thread("thread_a"), [message("thread_a", "m1")])
    await store.create_thread(thread("thread_b"), [])

    def move(m: messages_pb2.Message) -> None:
        m.thread_id = "thread_b"

    with pytest.raises(ValueError, match="thread_id"):
        await store.update_message("thread_a", "msg_m1", move)
    assert await store.get_message("thread_a", "msg_m1") == message("thread_a", "m1")

    def rename(t: threads_pb2.Thread) -> None:
        t.id = "thread_c"

    with pytest.raises(ValueError, match="id"):
        await store.update_thread("thread_a", rename)
    assert await store.get_thread("thread_c") is None


def stamped(obj: Any, created_at: int) -> Any:
    obj.created_at = created_at
    return obj


async def test_created_at_never_runs_back_along_a_list(store: SqlStore) -> None:
    """An object stamped before the newest of its list gets the newest's time, in place, so
    that what the caller returns is what is stored (objects reach the store in another order
    than they were stamped when writers run side by side, or replicas' clocks differ)."""
    await store.create_assistant(stamped(assistant(1), T0 + 100))
    early = stamped(assistant(2), T0 + 50)
    await store.create_assistant(early)
    assert early.created_at == T0 + 100
    assert await store.get_assistant("asst_002") == early
    later = stamped(assistant(3), T0 + 200)
    await store.create_assistant(later)
    assert later.created_at == T0 + 200
    page = await store.list_assistants(PageQuery(limit=10, order="asc"))
    assert [a.created_at for a in page.items] == [T0 + 100, T0 + 100, T0 + 200]

    await store.create_file(stamped(file(1, "batch"), T0 + 100))
    early_file = stamped(file(2, "assistants"), T0 + 1)
    await store.create_file(early_file)
    assert early_file.created_at == T0 + 100
    assert await store.get_file("file-002") == early_file

    # A thread's messages: those it is created with, then those appended.
    first = [stamped(message("thread_a", "m1"), T0 + 30), stamped(message("thread_a", "m2"), T0)]
    await store.create_thread(thread("thread_a"), first)
    appended = stamped(message("thread_a", "m3"), T0 + 10)
    assert await store.create_message(appended) is True
    assert [m.created_at for m in first] + [appended.created_at] == [T0 + 30] * 3
    assert await store.thread_messages("thread_a") == [*first, appended]
    # Each list has its own newest: another thread's messages keep their times.
    other = stamped(message("thread_b", "b1"), T0 + 1)
    await store.create_thread(thread("thread_b"), [other])
    assert other.created_at == T0 + 1


async def test_concurrent_writes_all_land(store: SqlStore) -> None:
    await store.create_thread(thread("thread_a"), [])
    results = await asyncio.gather(
        *(store.create_message(message("thread_a", f"m{i:02d}")) for i in range(30))
    )
    assert results == [True] * 30
    page = await store.list_messages("thread_a", PageQuery(limit=100))
    assert page is not None
    assert sorted(ids(page)) == [f"msg_m{i:02d}" for i in range(30)]


async def test_close_lets_submitted_writes_finish(db_url: str) -> None:
    first = SqlStore(open_database(db_url))
    await first.open()
    # gather starts the write (it reaches the writer's queue) before close begins.
    await asyncio.gather(first.create_assistant(assistant(1)), first.close())
    with pytest.raises(RuntimeError):
        await first.create_assistant(assistant(2))
    await first.close()  # idempotent

    second = SqlStore(open_database(db_url))
    await second.open()
    try:
        assert await second.get_assistant("asst_001") == assistant(1)
    finally:
        await second.close()


# Paging


def pages_of(all_ids: list[str], order: Order, limit: int) -> list[tuple[list[str], bool]]:
    ordered = all_ids if order == "asc" else all_ids[::-1]
    chunks = [ordered[i : i + limit] for i in range(0, len(ordered), limit)]
    return [(chunk, i < len(chunks) - 1) for i, chunk in enumerate(chunks)]


async def walk_after(list_fn: ListFn, order: Order, limit: int) -> list[tuple[list[str], bool]]:
    pages: list[tuple[list[str], bool]] = []
    after = ""
    while len(pages) < 100:
        page = await list_fn(PageQuery(limit=limit, order=order, after=after))
        pages.append((ids(page), page.has_more))
        if not page.has_more:
            break
        after = ids(page)[-1]
    return pages


async def walk_before(
    list_fn: ListFn, order: Order, limit: int, before: str
) -> list[tuple[list[str], bool]]:
    pages: list[tuple[list[str], bool]] = []
    while len(pages) < 100:
        page = await list_fn(PageQuery(limit=limit, order=order, before=before))
        pages.append((ids(page), page.has_more))
        if not page.has_more:
            break
        before = ids(page)[0]
    return pages


def assert_walks(
    forward: list[tuple[list[str], bool]],
    backward: list[tuple[list[str], bool]],
    expected: list[tuple[list[str], bool]],
) -> None:
    assert forward == expected
    # Walking back from the last page visits every earlier page, nearest first; only the very
    # first page of the list has nothing before it.
    assert backward == [
        (chunk, i > 0) for i, (chunk, _) in reversed(list(enumerate(expected[:-1])))
    ]


@pytest.mark.parametrize("order", ["desc", "asc"])
@pytest.mark.parametrize("limit", [10, 9])
async def test_assistants_walk_both_ways(store: SqlStore, order: Order, limit: int) -> None:
    for n in range(45):
        await store.create_assistant(assistant(n))
    all_ids = [f"asst_{n:03d}" for n in range(45)]

    forward = await walk_after(store.list_assistants, order, limit)
    backward = await walk_before(store.list_assistants, order, limit, forward[-1][0][0])
    assert_walks(forward, backward, pages_of(all_ids, order, limit))


async def test_assistant_pages_exactly(store: SqlStore) -> None:
    for n in range(45):
        await store.create_assistant(assistant(n))
    pages = await walk_after(store.list_assistants, "desc", 10)
    assert [len(p) for p, _ in pages] == [10, 10, 10, 10, 5]
    assert [more for _, more in pages] == [True, True, True, True, False]
    assert pages[0][0][0] == "asst_044"
    assert pages[-1][0] == ["asst_004", "asst_003", "asst_002", "asst_001", "asst_000"]

    # Before the oldest (desc): the ten just newer than it, newest first, more beyond them.
    page = await store.list_assistants(PageQuery(limit=10, before="asst_000"))
    assert ids(page) == [f"asst_{n:03d}" for n in range(10, 0, -1)]
    assert page.has_more is True
    # Before the newest there is nothing.
    page = await store.list_assistants(PageQuery(limit=10, before="asst_044"))
    assert (ids(page), page.has_more) == ([], False)
    # After the oldest (desc) there is nothing either.
    page = await store.list_assistants(PageQuery(limit=10, after="asst_000"))
    assert (ids(page), page.has_more) == ([], False)


async def test_after_and_before_together(store: SqlStore) -> None:
    for n in range(30):
        await store.create_assistant(assistant(n))
    query = PageQuery(limit=5, order="asc", after="asst_010", before="asst_020")
    page = await store.list_assistants(query)
    assert ids(page) == [f"asst_{n:03d}" for n in range(15, 20)]
    assert page.has_more is True  # 11..14 lie between `after` and the page

    page = await store.list_assistants(
        PageQuery(limit=20, order="asc", after="asst_010", before="asst_020")
    )
    assert ids(page) == [f"asst_{n:03d}" for n in range(11, 20)]
    assert page.has_more is False

    page = await store.list_assistants(
        PageQuery(limit=5, order="desc", after="asst_020", before="asst_010")
    )
    assert ids(page) == [f"asst_{n:03d}" for n in range(15, 10, -1)]
    assert page.has_more is True


async def test_empty_list(store: SqlStore) -> None:
    page = await store.list_assistants(PageQuery(limit=10))
    assert (page.items, page.has_more) == ([], False)


async def test_deleted_objects_leave_paging_intact(store: SqlStore) -> None:
    for n in range(6):
        await store.create_assistant(assistant(n))
    assert await store.delete_assistant("asst_005") is True
    await store.create_assistant(assistant(6))
    page = await store.list_assistants(PageQuery(limit=10, order="asc", after="asst_004"))
    assert ids(page) == ["asst_006"]


async def test_unknown_cursor(store: SqlStore) -> None:
    await store.create_assistant(assistant(1))
    with pytest.raises(CursorNotFound) as raised:
        await store.list_assistants(PageQuery(limit=10, after="asst_nope"))
    assert (raised.value.param, raised.value.object_id) == ("after", "asst_nope")
    with pytest.raises(CursorNotFound) as raised:
        await store.list_assistants(PageQuery(limit=10, before="asst_gone"))
    assert (raised.value.param, raised.value.object_id) == ("before", "asst_gone")
    with pytest.raises(CursorNotFound):
        await store.list_files(PageQuery(limit=10, after="file-nope"))


async def test_messages_are_isolated_per_thread(store: SqlStore) -> None:
    await store.create_thread(thread("thread_a"), [])
    await store.create_thread(thread("thread_b"), [])
    for n in range(25):
        # Interleaved, so each thread's seqs have gaps.
        await store.create_message(message("thread_a", f"a{n:02d}"))
        await store.create_message(message("thread_b", f"b{n:02d}"))
    a_ids = [f"msg_a{n:02d}" for n in range(25)]

    async def list_a(query: PageQuery) -> Page[messages_pb2.Message]:
        page = await store.list_messages("thread_a", query)
        assert page is not None
        return page

    for order in ("desc", "asc"):
        forward = await walk_after(list_a, order, 10)
        backward = await walk_before(list_a, order, 10, forward[-1][0][0])
        assert_walks(forward, backward, pages_of(a_ids, order, 10))

    # Another thread's message is no cursor, no member, and not reachable through this one.
    for query in (PageQuery(limit=5, after="msg_b03"), PageQuery(limit=5, before="msg_b03")):
        with pytest.raises(CursorNotFound):
            await store.list_messages("thread_a", query)
    assert await store.get_message("thread_a", "msg_b03") is None
    assert await store.update_message("thread_a", "msg_b03", lambda m: m.metadata.clear()) is None
    assert await store.delete_message("thread_a", "msg_b03") is False
    assert await store.get_message("thread_b", "msg_b03") == message("thread_b", "b03")


async def test_a_page_is_the_data_of_a_list_response_as_stored(store: SqlStore) -> None:
    # Bodies whose lengths take one, two and three bytes as varints: the wire form of `data`
    # must frame each as protobuf does, in the page's order, whichever way it was read.
    await store.create_thread(thread("thread_w"), [])
    sizes = {"short": 0, "two": 200, "three": 20_000, "again": 0, "last": 150}
    stored = []
    for name, extra in sizes.items():
        msg = message("thread_w", name)
        msg.content[0].text.value += "x" * extra
        stored.append(msg)
        await store.create_message(msg)
    for query in (
        PageQuery(limit=5),
        PageQuery(limit=5, order="asc"),
        PageQuery(limit=2, order="asc", after="msg_short"),
        PageQuery(limit=3, before="msg_two"),
        PageQuery(limit=3, order="asc", before="msg_last"),
    ):
        page = await store.list_messages("thread_w", query)
        assert page is not None
        response = messages_pb2.ListMessagesResponse.FromString(page.wire())
        assert list(response.data) == page.items, query
        assert len(response.data) == len(page.bodies) > 0
    everything = await store.list_messages("thread_w", PageQuery(limit=5, order="asc"))
    assert everything is not None
    assert everything.items == stored
    empty = await store.list_messages("thread_w", PageQuery(limit=5, after="msg_last", order="asc"))
    assert empty is not None
    assert empty.wire() == b""
    assert empty.items == []


async def test_list_messages_of_unknown_thread(store: SqlStore) -> None:
    assert await store.list_messages("thread_nope", PageQuery(limit=10)) is None
    # Unknown thread wins over an unknown cursor.
    assert await store.list_messages("thread_nope", PageQuery(limit=10, after="msg_x")) is None


async def test_run_id_filter(store: SqlStore) -> None:
    names = [f"m{n:02d}" for n in range(12)]
    msgs = [
        message("thread_a", name, run_id="run_x" if n % 3 == 0 else "")
        for n, name in enumerate(names)
    ]
    await store.create_thread(thread("thread_a"), msgs)
    await store.create_thread(thread("thread_b"), [message("thread_b", "other", run_id="run_x")])

    page = await store.list_messages("thread_a", PageQuery(limit=10, order="asc"), run_id="run_x")
    assert page is not None
    assert ids(page) == ["msg_m00", "msg_m03", "msg_m06", "msg_m09"]
    assert page.has_more is False

    page = await store.list_messages("thread_a", PageQuery(limit=2), run_id="run_x")
    assert page is not None
    assert (ids(page), page.has_more) == (["msg_m09", "msg_m06"], True)

    # The cursor need not match the filter: it marks a position in the thread.
    page = await store.list_messages(
        "thread_a", PageQuery(limit=2, after="msg_m07"), run_id="run_x"
    )
    assert page is not None
    assert (ids(page), page.has_more) == (["msg_m06", "msg_m03"], True)
    page = await store.list_messages(
        "thread_a", PageQuery(limit=2, before="msg_m02"), run_id="run_x"
    )
    assert page is not None
    assert (ids(page), page.has_more) == (["msg_m06", "msg_m03"], True)

    page = await store.list_messages("thread_a", PageQuery(limit=10), run_id="run_none")
    assert page is not None
    assert (page.items, page.has_more) == ([], False)

    page = await store.list_messages("thread_a", PageQuery(limit=20))
    assert page is not None
    assert len(page.items) == 12


async def test_files_purpose_filter(store: SqlStore) -> None:
    for n in range(20):
        await store.create_file(file(n, "assistants" if n % 2 else "batch"))
    batch_ids = [f"file-{n:03d}" for n in range(0, 20, 2)]

    async def list_batch(query: PageQuery) -> Page[files_pb2.File]:
        return await store.list_files(query, purpose="batch")

    forward = await walk_after(list_batch, "asc", 3)
    backward = await walk_before(list_batch, "asc", 3, forward[-1][0][0])
    assert_walks(forward, backward, pages_of(batch_ids, "asc", 3))

    # A file of another purpose still marks a position in the list of files.
    page = await store.list_files(PageQuery(limit=2, order="asc", after="file-011"), "batch")
    assert (ids(page), page.has_more) == (["file-012", "file-014"], True)

    everything = await store.list_files(PageQuery(limit=100))
    assert ids(everything) == [f"file-{n:03d}" for n in range(19, -1, -1)]


# Cascade and integrity


async def insert_run(db: TransactionRunner, thread_id: str, run_id: str, steps: int) -> None:
    def run(conn: Connection) -> None:
        body = runs_pb2.Run(id=run_id, thread_id=thread_id, created_at=T0).SerializeToString()
        conn.execute(
            insert(schema.runs).values(
                id=run_id,
                project_id=DEFAULT_PROJECT,
                thread_id=thread_id,
                status=1,
                created_at=T0,
                body=body,
            )
        )
        for n in range(steps):
            step = runs_pb2.RunStep(id=f"step_{run_id}_{n}", run_id=run_id, thread_id=thread_id)
            conn.execute(
                insert(schema.run_steps).values(
                    id=step.id,
                    project_id=DEFAULT_PROJECT,
                    run_id=run_id,
                    thread_id=thread_id,
                    created_at=T0,
                    body=step.SerializeToString(),
                )
            )

    await db.write(run)


async def test_delete_thread_cascades(store: SqlStore, db: TransactionRunner) -> None:
    for name in ("a", "b"):
        thread_id = f"thread_{name}"
        await store.create_thread(
            thread(thread_id), [message(thread_id, f"{name}{n}") for n in range(3)]
        )
        await insert_run(db, thread_id, f"run_{name}1", steps=2)
        await insert_run(db, thread_id, f"run_{name}2", steps=1)

    assert await store.delete_thread("thread_a") is True

    m, r, s = schema.messages, schema.runs, schema.run_steps
    assert await count(db, m, m.c.thread_id == "thread_a") == 0
    assert await count(db, r, r.c.thread_id == "thread_a") == 0
    assert await count(db, s, s.c.thread_id == "thread_a") == 0
    assert await count(db, m, m.c.thread_id == "thread_b") == 3
    assert await count(db, r, r.c.thread_id == "thread_b") == 2
    assert await count(db, s, s.c.thread_id == "thread_b") == 3
    assert await store.get_thread("thread_b") == thread("thread_b")
    assert await store.delete_thread("thread_a") is False


async def test_foreign_keys_are_enforced(store: SqlStore, db: TransactionRunner) -> None:
    with pytest.raises(IntegrityError):
        await insert_run(db, "thread_nope", "run_1", steps=0)


async def test_readers_cannot_write(store: SqlStore, db: TransactionRunner) -> None:
    def write(conn: Connection) -> None:
        conn.execute(
            insert(schema.threads).values(
                id="thread_x", project_id=DEFAULT_PROJECT, created_at=0, body=b""
            )
        )

    # SQLite's readers are query_only connections; PostgreSQL's run READ ONLY transactions.
    with pytest.raises(DBAPIError, match=r"readonly|read-only"):
        await db.read(write)
    assert await store.get_thread("thread_x") is None


@sqlite_only
async def test_database_is_in_wal_mode(store: SqlStore, db: TransactionRunner) -> None:
    mode = await db.read(lambda conn: conn.exec_driver_sql("PRAGMA journal_mode").scalar())
    assert mode == "wal"


# Paging cost


@contextlib.asynccontextmanager
async def sqlite_traced(db_url: str, db_path: Path) -> AsyncIterator[tuple[SqlStore, list[str]]]:
    """A second store on the database, and every statement SQLite runs on its connections
    (values filled in).

    Traced on the driver's connections, since the store sends hot statements past
    SQLAlchemy; the new store's threads open theirs at their first transaction. Pools are
    listened to as a class: only connections to this file count, not those of other servers
    of the test session.
    """
    captured: list[str] = []

    def trace(dbapi_connection: Any, _record: Any) -> None:
        files = [row[2] for row in dbapi_connection.execute("PRAGMA database_list")]
        if str(db_path) in files:
            dbapi_connection.set_trace_callback(captured.append)

    event.listen(Pool, "connect", trace)
    traced = SqlStore(open_database(db_url))
    try:
        yield traced, captured
    finally:
        event.remove(Pool, "connect", trace)
        await traced.close()


@sqlite_only
async def test_list_queries_use_indexes_and_never_sort(
    store: SqlStore, db_url: str, db_path: Path
) -> None:
    await store.create_thread(thread("thread_a"), [message("thread_a", f"m{n}") for n in range(5)])
    for n in range(5):
        await store.create_file(file(n, "batch"))
        await store.create_assistant(assistant(n))

    async with sqlite_traced(db_url, db_path) as (traced, captured):
        for order in ("asc", "desc"):
            for after, before in (("", ""), ("msg_m2", ""), ("", "msg_m2")):
                query = PageQuery(limit=2, order=order, after=after, before=before)
                await traced.list_messages("thread_a", query)
                await traced.list_messages("thread_a", query, run_id="run_x")
            await traced.list_files(PageQuery(limit=2, order=order, after="file-002"), "batch")
            await traced.list_assistants(PageQuery(limit=2, order=order, before="asst_002"))
    paged = [sql for sql in captured if "ORDER BY" in sql]

    assert len(paged) == 16
    conn = sqlite3.connect(db_path)
    try:
        for statement in paged:
            plan = " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {statement}"))
            assert "TEMP B-TREE" not in plan, (statement, plan)
            if "FROM messages" in statement:
                assert "USING INDEX ix_messages_thread_id_seq" in plan, plan
            elif "FROM files" in statement:
                # Lists of a whole table range over one project's rows (migration 0012).
                assert "USING INDEX ix_files_project_id_purpose_seq" in plan, plan
            else:
                assert "USING INDEX ix_assistants_project_id_seq" in plan, plan
    finally:
        conn.close()


# Migrations


async def test_reopening_keeps_data_and_open_is_idempotent(db_url: str) -> None:
    first = SqlStore(open_database(db_url))
    await first.open()
    await first.open()
    await first.create_thread(thread("thread_a"), [message("thread_a", "m1")])
    await first.close()

    second = SqlStore(open_database(db_url))
    await second.open()
    try:
        assert await second.get_thread("thread_a") == thread("thread_a")
        assert await second.get_message("thread_a", "msg_m1") == message("thread_a", "m1")
    finally:
        await second.close()
    assert await current_revision(db_url) == HEAD


async def test_concurrent_migrations_in_one_process(db_url: str) -> None:
    databases = [open_database(db_url) for _ in range(3)]
    try:
        await asyncio.gather(*(d.run_migrations() for d in databases))
    finally:
        for d in databases:
            await d.close()
    assert await current_revision(db_url) == HEAD


async def test_concurrent_migrations_across_processes(db_url: str) -> None:
    code = (
        "import asyncio, sys; from compat_core.store import open_database; "
        "asyncio.run(open_database(sys.argv[1]).run_migrations())"
    )
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            code,
            db_url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(4)
    ]
    results = [await process.communicate() for process in processes]
    codes = [process.returncode for process in processes]
    assert codes == [0] * 4, [err.decode() for _, err in results]
    assert await current_revision(db_url) == HEAD


async def test_migrations_match_the_schema_module(db: TransactionRunner) -> None:
    await db.run_migrations()
    differences = await db.read(
        lambda conn: compare_metadata(
            MigrationContext.configure(conn, opts={"include_name": schema.described}),
            schema.metadata,
        )
    )
    assert differences == []


async def test_downgrade_and_upgrade_again(db: TransactionRunner, db_url: str) -> None:
    await db.run_migrations()

    def down_and_up(conn: Connection) -> tuple[set[str], set[str]]:
        alembic(conn, command.downgrade, "base")
        emptied = set(inspect(conn).get_table_names())
        alembic(conn, command.upgrade, "head")
        return emptied, set(inspect(conn).get_table_names())

    emptied, tables = await db.write(down_and_up)
    assert emptied == {"alembic_version"}
    assert tables >= {"assistants", "threads", "messages", "runs", "run_steps", "files"}
    assert await current_revision(db_url) == HEAD


# Construction


async def test_create_store(tmp_path: Path) -> None:
    store = create_store(sqlite_url(tmp_path / "x.db"))
    assert isinstance(store, SqlStore)
    await store.close()
    # Nothing connects before open(): these hosts need not exist.
    for url in ("postgresql://user:secret@host/db", "postgresql+asyncpg://user:secret@host/db"):
        database = open_database(url)
        assert isinstance(database, PostgresDatabase)
        assert database.url.drivername == "postgresql+asyncpg"
        store = create_store(url)
        assert isinstance(store, SqlStore)
        await store.close()
    for url in ("postgresql+psycopg2://user:secret@host/db", "mysql://user:secret@host/db"):
        with pytest.raises(ValueError, match="postgresql://") as raised:
            create_store(url)
        assert "secret" not in str(raised.value)


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "postgresql://h/db"])
def test_database_needs_a_sqlite_file(url: str) -> None:
    with pytest.raises(ValueError, match="sqlite"):
        Database(url)


# Blobs


async def chunks_of(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def listing(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


async def read_all(blobs: BlobStore, blob_id: str, chunk_size: int) -> list[bytes]:
    return [chunk async for chunk in blobs.read(blob_id, chunk_size)]


async def test_blob_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "not" / "yet"
    blobs = BlobStore(root)
    parts = [os.urandom(100_000), b"x", b"", os.urandom(300_001)]
    data = b"".join(parts)
    assert await blobs.write("file-abc_1", chunks_of(*parts), max_bytes=len(data)) == len(data)
    assert listing(root) == ["file-abc_1"]

    chunks = await read_all(blobs, "file-abc_1", 65_536)
    assert b"".join(chunks) == data
    assert all(len(chunk) <= 65_536 for chunk in chunks)
    assert len(chunks) == -(-len(data) // 65_536)

    await blobs.delete("file-abc_1")
    assert listing(root) == []
    await blobs.delete("file-abc_1")  # missing is fine


async def test_blob_too_large_leaves_nothing(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    with pytest.raises(BlobTooLarge) as raised:
        await blobs.write("big", chunks_of(b"a" * 600, b"b" * 600), max_bytes=1000)
    assert raised.value.max_bytes == 1000
    assert listing(tmp_path) == []
    assert await blobs.write("exact", chunks_of(b"a" * 600, b"b" * 400), max_bytes=1000) == 1000
    assert listing(tmp_path) == ["exact"]


async def test_blob_opens_as_a_seekable_file_closed_after_use(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    data = os.urandom(300_000)
    await blobs.write("f", chunks_of(data), max_bytes=len(data))
    async with blobs.open("f") as file:
        assert file.seek(-10, os.SEEK_END) == len(data) - 10
        assert file.read() == data[-10:]
        file.seek(0)
        assert file.read(5) == data[:5]
    assert file.closed
    with pytest.raises(FileNotFoundError):
        async with blobs.open("missing"):
            pass
    with pytest.raises(ValueError, match="not a safe file name"):
        async with blobs.open("../f"):
            pass


async def test_blob_source_error_leaves_nothing(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    error = Boom("upload broke")

    async def failing() -> AsyncIterator[bytes]:
        yield b"some bytes"
        raise error

    with pytest.raises(Boom) as raised:
        await blobs.write("f", failing(), max_bytes=1 << 20)
    assert raised.value is error
    assert listing(tmp_path) == []


async def test_blob_cancelled_write_leaves_nothing(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    first_chunk_written = asyncio.Event()

    async def stalled() -> AsyncIterator[bytes]:
        yield b"first"
        # Asked for the next chunk: the first one is in the temporary file.
        first_chunk_written.set()
        await asyncio.Event().wait()
        yield b"never"

    task = asyncio.create_task(blobs.write("f", stalled(), max_bytes=1 << 20))
    await first_chunk_written.wait()
    (temporary,) = listing(tmp_path)
    assert temporary.startswith(".f.")
    assert temporary.endswith(".tmp")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert listing(tmp_path) == []


async def test_blob_read_missing(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    reader = blobs.read("file-missing")  # nothing happens until iteration starts
    with pytest.raises(FileNotFoundError):
        await anext(reader)


@pytest.mark.parametrize(
    "blob_id", ["", "..", "../escape", "a/b", "a\\b", ".hidden", "name.txt", "a\x00b", "x" * 129]
)
async def test_blob_ids_must_be_safe_names(tmp_path: Path, blob_id: str) -> None:
    root = tmp_path / "blobs"
    blobs = BlobStore(root)
    with pytest.raises(ValueError, match="safe"):
        await blobs.write(blob_id, chunks_of(b"data"), max_bytes=100)
    with pytest.raises(ValueError, match="safe"):
        await read_all(blobs, blob_id, 10)
    with pytest.raises(ValueError, match="safe"):
        await blobs.delete(blob_id)
    assert listing(tmp_path) == []  # not even the root was created
