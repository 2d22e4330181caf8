"""Files in vector stores through the official SDK: adding, background ingestion, listing,
attributes, content and removal, and ingestion that survives a restart of the server."""

from __future__ import annotations

import asyncio

import openai
import pytest
from harness import MakeClient, MakeServer, assert_api_error
from harness.server import ServerThread
from sqlalchemy import select

from compat_core.store import create_store, open_database, schema
from compat_core.v1 import vector_stores_pb2

MARKDOWN = b"# Zebracorn care\n\nA zebracorn eats clover at dawn and sleeps under birch trees.\n"


def upload(client: openai.OpenAI, name: str, data: bytes) -> str:
    return client.files.create(file=(name, data), purpose="assistants").id


def test_upload_and_poll_completes_and_counts(client: openai.OpenAI) -> None:
    store_id = client.vector_stores.create(name="docs").id
    done = client.vector_stores.files.upload_and_poll(
        vector_store_id=store_id, file=("a.md", MARKDOWN), poll_interval_ms=50
    )
    assert done.status == "completed"
    assert done.last_error is None
    assert done.usage_bytes > 0
    assert done.vector_store_id == store_id
    assert done.object == "vector_store.file"
    assert done.chunking_strategy is not None
    assert done.chunking_strategy.type == "static"
    store = client.vector_stores.retrieve(store_id)
    assert store.file_counts.completed == 1
    assert store.file_counts.total == 1
    assert store.file_counts.in_progress == 0
    assert store.usage_bytes == done.usage_bytes
    assert store.status == "completed"
    content = client.vector_stores.files.content(done.id, vector_store_id=store_id)
    texts = [part.text for part in content]
    assert len(texts) == 1
    assert "zebracorn eats clover" in (texts[0] or "")


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("tool.exe", b"MZ\x90\x00binary", "unsupported_file"),
        ("broken.pdf", b"%PDF-1.7\nnot really a pdf", "invalid_file"),
    ],
)
def test_a_file_that_cannot_be_parsed_fails(
    client: openai.OpenAI, name: str, data: bytes, code: str
) -> None:
    store_id = client.vector_stores.create().id
    file_id = upload(client, name, data)
    failed = client.vector_stores.files.create_and_poll(
        file_id=file_id, vector_store_id=store_id, poll_interval_ms=50
    )
    assert failed.status == "failed"
    assert failed.last_error is not None
    assert failed.last_error.code == code
    assert failed.usage_bytes == 0
    counts = client.vector_stores.retrieve(store_id).file_counts
    assert (counts.failed, counts.completed, counts.total) == (1, 0, 1)


def test_list_filters_by_status_and_adding_twice_is_idempotent(client: openai.OpenAI) -> None:
    store_id = client.vector_stores.create().id
    good = client.vector_stores.files.upload_and_poll(
        vector_store_id=store_id, file=("good.txt", b"plain words"), poll_interval_ms=50
    )
    bad_id = upload(client, "bad.exe", b"MZ")
    client.vector_stores.files.create_and_poll(
        file_id=bad_id, vector_store_id=store_id, poll_interval_ms=50
    )
    again = client.vector_stores.files.create(vector_store_id=store_id, file_id=good.id)
    assert (again.id, again.status, again.usage_bytes) == (good.id, "completed", good.usage_bytes)
    listed = client.vector_stores.files.list(store_id)
    assert [f.id for f in listed.data] == [bad_id, good.id]
    completed = client.vector_stores.files.list(store_id, filter="completed")
    assert [f.id for f in completed.data] == [good.id]
    failed = client.vector_stores.files.list(store_id, filter="failed", order="asc")
    assert [f.id for f in failed.data] == [bad_id]
    assert client.vector_stores.retrieve(store_id).file_counts.total == 2
    with pytest.raises(openai.BadRequestError) as info:
        client.vector_stores.files.list(store_id, filter="done")  # type: ignore[arg-type]
    assert_api_error(info.value, 400, "invalid_request_error", param="filter")


def test_attributes_are_kept_updated_and_checked(client: openai.OpenAI) -> None:
    store_id = client.vector_stores.create().id
    file_id = upload(client, "notes.txt", b"some notes")
    created = client.vector_stores.files.create(
        vector_store_id=store_id,
        file_id=file_id,
        attributes={"team": "blue", "year": 2024, "draft": True},
    )
    assert created.attributes == {"team": "blue", "year": 2024, "draft": True}
    updated = client.vector_stores.files.update(
        file_id, vector_store_id=store_id, attributes={"score": 0.5}
    )
    assert updated.attributes == {"score": 0.5}
    fetched = client.vector_stores.files.retrieve(file_id, vector_store_id=store_id)
    assert fetched.attributes == {"score": 0.5}
    for attributes in (
        {f"k{i}": "v" for i in range(17)},
        {"k" * 65: "v"},
        {"k": "v" * 513},
        {"k": ["list"]},
    ):
        with pytest.raises(openai.BadRequestError) as info:
            client.vector_stores.files.update(
                file_id,
                vector_store_id=store_id,
                attributes=attributes,  # type: ignore[arg-type]
            )
        assert_api_error(info.value, 400, "invalid_request_error", param_prefix="attributes")


def test_bad_requests_are_400_or_404(client: openai.OpenAI) -> None:
    store_id = client.vector_stores.create().id
    with pytest.raises(openai.NotFoundError) as info:
        client.vector_stores.files.create(vector_store_id=store_id, file_id="file-nope")
    assert_api_error(info.value, 404, "invalid_request_error", param="file_id")
    file_id = upload(client, "x.txt", b"x")
    with pytest.raises(openai.NotFoundError) as info:
        client.vector_stores.files.create(vector_store_id="vs_nope", file_id=file_id)
    assert_api_error(info.value, 404, "invalid_request_error", param="vector_store_id")
    with pytest.raises(openai.BadRequestError) as refused:
        client.vector_stores.files.create(
            vector_store_id=store_id,
            file_id=file_id,
            chunking_strategy={
                "type": "static",
                "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 150},
            },
        )
    assert_api_error(
        refused.value,
        400,
        "invalid_request_error",
        param="chunking_strategy.static.chunk_overlap_tokens",
    )
    with pytest.raises(openai.NotFoundError) as info:
        client.vector_stores.files.retrieve(file_id, vector_store_id=store_id)
    assert_api_error(info.value, 404, "invalid_request_error", param="file_id")


def test_file_ids_on_store_create_are_ingested(client: openai.OpenAI) -> None:
    ids = [upload(client, f"f{i}.md", MARKDOWN + str(i).encode()) for i in range(3)]
    created = client.vector_stores.create(
        file_ids=ids,
        chunking_strategy={
            "type": "static",
            "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 50},
        },
    )
    assert created.file_counts.total == 3
    for file_id in ids:
        done = client.vector_stores.files.poll(
            file_id, vector_store_id=created.id, poll_interval_ms=50
        )
        assert done.status == "completed"
        assert done.chunking_strategy is not None
        assert done.chunking_strategy.type == "static"
        assert done.chunking_strategy.static.max_chunk_size_tokens == 100
    counts = client.vector_stores.retrieve(created.id).file_counts
    assert (counts.completed, counts.in_progress) == (3, 0)


def _stores_with_chunks(server: ServerThread, store_ids: list[str]) -> list[str]:
    """Which of the stores still have chunks, read from the stopped server's database (not
    through a search, which would not count chunks whose file left the store)."""
    chunks = schema.vector_store_chunks

    async def run() -> list[str]:
        database = open_database(server.database_url)
        try:
            return await database.read(
                lambda conn: sorted(
                    conn.execute(
                        select(chunks.c.vector_store_id)
                        .where(chunks.c.vector_store_id.in_(store_ids))
                        .distinct()
                    ).scalars()
                )
            )
        finally:
            await database.close()

    return asyncio.run(run())


def test_delete_removes_the_file_and_its_chunks_only(
    make_server: MakeServer, make_client: MakeClient
) -> None:
    server = make_server()
    client = make_client(server)
    kept, emptied = client.vector_stores.create().id, client.vector_stores.create().id
    file_id = upload(client, "z.md", MARKDOWN)
    for store_id in (kept, emptied):
        client.vector_stores.files.create_and_poll(
            file_id=file_id, vector_store_id=store_id, poll_interval_ms=50
        )
    deleted = client.vector_stores.files.delete(file_id, vector_store_id=emptied)
    assert (deleted.id, deleted.object, deleted.deleted) == (
        file_id,
        "vector_store.file.deleted",
        True,
    )
    assert client.vector_stores.files.list(emptied).data == []
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.content(file_id, vector_store_id=emptied)
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.delete(file_id, vector_store_id=emptied)
    store = client.vector_stores.retrieve(emptied)
    assert (store.file_counts.total, store.usage_bytes) == (0, 0)
    assert client.files.retrieve(file_id).id == file_id, "the upload itself stays"
    server.stop()
    assert _stores_with_chunks(server, [kept, emptied]) == [kept]


def test_an_ingestion_left_in_progress_is_finished_after_a_restart(
    make_server: MakeServer, make_client: MakeClient
) -> None:
    server = make_server()
    client = make_client(server)
    store_id = client.vector_stores.create().id
    file_id = upload(client, "left.md", MARKDOWN)
    server.stop()

    async def leave_in_progress() -> None:
        store = create_store(server.database_url)
        await store.open()
        try:
            left = vector_stores_pb2.VectorStoreFile(
                id=file_id,
                created_at=1,
                vector_store_id=store_id,
                status=vector_stores_pb2.VECTOR_STORE_FILE_STATUS_IN_PROGRESS,
            )
            left.chunking_strategy.auto.SetInParent()
            assert await store.add_vector_store_files(store_id, [left]) is not None
            claimed = await store.claim_vector_store_files("gone-core", 1, 2, 10)
            assert [f.id for f in claimed] == [file_id], "leased to a core that died"
        finally:
            await store.close()

    asyncio.run(leave_in_progress())
    server.start()
    client = make_client(server)
    done = client.vector_stores.files.poll(file_id, vector_store_id=store_id, poll_interval_ms=50)
    assert done.status == "completed"
    assert done.usage_bytes > 0
    assert client.vector_stores.retrieve(store_id).file_counts.completed == 1
