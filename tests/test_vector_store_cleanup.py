"""What takes text out of vector stores: deleting a file (from every store that holds it) and
expiry (a store expires when its time has passed, and the sweep drops its chunks), and what
moves a store's expiry on: being searched, not being read.

Time is never waited for: an expiry is brought about by the sweeper's clock, or by a store
aged in the database as `test_vector_stores` does.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import openai
import pytest
import sqlalchemy as sa
from alembic import command
from harness import MakeClient, MakeServer
from harness.counting import CountingRunner
from sqlalchemy import Connection
from test_inline_vector_stores import (
    DAY,
    ECHO,
    FILE_SEARCH,
    HARBOUR,
    SAM,
    completed,
    file_ids,
    found,
    store_of,
    upload,
)

from compat_core import ids
from compat_core.services.support import now
from compat_core.services.vector_store_files import VectorStoreFiles
from compat_core.services.vector_stores import VectorStoresService
from compat_core.store import BlobStore, SqlStore, TransactionRunner, open_database, schema
from compat_core.store.base import NewChunk
from compat_core.store.migrate import ALEMBIC_LOCK, alembic_config
from compat_core.store.sweep import Sweeper
from compat_core.v1 import vector_stores_pb2

# Deleting a file


def test_deleting_a_file_takes_it_out_of_every_store(client: openai.OpenAI) -> None:
    sam, harbour = upload(client, "sam.md", SAM), upload(client, "harbour.md", HARBOUR)
    shared = client.vector_stores.create(file_ids=[sam.id, harbour.id]).id
    assistant = client.beta.assistants.create(
        model=ECHO, tool_resources={"file_search": {"vector_stores": [{"file_ids": [sam.id]}]}}
    )
    own = store_of(assistant.tool_resources)
    completed(client, shared, sam, harbour)
    completed(client, own, sam)
    before = client.vector_stores.retrieve(shared)
    assert found(client, shared, "baker") == ["sam.md"]

    assert client.files.delete(sam.id).deleted

    assert file_ids(client, shared) == {harbour.id}
    assert file_ids(client, own) == set()
    after = client.vector_stores.retrieve(shared)
    assert (after.file_counts.total, after.file_counts.completed) == (1, 1)
    assert 0 < after.usage_bytes < before.usage_bytes
    emptied = client.vector_stores.retrieve(own)
    assert (emptied.file_counts.total, emptied.usage_bytes) == (0, 0)
    assert found(client, shared, "baker") == []
    assert found(client, own, "baker") == []
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.retrieve(sam.id, vector_store_id=shared)


# Activity and expiry


def _service(store: SqlStore, files_dir: Path) -> VectorStoresService:
    return VectorStoresService(store, VectorStoreFiles(store, BlobStore(files_dir), lambda: None))


async def _store_with_chunks(store: SqlStore, days: int | None, text: str) -> str:
    created = vector_stores_pb2.VectorStore(
        id=ids.new_id(ids.VECTOR_STORE),
        created_at=now(),
        last_active_at=now(),
        status=vector_stores_pb2.VECTOR_STORE_STATUS_COMPLETED,
    )
    if days is not None:
        created.expires_after.anchor = "last_active_at"
        created.expires_after.days = days
        created.expires_at = created.last_active_at + days * DAY
    await store.create_vector_store(created)
    # A search counts only chunks of files their store holds.
    entry = vector_stores_pb2.VectorStoreFile(
        id="file-1", created_at=now(), vector_store_id=created.id
    )
    assert await store.add_vector_store_files(created.id, [entry]) is not None
    await store.add_chunks(created.id, "file-1", [NewChunk(0, text, 5)], now())
    return created.id


async def _hits(store: SqlStore, store_id: str, query: str) -> int:
    return len(await store.search_chunks_lexical([store_id], query, 10))


async def test_the_sweep_expires_stores_and_drops_their_chunks(
    store: SqlStore, tmp_path: Path
) -> None:
    due = await _store_with_chunks(store, 1, "Apples grow in the orchard")
    later = await _store_with_chunks(store, 3, "Barley grows in the field")
    never = await _store_with_chunks(store, None, "Cherries grow on the hill")
    sweeper = Sweeper(BlobStore(tmp_path), store, 60.0, clock=lambda: time.time() + 2 * DAY)

    await sweeper.sweep()

    expired = await store.get_vector_store(due)
    assert expired is not None
    assert expired.status == vector_stores_pb2.VECTOR_STORE_STATUS_EXPIRED
    assert await _hits(store, due, "apples orchard") == 0
    assert await _hits(store, later, "barley field") == 1
    assert await _hits(store, never, "cherries hill") == 1
    for kept in (later, never):
        untouched = await store.get_vector_store(kept)
        assert untouched is not None
        assert untouched.status == vector_stores_pb2.VECTOR_STORE_STATUS_COMPLETED
    assert await store.expire_vector_stores(int(time.time()) + 2 * DAY, 10) == []
    await store.touch_vector_stores([due], int(time.time()) + 3 * DAY)
    assert await store.get_vector_store(due) == expired, "using an expired store changes nothing"


async def test_an_expired_store_takes_no_chunks_from_a_late_ingestion(store: SqlStore) -> None:
    store_id = await _store_with_chunks(store, 1, "Apples grow in the orchard")
    pending = vector_stores_pb2.VectorStoreFile(
        id="file-late",
        vector_store_id=store_id,
        created_at=now(),
        status=vector_stores_pb2.VECTOR_STORE_FILE_STATUS_IN_PROGRESS,
    )
    assert await store.add_vector_store_files(store_id, [pending]) is not None
    moment_ms = int(time.time() * 1000)
    [claimed] = await store.claim_vector_store_files("core-a", moment_ms, moment_ms + 60_000, 1)
    assert await store.expire_vector_stores(now() + 2 * DAY, 10) == [store_id]
    claimed.status = vector_stores_pb2.VECTOR_STORE_FILE_STATUS_COMPLETED
    chunks = [NewChunk(0, "Pears ripen late", 3)]
    assert await store.finish_vector_store_file("core-a", claimed, chunks, now())
    assert await _hits(store, store_id, "pears ripen") == 0


async def test_a_search_marks_the_store_active_and_a_read_does_not(
    store: SqlStore, tmp_path: Path
) -> None:
    service = _service(store, tmp_path)
    created = await service.CreateVectorStore(
        vector_stores_pb2.CreateVectorStoreRequest(
            vector_store=vector_stores_pb2.VectorStore(
                expires_after=vector_stores_pb2.VectorStoreExpirationAfter(
                    anchor="last_active_at", days=2
                )
            )
        ),
        None,
    )

    def age(v: vector_stores_pb2.VectorStore) -> None:
        v.last_active_at -= DAY
        v.expires_at = v.last_active_at + 2 * DAY

    aged = await store.update_vector_store(created.id, age)
    assert aged is not None
    read = await service.GetVectorStore(
        vector_stores_pb2.GetVectorStoreRequest(vector_store_id=created.id), None
    )
    assert read.last_active_at == aged.last_active_at
    start = now()
    await service.SearchVectorStore(
        vector_stores_pb2.SearchVectorStoreRequest(vector_store_id=created.id, query=["x"]), None
    )
    searched = await store.get_vector_store(created.id)
    assert searched is not None
    assert searched.last_active_at >= start
    assert searched.expires_at == searched.last_active_at + 2 * DAY


async def test_a_search_that_changes_nothing_about_the_store_writes_nothing(
    db: TransactionRunner, tmp_path: Path
) -> None:
    counting = CountingRunner(db)
    store = SqlStore(counting)
    await store.open()
    service = _service(store, tmp_path)
    created = await service.CreateVectorStore(vector_stores_pb2.CreateVectorStoreRequest(), None)

    def ahead(v: vector_stores_pb2.VectorStore) -> None:
        # Used a minute from now, as a search this second on another core could have left it.
        v.last_active_at = now() + 60

    assert await store.update_vector_store(created.id, ahead) is not None
    writes = counting.writes
    await service.SearchVectorStore(
        vector_stores_pb2.SearchVectorStoreRequest(vector_store_id=created.id, query=["x"]), None
    )

    assert counting.writes == writes


def test_an_expired_thread_store_is_swept_and_the_thread_gets_a_new_one(
    make_server: MakeServer, make_client: MakeClient, tmp_path: Path
) -> None:
    server = make_server()
    client = make_client(server)
    sam, harbour = upload(client, "sam.md", SAM), upload(client, "harbour.md", HARBOUR)
    thread = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": "Sam?",
                "attachments": [{"file_id": sam.id, "tools": FILE_SEARCH}],
            }
        ]
    )
    old = store_of(thread.tool_resources)
    completed(client, old, sam)
    assert found(client, old, "baker") == ["sam.md"]

    server.stop()
    asyncio.run(_sweep_as_of(server.database_url, tmp_path, time.time() + 8 * DAY))
    server.start()
    client = make_client(server)

    expired = client.vector_stores.retrieve(old)
    assert expired.status == "expired"
    assert file_ids(client, old) == {sam.id}, "an expired store keeps its object and files"
    assert found(client, old, "baker") == []
    client.beta.threads.messages.create(
        thread.id,
        role="user",
        content="Harbour?",
        attachments=[{"file_id": harbour.id, "tools": FILE_SEARCH}],
    )
    fresh = store_of(client.beta.threads.retrieve(thread.id).tool_resources)
    assert fresh != old
    assert file_ids(client, fresh) == {harbour.id}
    assert client.vector_stores.retrieve(fresh).status in ("in_progress", "completed")


async def _sweep_as_of(database_url: str, scratch: Path, moment: float) -> None:
    """One sweep of a (stopped) server's database, its clock set to `moment`."""
    store = SqlStore(open_database(database_url))
    await store.open()
    try:
        await Sweeper(BlobStore(scratch), store, 60.0, clock=lambda: moment).sweep()
    finally:
        await store.close()


async def test_the_migration_indexes_the_expiry_of_existing_stores(
    db: TransactionRunner,
) -> None:
    """Stores made before migration 0011 are found by the sweep as those made after it, and
    so are those already marked expired, whose chunks nothing dropped before it."""
    policy = vector_stores_pb2.VectorStoreExpirationAfter(anchor="last_active_at", days=1)
    bodies = {
        "vs_pending": vector_stores_pb2.VectorStore(expires_after=policy, expires_at=1_000),
        "vs_expired": vector_stores_pb2.VectorStore(
            expires_after=policy,
            expires_at=900,
            status=vector_stores_pb2.VECTOR_STORE_STATUS_EXPIRED,
        ),
        "vs_forever": vector_stores_pb2.VectorStore(),
    }

    def migrate(conn: Connection) -> dict[str, int | None]:
        with ALEMBIC_LOCK:
            command.upgrade(alembic_config(conn), "0007")
        table = sa.table(
            "vector_stores",
            sa.column("id", sa.String()),
            sa.column("created_at", sa.BigInteger()),
            sa.column("body", sa.LargeBinary()),
        )
        rows = [
            {"id": store_id, "created_at": 1, "body": body.SerializeToString()}
            for store_id, body in bodies.items()
        ]
        conn.execute(sa.insert(table), rows)
        with ALEMBIC_LOCK:
            command.upgrade(alembic_config(conn), "head")
        stores = schema.vector_stores
        return {str(i): at for i, at in conn.execute(sa.select(stores.c.id, stores.c.expires_at))}

    migrated = await db.write(migrate)
    assert migrated == {"vs_pending": 1_000, "vs_expired": 900, "vs_forever": None}
