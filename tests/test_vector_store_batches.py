"""Batches of vector store files: through both SDKs' helpers, over gRPC, and on the store.

The SDK tests run on the session's server (SQLite, or PostgreSQL in that pass); the store tests
on a database of their own. Cancelling is tested where it can be made deterministic: files a
second core holds (a store opened beside the server, as another replica would be) stay
pending until that core lets go of them, and on the store, where no worker runs at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import grpc
import openai
import pytest
from harness import API_KEY, MakeClient, MakeHttp, MakeServer, assert_api_error
from harness.grpc_client import GrpcClient, rich_error
from harness.server import ServerThread
from runs.nodejs import node_with_locked_packages, run_script

from compat_core import ids
from compat_core.services.vector_store_files import new_file
from compat_core.store import SqlStore, Store, create_store
from compat_core.store.base import NewChunk, PageQuery
from compat_core.v1 import common_pb2, vector_stores_pb2

T = TypeVar("T")
MARKDOWN = b"# Zebracorn care\n\nA zebracorn eats clover at dawn and sleeps under birch trees.\n"
EXE = b"MZ\x90\x00binary"
POLL_MS = 50
Batch = vector_stores_pb2.VectorStoreFileBatch
VectorStoreFile = vector_stores_pb2.VectorStoreFile
FILE_IN_PROGRESS = vector_stores_pb2.VECTOR_STORE_FILE_STATUS_IN_PROGRESS
FILE_COMPLETED = vector_stores_pb2.VECTOR_STORE_FILE_STATUS_COMPLETED
FILE_CANCELLED = vector_stores_pb2.VECTOR_STORE_FILE_STATUS_CANCELLED
BATCH_IN_PROGRESS = vector_stores_pb2.VECTOR_STORE_FILE_BATCH_STATUS_IN_PROGRESS
BATCH_COMPLETED = vector_stores_pb2.VECTOR_STORE_FILE_BATCH_STATUS_COMPLETED
BATCH_CANCELLED = vector_stores_pb2.VECTOR_STORE_FILE_BATCH_STATUS_CANCELLED
# A moment (unix ms) for the store tests, and a lease that does not run out before the test ends.
NOW_MS = 1_700_000_000_000
HOUR_MS = 3_600_000


def upload(client: openai.OpenAI, name: str, data: bytes) -> str:
    return client.files.create(file=(name, data), purpose="assistants").id


def counts(batch: Any) -> tuple[int, int, int, int, int]:
    """in_progress, completed, failed, cancelled, total: of an SDK object or a proto."""
    c = batch.file_counts
    return (c.in_progress, c.completed, c.failed, c.cancelled, c.total)


# The Python SDK's helpers


def test_upload_and_poll_counts_every_file_of_the_batch(client: openai.OpenAI) -> None:
    store_id = client.vector_stores.create().id
    batch = client.vector_stores.file_batches.upload_and_poll(
        vector_store_id=store_id,
        files=[
            ("care.md", MARKDOWN),
            ("notes.txt", b"plain notes about birch trees"),
            ("data.json", b'{"animal": "zebracorn"}'),
            ("tool.exe", EXE),
        ],
        poll_interval_ms=POLL_MS,
    )
    assert batch.id.startswith("vsfb_")
    assert (batch.object, batch.vector_store_id, batch.status) == (
        "vector_store.files_batch",
        store_id,
        "completed",
    )
    assert counts(batch) == (0, 3, 1, 0, 4)
    [failed] = client.vector_stores.file_batches.list_files(
        batch.id, vector_store_id=store_id, filter="failed"
    ).data
    assert failed.last_error is not None
    assert failed.last_error.code == "unsupported_file"
    store = client.vector_stores.retrieve(store_id)
    assert counts(store) == (0, 3, 1, 0, 4)
    assert store.status == "completed"
    found = client.vector_stores.search(store_id, query="zebracorn clover")
    assert found.data, "the batch's files are searchable"


def test_list_files_pages_through_the_batch_only(client: openai.OpenAI) -> None:
    store_id = client.vector_stores.create().id
    alone = client.vector_stores.files.upload_and_poll(
        vector_store_id=store_id, file=("alone.txt", b"not in the batch"), poll_interval_ms=POLL_MS
    )
    file_ids = [upload(client, f"f{i}.txt", f"file number {i}".encode()) for i in range(5)]
    batch = client.vector_stores.file_batches.create_and_poll(
        vector_store_id=store_id, file_ids=file_ids, poll_interval_ms=POLL_MS
    )
    assert counts(batch) == (0, 5, 0, 0, 5)
    batches = client.vector_stores.file_batches
    ascending = batches.list_files(batch.id, vector_store_id=store_id, limit=2, order="asc")
    assert [f.id for f in ascending] == file_ids, "auto-pagination walks every page"
    descending = batches.list_files(batch.id, vector_store_id=store_id, limit=2)
    assert [f.id for f in descending] == file_ids[::-1]
    assert alone.id not in [f.id for f in descending]
    middle = batches.list_files(
        batch.id, vector_store_id=store_id, limit=2, order="asc", before=file_ids[3]
    )
    assert [f.id for f in middle.data] == file_ids[1:3]
    assert middle.has_more
    completed = batches.list_files(batch.id, vector_store_id=store_id, filter="completed")
    assert len(completed.data) == 5
    assert batches.list_files(batch.id, vector_store_id=store_id, filter="failed").data == []


def test_files_bring_their_own_attributes_and_chunking(client: openai.OpenAI) -> None:
    store_id = client.vector_stores.create().id
    tagged, chunked = upload(client, "a.md", MARKDOWN), upload(client, "b.md", MARKDOWN)
    batch = client.vector_stores.file_batches.create_and_poll(
        vector_store_id=store_id,
        files=[
            {"file_id": tagged, "attributes": {"team": "blue", "year": 2024, "draft": True}},
            {
                "file_id": chunked,
                "chunking_strategy": {
                    "type": "static",
                    "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 20},
                },
            },
        ],
        attributes={"ignored": "with files, the batch's own settings are not used"},
        poll_interval_ms=POLL_MS,
    )
    assert counts(batch) == (0, 2, 0, 0, 2)
    first = client.vector_stores.files.retrieve(tagged, vector_store_id=store_id)
    assert first.attributes == {"team": "blue", "year": 2024, "draft": True}
    assert first.chunking_strategy is not None
    assert first.chunking_strategy.type == "static"
    assert first.chunking_strategy.static.max_chunk_size_tokens == 800, "auto"
    second = client.vector_stores.files.retrieve(chunked, vector_store_id=store_id)
    assert second.attributes == {}
    assert second.chunking_strategy is not None
    assert second.chunking_strategy.type == "static"
    assert (
        second.chunking_strategy.static.max_chunk_size_tokens,
        second.chunking_strategy.static.chunk_overlap_tokens,
    ) == (100, 20)
    # The attributes a batch gives are the ones searches filter on.
    found = client.vector_stores.search(
        store_id, query="zebracorn clover", filters={"type": "eq", "key": "team", "value": "blue"}
    )
    assert [r.file_id for r in found.data] == [tagged]


def test_file_ids_share_the_batch_settings(client: openai.OpenAI) -> None:
    store_id = client.vector_stores.create().id
    file_ids = [upload(client, f"s{i}.md", MARKDOWN) for i in range(2)]
    client.vector_stores.file_batches.create_and_poll(
        vector_store_id=store_id,
        file_ids=file_ids,
        attributes={"shelf": "top"},
        chunking_strategy={
            "type": "static",
            "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 0},
        },
        poll_interval_ms=POLL_MS,
    )
    for file_id in file_ids:
        f = client.vector_stores.files.retrieve(file_id, vector_store_id=store_id)
        assert f.attributes == {"shelf": "top"}
        assert f.chunking_strategy is not None
        assert f.chunking_strategy.type == "static"
        assert f.chunking_strategy.static.max_chunk_size_tokens == 200


def test_a_file_the_store_holds_is_replaced(client: openai.OpenAI) -> None:
    store_id = client.vector_stores.create().id
    file_id = upload(client, "care.md", MARKDOWN)
    client.vector_stores.files.create_and_poll(
        file_id=file_id,
        vector_store_id=store_id,
        attributes={"version": 1},
        poll_interval_ms=POLL_MS,
    )
    batch = client.vector_stores.file_batches.create_and_poll(
        vector_store_id=store_id,
        files=[{"file_id": file_id, "attributes": {"version": 2}}],
        poll_interval_ms=POLL_MS,
    )
    assert counts(batch) == (0, 1, 0, 0, 1)
    again = client.vector_stores.files.retrieve(file_id, vector_store_id=store_id)
    assert (again.status, again.attributes) == ("completed", {"version": 2})
    assert counts(client.vector_stores.retrieve(store_id)) == (0, 1, 0, 0, 1)
    assert [f.id for f in client.vector_stores.files.list(store_id)] == [file_id]
    found = client.vector_stores.search(store_id, query="zebracorn clover")
    assert len(found.data) == 1, "the old chunks went with the old file"
    assert found.data[0].attributes == {"version": 2}


def test_two_batches_at_once_into_one_store(client: openai.OpenAI) -> None:
    store_id = client.vector_stores.create().id
    groups = [
        [upload(client, f"{group}{i}.txt", f"group {group} file {i}".encode()) for i in range(3)]
        for group in ("a", "b")
    ]
    batches = client.vector_stores.file_batches
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [
            pool.submit(
                batches.create_and_poll,
                vector_store_id=store_id,
                file_ids=group,
                poll_interval_ms=POLL_MS,
            )
            for group in groups
        ]
        done = [future.result() for future in futures]
    assert done[0].id != done[1].id
    for batch, group in zip(done, groups, strict=True):
        assert batch.status == "completed"
        assert counts(batch) == (0, 3, 0, 0, 3)
        listed = batches.list_files(batch.id, vector_store_id=store_id, order="asc")
        assert [f.id for f in listed] == group
    assert counts(client.vector_stores.retrieve(store_id)) == (0, 6, 0, 0, 6)


def _as_other_core(server: ServerThread, work: Callable[[Store], Awaitable[T]]) -> T:
    """Run `work` on a store of its own on the server's database, as another core would."""

    async def run() -> T:
        store = create_store(server.database_url)
        await store.open()
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


def test_cancel_stops_the_files_and_ends_once_no_core_works_on_them(
    make_server: MakeServer, make_client: MakeClient
) -> None:
    server = make_server()
    client = make_client(server)
    store_id = client.vector_stores.create().id
    file_ids = [upload(client, f"c{i}.md", MARKDOWN) for i in range(3)]
    batch_id = ids.new_id(ids.VECTOR_STORE_FILE_BATCH)
    server.stop()

    async def create_and_hold(store: Store) -> list[str]:
        """The batch, its files taken by a core that is busy elsewhere: this server's worker
        leaves them alone while that core's lease runs."""
        batch = Batch(id=batch_id, created_at=1, vector_store_id=store_id)
        chunking = common_pb2.ChunkingStrategy()
        files = [new_file(store_id, f, chunking, {}, 1, batch_id) for f in file_ids]
        assert await store.create_vector_store_file_batch(batch, files, 0) is not None
        held = await store.claim_vector_store_files("other-core", 1, 2**62, 10)
        return [f.id for f in held]

    assert sorted(_as_other_core(server, create_and_hold)) == sorted(file_ids)
    server.start()
    client = make_client(server)
    batches = client.vector_stores.file_batches
    pending = batches.retrieve(batch_id, vector_store_id=store_id)
    assert (pending.status, counts(pending)) == ("in_progress", (3, 0, 0, 0, 3))

    cancelling = batches.cancel(batch_id, vector_store_id=store_id)
    assert cancelling.status == "in_progress", "the other core still works on its files"
    assert counts(cancelling) == (0, 0, 0, 3, 3)
    assert len(batches.list_files(batch_id, vector_store_id=store_id, filter="cancelled").data) == 3

    async def finish_then_stop(store: Store) -> bool:
        """The other core ends the file it was on (not stored: cancelled), then stops."""
        outcome = VectorStoreFile(
            id=file_ids[0], vector_store_id=store_id, status=FILE_COMPLETED, usage_bytes=9
        )
        stored = await store.finish_vector_store_file(
            "other-core", outcome, [NewChunk(0, "zebracorn clover", 2)], 1
        )
        await store.release_vector_store_files("other-core")
        return stored

    assert _as_other_core(server, finish_then_stop) is False
    ended = batches.retrieve(batch_id, vector_store_id=store_id)
    assert (ended.status, counts(ended)) == ("cancelled", (0, 0, 0, 3, 3))
    first = client.vector_stores.files.retrieve(file_ids[0], vector_store_id=store_id)
    assert (first.status, first.usage_bytes) == ("cancelled", 0)
    assert client.vector_stores.search(store_id, query="zebracorn clover").data == []
    store = client.vector_stores.retrieve(store_id)
    assert (store.status, counts(store)) == ("completed", (0, 0, 0, 3, 3))
    again = batches.cancel(batch_id, vector_store_id=store_id)
    assert (again.status, counts(again)) == ("cancelled", (0, 0, 0, 3, 3))


def test_a_finished_batch_cannot_be_cancelled(client: openai.OpenAI) -> None:
    store_id = client.vector_stores.create().id
    batch = client.vector_stores.file_batches.upload_and_poll(
        vector_store_id=store_id, files=[("x.txt", b"done soon")], poll_interval_ms=POLL_MS
    )
    with pytest.raises(openai.BadRequestError) as info:
        client.vector_stores.file_batches.cancel(batch.id, vector_store_id=store_id)
    assert_api_error(info.value, 400, "invalid_request_error", param="batch_id")
    assert "completed" in info.value.message


# Every way a request can be wrong


def test_refused_creates_name_the_field_and_store_nothing(client: openai.OpenAI) -> None:
    store_id = client.vector_stores.create().id
    file_id = upload(client, "ok.txt", b"fine")
    bad_chunking = {
        "type": "static",
        "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 150},
    }
    refusals: list[tuple[dict[str, Any], int, str, str | None]] = [
        ({"file_ids": [file_id], "files": [{"file_id": file_id}]}, 400, "files", None),
        ({}, 400, "file_ids", "missing_required_parameter"),
        ({"file_ids": []}, 400, "file_ids", "empty_array"),
        ({"files": []}, 400, "files", "empty_array"),
        ({"file_ids": [file_id] * 2001}, 400, "file_ids", "array_above_max_length"),
        ({"files": [{"file_id": file_id}] * 2001}, 400, "files", "array_above_max_length"),
        ({"file_ids": ["file-nope"]}, 404, "file_ids", None),
        (
            {"files": [{"file_id": file_id}, {"file_id": "file-nope"}]},
            404,
            "files[1].file_id",
            None,
        ),
        ({"files": [{"attributes": {}}]}, 400, "files[0].file_id", None),
        (
            {"files": [{"file_id": file_id, "chunking_strategy": bad_chunking}]},
            400,
            "files[0].chunking_strategy.static.chunk_overlap_tokens",
            None,
        ),
        (
            {"file_ids": [file_id], "chunking_strategy": bad_chunking},
            400,
            "chunking_strategy.static.chunk_overlap_tokens",
            None,
        ),
        (
            {"file_ids": [file_id], "attributes": {f"k{i}": "v" for i in range(17)}},
            400,
            "attributes",
            None,
        ),
        (
            {"files": [{"file_id": file_id, "attributes": {"k": "v" * 513}}]},
            400,
            "files[0].attributes.k",
            None,
        ),
        ({"files": [{"file_id": file_id, "colour": "red"}]}, 400, "files[0].colour", None),
        ({"file_ids": [file_id], "colour": "red"}, 400, "colour", None),
        ({"file_ids": [file_id, 7]}, 400, "file_ids[1]", None),
    ]
    for body, status, param, code in refusals:
        with pytest.raises(openai.APIStatusError) as info:
            client.vector_stores.file_batches.create(store_id, extra_body=body)
        assert_api_error(info.value, status, "invalid_request_error", param=param)
        if code is not None:
            assert info.value.code == code, (body, info.value.body)
    assert counts(client.vector_stores.retrieve(store_id)) == (0, 0, 0, 0, 0)
    assert client.vector_stores.files.list(store_id).data == []
    with pytest.raises(openai.NotFoundError) as missing:
        client.vector_stores.file_batches.create("vs_nope", file_ids=[file_id])
    assert_api_error(missing.value, 404, "invalid_request_error", param="vector_store_id")


def test_unknown_batches_and_stores_are_404(client: openai.OpenAI) -> None:
    store_id, other_id = client.vector_stores.create().id, client.vector_stores.create().id
    batch = client.vector_stores.file_batches.upload_and_poll(
        vector_store_id=store_id, files=[("y.txt", b"words")], poll_interval_ms=POLL_MS
    )
    batches = client.vector_stores.file_batches
    calls: list[Callable[[str, str], object]] = [
        lambda b, s: batches.retrieve(b, vector_store_id=s),
        lambda b, s: batches.cancel(b, vector_store_id=s),
        lambda b, s: batches.list_files(b, vector_store_id=s),
    ]
    for call in calls:
        for batch_id, vector_store_id, param in (
            ("vsfb_nope", store_id, "batch_id"),
            (batch.id, other_id, "batch_id"),
            (batch.id, "vs_nope", "vector_store_id"),
            ("vsfb bad", store_id, "batch_id"),
        ):
            with pytest.raises(openai.NotFoundError) as info:
                call(batch_id, vector_store_id)
            assert_api_error(info.value, 404, "invalid_request_error", param=param)
    with pytest.raises(openai.BadRequestError) as refused:
        batches.list_files(batch.id, vector_store_id=store_id, filter="done")  # type: ignore[arg-type]
    assert_api_error(refused.value, 400, "invalid_request_error", param="filter")
    with pytest.raises(openai.BadRequestError) as refused:
        batches.list_files(batch.id, vector_store_id=store_id, after="file-nope")
    assert_api_error(refused.value, 400, "invalid_request_error", param="after")
    client.vector_stores.delete(store_id)
    with pytest.raises(openai.NotFoundError) as info:
        batches.retrieve(batch.id, vector_store_id=store_id)
    assert_api_error(info.value, 404, "invalid_request_error", param="vector_store_id")


def test_a_keyless_caller_is_refused_first(auth_server: ServerThread, make_http: MakeHttp) -> None:
    http = make_http(auth_server)
    path = "/v1/vector_stores/vs_any/file_batches/vsfb_any"
    for method, suffix in (("GET", ""), ("POST", "/cancel"), ("GET", "/files")):
        response = http.request(method, path + suffix, headers={"Authorization": ""})
        assert response.status_code == 401, response.text
    keyed = http.get(path, headers={"Authorization": f"Bearer {API_KEY}"})
    assert keyed.status_code == 404, keyed.text
    assert keyed.json()["error"]["param"] == "vector_store_id"


# Over gRPC


def test_batches_over_grpc(grpc_client: GrpcClient, client: openai.OpenAI) -> None:
    stub = grpc_client.vector_stores
    store = stub.CreateVectorStore(vector_stores_pb2.CreateVectorStoreRequest())
    file_id = upload(client, "g.md", MARKDOWN)
    request = vector_stores_pb2.CreateVectorStoreFileBatchRequest(vector_store_id=store.id)
    entry = request.files.add(file_id=file_id)
    entry.attributes["lang"].string_value = "en"
    created = stub.CreateVectorStoreFileBatch(request)
    assert created.id.startswith("vsfb_")
    assert created.vector_store_id == store.id
    assert counts(created)[4] == 1
    listed = stub.ListVectorStoreFileBatchFiles(
        vector_stores_pb2.ListVectorStoreFileBatchFilesRequest(
            vector_store_id=store.id, batch_id=created.id
        )
    )
    assert [(f.id, f.batch_id) for f in listed.data] == [(file_id, created.id)]
    assert listed.data[0].attributes["lang"].string_value == "en"
    fetched = stub.GetVectorStoreFileBatch(
        vector_stores_pb2.GetVectorStoreFileBatchRequest(
            vector_store_id=store.id, batch_id=created.id
        )
    )
    assert fetched.id == created.id
    refusals = [
        (vector_stores_pb2.CreateVectorStoreFileBatchRequest(vector_store_id=store.id), "file_ids"),
        (
            vector_stores_pb2.CreateVectorStoreFileBatchRequest(
                vector_store_id=store.id, file_ids=["file-nope"]
            ),
            "file_ids",
        ),
    ]
    codes = []
    for refused, param in refusals:
        with pytest.raises(grpc.RpcError) as info:
            stub.CreateVectorStoreFileBatch(refused)
        codes.append(info.value.code())
        assert rich_error(info.value).param == param
    assert codes == [grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND]
    with pytest.raises(grpc.RpcError) as missing:
        stub.CancelVectorStoreFileBatch(
            vector_stores_pb2.CancelVectorStoreFileBatchRequest(
                vector_store_id=store.id, batch_id="vsfb_nope"
            )
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert rich_error(missing.value).param == "batch_id"


# The Node SDK's helpers


@pytest.fixture(scope="module")
def node() -> str:
    return node_with_locked_packages()


def test_node_sdk_upload_and_poll_and_create_and_poll(
    node: str, session_server: ServerThread, client: openai.OpenAI
) -> None:
    seen = run_script(node, "file_batches.mjs", session_server.base_url).ok()
    store_id = seen["storeId"]
    uploaded, created = seen["uploaded"], seen["created"]
    assert uploaded["object"] == "vector_store.files_batch"
    assert uploaded["status"] == "completed"
    assert uploaded["fileCounts"] == {
        "in_progress": 0,
        "completed": 1,
        "failed": 1,
        "cancelled": 0,
        "total": 2,
    }
    assert created["status"] == "completed"
    assert created["fileCounts"]["completed"] == 1
    assert seen["attributes"] == {"source": "node", "pages": 3}
    listed = client.vector_stores.file_batches.list_files(uploaded["id"], vector_store_id=store_id)
    assert seen["listed"] == [
        {"id": f.id, "status": f.status, "code": f.last_error.code if f.last_error else None}
        for f in listed
    ]
    assert sorted(item["code"] or "" for item in seen["listed"]) == ["", "unsupported_file"]
    assert counts(client.vector_stores.retrieve(store_id)) == (0, 2, 1, 0, 3)


# On the store: the conditional writes themselves


async def _store_with_batch(
    store: SqlStore, file_ids: list[str], batch_id: str = "vsfb_a"
) -> Batch:
    if await store.get_vector_store("vs_a") is None:
        await store.create_vector_store(vector_stores_pb2.VectorStore(id="vs_a", created_at=1))
    chunking = common_pb2.ChunkingStrategy()
    files = [new_file("vs_a", f, chunking, {}, 1, batch_id) for f in file_ids]
    created = await store.create_vector_store_file_batch(
        Batch(id=batch_id, created_at=1, vector_store_id="vs_a"), files, NOW_MS
    )
    assert created is not None
    return created


def _outcome(file_id: str) -> VectorStoreFile:
    return VectorStoreFile(id=file_id, vector_store_id="vs_a", status=FILE_COMPLETED, usage_bytes=4)


async def test_a_file_cancelled_while_a_core_works_on_it_is_not_completed(store: SqlStore) -> None:
    created = await _store_with_batch(store, ["file-1", "file-2", "file-3"])
    assert (created.status, counts(created)) == (BATCH_IN_PROGRESS, (3, 0, 0, 0, 3))
    [held] = await store.claim_vector_store_files("core-a", NOW_MS, NOW_MS + HOUR_MS, 1)

    cancelled = await store.cancel_vector_store_file_batch("vs_a", "vsfb_a", NOW_MS)
    assert cancelled is not None
    assert (cancelled.status, counts(cancelled)) == (BATCH_IN_PROGRESS, (0, 0, 0, 3, 3))
    assert await store.claim_vector_store_files("core-b", NOW_MS, NOW_MS + HOUR_MS, 10) == []

    chunks = [NewChunk(0, "text", 1)]
    assert not await store.finish_vector_store_file("core-a", _outcome(held.id), chunks, 1)
    after = await store.get_vector_store_file("vs_a", held.id)
    assert after is not None
    assert (after.status, after.usage_bytes) == (FILE_CANCELLED, 0)
    assert await store.delete_file_chunks("vs_a", held.id) == 0, "no chunk was stored"
    ended = await store.get_vector_store_file_batch("vs_a", "vsfb_a", NOW_MS)
    assert ended is not None
    assert (ended.status, counts(ended)) == (BATCH_CANCELLED, (0, 0, 0, 3, 3))
    vector_store = await store.get_vector_store("vs_a")
    assert vector_store is not None
    assert counts(vector_store) == (0, 0, 0, 3, 3)


async def test_a_cancel_ends_when_the_busy_core_s_lease_runs_out(store: SqlStore) -> None:
    await _store_with_batch(store, ["file-1"])
    await store.claim_vector_store_files("core-a", NOW_MS, NOW_MS + 1000, 1)
    await store.cancel_vector_store_file_batch("vs_a", "vsfb_a", NOW_MS)
    busy = await store.get_vector_store_file_batch("vs_a", "vsfb_a", NOW_MS + 1000)
    over = await store.get_vector_store_file_batch("vs_a", "vsfb_a", NOW_MS + 1001)
    assert busy is not None
    assert over is not None
    assert (busy.status, over.status) == (BATCH_IN_PROGRESS, BATCH_CANCELLED)


async def test_re_adding_files_replaces_them_and_moves_them_to_the_new_batch(
    store: SqlStore,
) -> None:
    await _store_with_batch(store, ["file-1", "file-2"], "vsfb_old")
    claimed = await store.claim_vector_store_files("core-a", NOW_MS, NOW_MS + HOUR_MS, 2)
    assert sorted(f.id for f in claimed) == ["file-1", "file-2"]
    assert await store.finish_vector_store_file(
        "core-a", _outcome("file-1"), [NewChunk(0, "old", 1)], 1
    )
    newer = await _store_with_batch(store, ["file-1", "file-2"], "vsfb_new")
    assert (newer.status, counts(newer)) == (BATCH_IN_PROGRESS, (2, 0, 0, 0, 2))
    old = await store.get_vector_store_file_batch("vs_a", "vsfb_old", NOW_MS)
    assert old is not None
    assert (old.status, counts(old)) == (BATCH_COMPLETED, (0, 0, 0, 0, 0))
    assert await store.delete_file_chunks("vs_a", "file-1") == 0, "the old chunks went"
    assert not await store.finish_vector_store_file("core-a", _outcome("file-2"), [], 1), (
        "the old holder lost the file with its old row"
    )
    again = await store.claim_vector_store_files("core-b", NOW_MS, NOW_MS + HOUR_MS, 10)
    assert sorted((f.id, f.batch_id) for f in again) == [
        ("file-1", "vsfb_new"),
        ("file-2", "vsfb_new"),
    ]
    page = await store.list_vector_store_file_batch_files(
        "vs_a", "vsfb_new", PageQuery(limit=10), FILE_IN_PROGRESS
    )
    assert page is not None
    assert [f.id for f in page.items] == ["file-2", "file-1"]
    assert (
        await store.list_vector_store_file_batch_files("vs_a", "vsfb_nope", PageQuery(limit=10), 0)
        is None
    )


async def test_deleting_the_store_deletes_its_batches(store: SqlStore) -> None:
    await _store_with_batch(store, ["file-1"])
    assert await store.delete_vector_store("vs_a")
    assert await store.get_vector_store_file_batch("vs_a", "vsfb_a", NOW_MS) is None
    assert await store.cancel_vector_store_file_batch("vs_a", "vsfb_a", NOW_MS) is None
