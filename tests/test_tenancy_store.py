"""Projects in the store: the scope applied to every kind of read and write, existing data
migrated into the default project, and API keys (hashed, cached, revoked, last used).

Run on SQLite, and on PostgreSQL with `COMPAT_TEST_POSTGRES_URL` set (the fixtures decide).
"""

from __future__ import annotations

import asyncio
import contextvars
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from harness.server import postgres_admin_url
from sqlalchemy import Connection
from test_store import sqlite_only, sqlite_traced

from compat_core import keyring, tenancy
from compat_core.keyring import MISS, KeyRing, project_named
from compat_core.store import SqlStore, TransactionRunner, create_store, schema
from compat_core.store.base import CursorNotFound, NewChunk, PageQuery, Store
from compat_core.store.migrate import ALEMBIC_LOCK, alembic_config
from compat_core.v1 import (
    assistants_pb2,
    files_pb2,
    messages_pb2,
    runs_pb2,
    threads_pb2,
    vector_stores_pb2,
)

T0 = 1_700_000_000
OTHER = "proj_other"
PAGE = PageQuery(limit=20)


def _assistant(n: int) -> assistants_pb2.Assistant:
    return assistants_pb2.Assistant(id=f"asst_{n:03}", created_at=T0, model="m")


def _thread(name: str) -> threads_pb2.Thread:
    return threads_pb2.Thread(id=f"thread_{name}", created_at=T0)


def _message(thread_id: str, n: int) -> messages_pb2.Message:
    return messages_pb2.Message(id=f"msg_{thread_id}_{n}", thread_id=thread_id, created_at=T0)


def _run(thread_id: str) -> runs_pb2.Run:
    return runs_pb2.Run(
        id=f"run_{thread_id}",
        thread_id=thread_id,
        created_at=T0,
        status=runs_pb2.RUN_STATUS_COMPLETED,
    )


async def _fill(store: SqlStore, tag: str) -> dict[str, str]:
    """One object of each kind in the current project."""
    thread_id = f"thread_{tag}"
    await store.create_assistant(assistants_pb2.Assistant(id=f"asst_{tag}", created_at=T0))
    await store.create_thread(_thread(tag), [_message(thread_id, 1)])
    run = _run(thread_id)
    step = runs_pb2.RunStep(id=f"step_{tag}", run_id=run.id, thread_id=thread_id)
    await store.create_run(run)
    await store.save_progress(steps=[step])
    await store.create_file(files_pb2.File(id=f"file-{tag}", purpose="assistants"))
    await store.create_vector_store(vector_stores_pb2.VectorStore(id=f"vs_{tag}", created_at=T0))
    added = await store.add_vector_store_files(
        f"vs_{tag}",
        [
            vector_stores_pb2.VectorStoreFile(
                id=f"file-{tag}",
                vector_store_id=f"vs_{tag}",
                status=vector_stores_pb2.VECTOR_STORE_FILE_STATUS_IN_PROGRESS,
            )
        ],
    )
    assert added is not None
    return {
        "assistant": f"asst_{tag}",
        "thread": thread_id,
        "message": f"msg_{thread_id}_1",
        "run": run.id,
        "step": step.id,
        "file": f"file-{tag}",
        "vector_store": f"vs_{tag}",
    }


async def _reads(store: SqlStore, i: dict[str, str]) -> list[object]:
    """What every read by ID answers for the objects `i` names."""
    return [
        await store.get_assistant(i["assistant"]),
        await store.get_thread(i["thread"]),
        await store.get_message(i["thread"], i["message"]),
        await store.list_messages(i["thread"], PAGE),
        await store.get_run(i["thread"], i["run"]),
        await store.find_run(i["run"]),
        await store.list_runs(i["thread"], PAGE),
        await store.list_steps(i["thread"], i["run"], PAGE),
        await store.get_step(i["thread"], i["run"], i["step"]),
        await store.run_steps(i["run"]),
        await store.thread_messages(i["thread"]),
        await store.get_file(i["file"]),
        await store.get_vector_store(i["vector_store"]),
        await store.get_vector_store_file(i["vector_store"], i["file"]),
    ]


def _nothing(found: list[object]) -> bool:
    return all(item is None or item == [] for item in found)


async def test_another_projects_objects_are_missing_to_every_store_method(
    store: SqlStore,
) -> None:
    own = await _fill(store, "a")
    [own_chunk] = await store.add_chunks(
        own["vector_store"], own["file"], [NewChunk(0, "alpha words", 2)], T0
    )
    with tenancy.project(OTHER):
        theirs = await _fill(store, "b")
        assert _nothing(await _reads(store, own))
        assert await store.search_chunks_lexical([own["vector_store"]], "alpha", 5) == []
        assert all(found for found in await _reads(store, theirs))
        assert [a.id for a in (await store.list_assistants(PAGE)).items] == [theirs["assistant"]]
        assert [f.id for f in (await store.list_files(PAGE)).items] == [theirs["file"]]
        stores = (await store.list_vector_stores(PAGE)).items
        assert [s.id for s in stores] == [theirs["vector_store"]]
        for cursor in (own["assistant"], own["file"]):
            with pytest.raises(CursorNotFound):
                await store.list_assistants(PageQuery(limit=5, after=cursor))
        with pytest.raises(CursorNotFound):
            await store.list_messages(theirs["thread"], PageQuery(limit=5, after=own["message"]))

        mutated: list[str] = []
        assert (
            await store.update_assistant(own["assistant"], lambda a: mutated.append(a.id)) is None
        )
        assert await store.update_thread(own["thread"], lambda t: mutated.append(t.id)) is None
        assert (
            await store.update_message(
                own["thread"], own["message"], lambda m: mutated.append(m.id)
            )
            is None
        )
        assert (
            await store.update_run(own["thread"], own["run"], lambda r: mutated.append(r.id))
            is None
        )
        assert mutated == []
        assert not await store.create_message(_message(own["thread"], 2))
        assert not await store.create_run(runs_pb2.Run(id="run_x", thread_id=own["thread"]))
        assert await store.add_vector_store_files(own["vector_store"], []) is None
        with pytest.raises(LookupError):
            await store.save_progress(messages=[_message(own["thread"], 3)])
        with pytest.raises(LookupError):
            await store.add_chunks(own["vector_store"], own["file"], [NewChunk(1, "x", 1)], T0)
        assert await store.delete_store_chunks(own["vector_store"]) == 0
        assert await store.delete_file_chunks(own["vector_store"], own["file"]) == 0
        deletes: list[Callable[[], Awaitable[bool]]] = [
            lambda: store.delete_assistant(own["assistant"]),
            lambda: store.delete_message(own["thread"], own["message"]),
            lambda: store.delete_thread(own["thread"]),
            lambda: store.delete_file(own["file"]),
            lambda: store.delete_vector_store_file(own["vector_store"], own["file"]),
            lambda: store.delete_vector_store(own["vector_store"]),
        ]
        for delete in deletes:
            assert not await delete()
    # Untouched, as the default project sees them, chunks and all.
    assert all(found for found in await _reads(store, own))
    found = await store.search_chunks_lexical([own["vector_store"]], "alpha", 5)
    assert [match.chunk_id for match in found] == [own_chunk]
    assert [m.id for m in await store.thread_messages(own["thread"])] == [own["message"]]


# Every statement on a tenant's table names its project: in SQL as SQLite ran it, whatever path
# built it (SQLAlchemy or the prepared fast path), for a workload touching every kind.
_TENANT_TABLE = re.compile(
    r"\b(?:FROM|JOIN|UPDATE|INTO)\s+(" + "|".join(sorted(schema.TENANT_TABLES)) + r")\b"
)


@sqlite_only
async def test_every_statement_on_a_tenants_table_names_the_project(
    store: SqlStore, db_url: str, db_path: Path
) -> None:
    async with sqlite_traced(db_url, db_path) as (traced, captured):
        own = await _fill(traced, "a")
        await traced.add_chunks(own["vector_store"], own["file"], [NewChunk(0, "alpha", 1)], T0)
        await _reads(traced, own)
        await traced.list_assistants(PageQuery(limit=2, after=own["assistant"]))
        await traced.list_files(PageQuery(limit=2), "assistants")
        await traced.list_vector_stores(PAGE)
        await traced.list_vector_store_files(own["vector_store"], PAGE, 0)
        await traced.search_chunks_lexical([own["vector_store"]], "alpha", 5)
        await traced.touch_vector_stores([own["vector_store"]], T0 + 5)
        await traced.update_assistant(own["assistant"], lambda a: None)
        await traced.update_message(own["thread"], own["message"], lambda m: None)
        await traced.delete_run_output([own["step"]], [own["message"]])
        await traced.delete_vector_store_file(own["vector_store"], own["file"])
        await traced.delete_file(own["file"])
        await traced.delete_vector_store(own["vector_store"])
        await traced.delete_thread(own["thread"])
        await traced.delete_assistant(own["assistant"])
    on_tenants = [sql for sql in captured if _TENANT_TABLE.search(sql)]
    assert len(on_tenants) > 40
    unscoped = [sql for sql in on_tenants if "project_id" not in sql]
    assert unscoped == []


async def test_maintenance_works_across_projects_and_names_each_objects_project(
    store: SqlStore,
) -> None:
    own = await _fill(store, "a")
    with tenancy.project(OTHER):
        theirs = await _fill(store, "b")
    with tenancy.all_projects():
        assert await store.project_of_run(own["run"]) == tenancy.DEFAULT_PROJECT
        assert await store.project_of_run(theirs["run"]) == OTHER
        assert await store.project_of_vector_store(theirs["vector_store"]) == OTHER
        claimed = await store.claim_vector_store_files("core", 10**13, 10**13 + 1, 10)
        assert {f.vector_store_id for f in claimed} == {own["vector_store"], theirs["vector_store"]}
        with pytest.raises(tenancy.NoProjectScope):
            await store.create_assistant(_assistant(9))


async def test_no_scope_is_refused_before_the_database_is_touched(store: SqlStore) -> None:
    async def outside() -> None:
        with pytest.raises(tenancy.NoProjectScope):
            await store.get_assistant("asst_x")
        with pytest.raises(tenancy.NoProjectScope):
            await store.claim_runs("core", 0, 0, 1)

    # A task in a fresh context: the autouse fixture's default project is not in it.
    await asyncio.create_task(outside(), context=contextvars.Context())


# Migration 0012

_OLD = {
    "assistants": ("id", "created_at", "body"),
    "threads": ("id", "created_at", "body"),
    "messages": ("id", "thread_id", "created_at", "body"),
    "runs": ("id", "thread_id", "status", "created_at", "body"),
    "files": ("id", "purpose", "created_at", "body"),
    "vector_stores": ("id", "created_at", "body"),
}


def _old_table(name: str) -> sa.TableClause:
    return sa.table(name, *(sa.column(column) for column in _OLD[name]))


def _at_0011_with_objects(conn: Connection) -> None:
    with ALEMBIC_LOCK:
        command.upgrade(alembic_config(conn), "0011")
    rows: dict[str, dict[str, object]] = {
        "assistants": {
            "id": "asst_old",
            "body": assistants_pb2.Assistant(id="asst_old", created_at=T0).SerializeToString(),
        },
        "threads": {"id": "thread_old", "body": _thread("old").SerializeToString()},
        "messages": {
            "id": "msg_thread_old_1",
            "thread_id": "thread_old",
            "body": _message("thread_old", 1).SerializeToString(),
        },
        "runs": {
            "id": "run_thread_old",
            "thread_id": "thread_old",
            "status": int(runs_pb2.RUN_STATUS_COMPLETED),
            "body": _run("thread_old").SerializeToString(),
        },
        "files": {
            "id": "file-old",
            "purpose": "assistants",
            "body": files_pb2.File(id="file-old", purpose="assistants").SerializeToString(),
        },
        "vector_stores": {
            "id": "vs_old",
            "body": vector_stores_pb2.VectorStore(id="vs_old").SerializeToString(),
        },
    }
    for name, row in rows.items():
        conn.execute(_old_table(name).insert().values(created_at=T0, **row))


async def test_migration_puts_existing_objects_in_the_default_project(
    db: TransactionRunner,
) -> None:
    await db.write(_at_0011_with_objects)
    store = SqlStore(db)
    await store.open()
    old = {
        "assistant": "asst_old",
        "thread": "thread_old",
        "message": "msg_thread_old_1",
        "run": "run_thread_old",
        "file": "file-old",
        "vector_store": "vs_old",
    }
    assert await store.get_assistant(old["assistant"]) is not None
    assert await store.get_thread(old["thread"]) is not None
    assert await store.get_message(old["thread"], old["message"]) is not None
    assert await store.get_run(old["thread"], old["run"]) is not None
    assert await store.get_file(old["file"]) is not None
    assert await store.get_vector_store(old["vector_store"]) is not None
    assert [a.id for a in (await store.list_assistants(PAGE)).items] == ["asst_old"]
    # New objects of the default project join the same lists, after the old ones.
    await store.create_assistant(_assistant(1))
    listed = await store.list_assistants(PageQuery(limit=20, order="asc"))
    assert [a.id for a in listed.items] == ["asst_old", "asst_001"]
    default = await store.get_project(tenancy.DEFAULT_PROJECT)
    assert default is not None
    assert (default.name, default.archived_at) == (tenancy.DEFAULT_PROJECT_NAME, None)
    with tenancy.project(OTHER):
        assert await store.get_assistant(old["assistant"]) is None
        assert (await store.list_assistants(PAGE)).items == []


# API keys


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _key_of(store: Store, name: str, ring: KeyRing) -> tuple[str, str, str]:
    project = await project_named(store, name, create=True)
    assert project is not None
    record, key = await ring.create(project.id, "k")
    return project.id, record.id, key


async def test_keys_are_stored_hashed_and_open_their_project(store: SqlStore) -> None:
    ring = KeyRing(store, ["config-key"])
    project_id, key_id, key = await _key_of(store, "team", ring)
    assert key.startswith(keyring.KEY_PREFIX)
    assert len(key) == len(keyring.KEY_PREFIX) + 48
    [stored] = await store.list_api_keys(project_id)
    assert stored.id == key_id
    assert stored.redacted_value == f"sk-proj-…{key[-4:]}"
    assert await store.api_key_by_hash(keyring.key_digest(key).hex()) == stored
    assert ring.cached(key) is MISS
    assert await ring.look_up(key) == project_id
    assert ring.cached(key) == project_id
    assert ring.cached("config-key") == tenancy.DEFAULT_PROJECT
    assert await ring.look_up("sk-proj-wrong") is None
    assert ring.cached("sk-proj-wrong") is None
    assert (await project_named(store, project_id, create=False)) is not None
    await ring.close()


async def test_a_revoked_key_is_refused_at_once_and_others_recheck(store: SqlStore) -> None:
    clock = _Clock()
    ring = KeyRing(store, [], clock=clock)
    other_core = KeyRing(store, [], clock=clock)
    project_id, key_id, key = await _key_of(store, "team", ring)
    assert await ring.look_up(key) == project_id
    assert await other_core.look_up(key) == project_id
    assert await ring.revoke(key_id)
    assert ring.cached(key) is MISS
    assert await ring.look_up(key) is None
    # The other core's verdict stands until its re-check, never longer.
    assert other_core.cached(key) == project_id
    clock.now += keyring.RECHECK_SECONDS + 0.1
    assert other_core.cached(key) is MISS
    assert await other_core.look_up(key) is None
    await ring.close()
    await other_core.close()


@pytest.mark.skipif(
    postgres_admin_url() is None, reason="cores share a database, and revocations, on PostgreSQL"
)
async def test_a_key_revoked_on_one_core_is_forgotten_on_another_at_once(db_url: str) -> None:
    first, second = create_store(db_url), create_store(db_url)
    await first.open()
    await second.open()
    try:
        await second.listen(lambda _channel, _payload: None)
        one, other = KeyRing(first, []), KeyRing(second, [])
        project_id, key_id, key = await _key_of(first, "team", one)
        assert await other.look_up(key) == project_id
        assert await one.revoke(key_id)
        # Well within RECHECK_SECONDS: the notice, not the re-check, made the other forget.
        deadline = time.monotonic() + keyring.RECHECK_SECONDS / 2
        while other.cached(key) is not MISS:
            assert time.monotonic() < deadline, "the other core still trusts a revoked key"
            await asyncio.sleep(0.01)
        assert await other.look_up(key) is None
    finally:
        await first.close()
        await second.close()


async def test_last_used_is_written_at_most_once_a_minute(store: SqlStore) -> None:
    clock = _Clock()
    ring = KeyRing(store, [], clock=clock)
    project_id, _, key = await _key_of(store, "team", ring)
    writes: list[object] = []
    marked = store.mark_api_keys_used

    async def counted(used: dict[str, int]) -> None:
        writes.append(used)
        await marked(used)

    store.mark_api_keys_used = counted  # type: ignore[method-assign,assignment]
    await ring.look_up(key)
    for _ in range(50):
        ring.cached(key)
    await ring.close()
    assert len(writes) == 1
    [stored] = await store.list_api_keys(project_id)
    assert stored.last_used_at is not None
    clock.now += keyring.LAST_USED_EVERY_SECONDS + 1
    await ring.look_up(key)
    await ring.close()
    assert len(writes) == 2


async def test_keys_are_required_once_any_is_stored(store: SqlStore) -> None:
    clock = _Clock()
    ring = KeyRing(store, [], clock=clock)
    assert not await ring.required()
    await _key_of(store, "team", ring)
    assert await ring.required()
    assert await KeyRing(store, ["k"]).required()
