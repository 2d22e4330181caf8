"""Vector stores over HTTP with the official SDK and over gRPC: the store objects themselves.

Their files are `test_vector_store_files`' subject, their batches of files
`test_vector_store_batches`', their search `test_vector_store_search`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import openai
import pytest
from harness import Clock, MakeClient, MakeServer, assert_api_error
from harness.grpc_client import GrpcClient, rich_error
from openai.types import VectorStore

from compat_core.services.vector_store_files import VectorStoreFiles
from compat_core.services.vector_stores import VectorStoresService
from compat_core.store import BlobStore, SqlStore
from compat_core.v1 import vector_stores_pb2

DAY = 86_400
TOTAL = 25


def active(store: VectorStore) -> int:
    """`last_active_at`, which the SDK types as optional and the server always answers."""
    assert store.last_active_at is not None
    return store.last_active_at


def test_create_returns_everything_it_was_given(client: openai.OpenAI, tag: str) -> None:
    clock = Clock()
    created = client.vector_stores.create(
        name="Support FAQ",
        metadata={"tag": tag},
        expires_after={"anchor": "last_active_at", "days": 7},
    )
    assert created.id.startswith("vs_")
    assert len(created.id) == len("vs_") + 24
    assert created.object == "vector_store"
    clock.check(created.created_at)
    assert created.name == "Support FAQ"
    assert created.metadata == {"tag": tag}
    assert created.status == "completed"
    assert created.usage_bytes == 0
    counts = created.file_counts
    assert (counts.in_progress, counts.completed, counts.failed, counts.cancelled) == (0, 0, 0, 0)
    assert counts.total == 0
    assert created.last_active_at == created.created_at
    assert created.expires_after is not None
    assert (created.expires_after.anchor, created.expires_after.days) == ("last_active_at", 7)
    assert created.expires_at == active(created) + 7 * DAY

    fetched = client.vector_stores.retrieve(created.id)
    assert active(fetched) >= active(created)
    assert fetched.expires_at == active(fetched) + 7 * DAY
    volatile = {"last_active_at", "expires_at"}
    assert fetched.model_dump(exclude=volatile) == created.model_dump(exclude=volatile)


def test_defaults_of_a_bare_store(client: openai.OpenAI) -> None:
    created = client.vector_stores.create()
    assert created.name == ""
    assert created.metadata == {}
    assert created.expires_after is None
    assert created.expires_at is None
    assert created.status == "completed"


def test_empty_file_ids_are_accepted(client: openai.OpenAI) -> None:
    assert client.vector_stores.create(file_ids=[]).file_counts.total == 0


def test_update_changes_only_what_it_names(client: openai.OpenAI, tag: str) -> None:
    created = client.vector_stores.create(name="before", metadata={"tag": tag})
    renamed = client.vector_stores.update(created.id, name="after")
    assert renamed.name == "after"
    assert renamed.metadata == {"tag": tag}
    expiring = client.vector_stores.update(
        created.id, expires_after={"anchor": "last_active_at", "days": 365}
    )
    assert expiring.name == "after"
    assert expiring.expires_at == active(expiring) + 365 * DAY
    cleared = client.vector_stores.update(
        created.id, name=None, expires_after=None, metadata={"k": "v"}
    )
    assert cleared.name == ""
    assert cleared.expires_after is None
    assert cleared.expires_at is None
    assert cleared.metadata == {"k": "v"}
    assert client.vector_stores.retrieve(created.id).metadata == {"k": "v"}


def test_delete_then_every_call_is_404(client: openai.OpenAI) -> None:
    store_id = client.vector_stores.create(name="doomed").id
    deleted = client.vector_stores.delete(store_id)
    assert (deleted.id, deleted.object, deleted.deleted) == (
        store_id,
        "vector_store.deleted",
        True,
    )
    for call in (
        lambda: client.vector_stores.retrieve(store_id),
        lambda: client.vector_stores.update(store_id, name="x"),
        lambda: client.vector_stores.delete(store_id),
    ):
        with pytest.raises(openai.NotFoundError) as info:
            call()
        assert_api_error(info.value, 404, "invalid_request_error", param="vector_store_id")
        assert store_id in info.value.message


@pytest.mark.parametrize("store_id", ["vs_unknown", "vs_" + "x" * 80, "vs bad id"])
def test_unknown_ids_are_404(client: openai.OpenAI, store_id: str) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.vector_stores.retrieve(store_id)
    assert_api_error(info.value, 404, "invalid_request_error", param="vector_store_id")


@pytest.fixture
def paged(make_server: MakeServer, make_client: MakeClient) -> tuple[openai.OpenAI, list[str]]:
    """A fresh server holding exactly TOTAL vector stores; their IDs oldest first."""
    client = make_client(make_server())
    return client, [client.vector_stores.create(name=f"n{i}").id for i in range(TOTAL)]


def test_auto_pagination_yields_each_once_in_order(paged: tuple[openai.OpenAI, list[str]]) -> None:
    client, ids = paged
    newest_first = client.vector_stores.list(limit=10)
    assert [v.id for v in newest_first] == ids[::-1]
    assert len(list(newest_first.iter_pages())) == 3, "has_more must be false on the last page"
    assert [v.id for v in client.vector_stores.list(limit=10, order="asc")] == ids


def test_paging_with_cursors(paged: tuple[openai.OpenAI, list[str]]) -> None:
    client, ids = paged
    page = client.vector_stores.list(limit=10, order="asc", after=ids[9])
    assert [v.id for v in page.data] == ids[10:20]
    assert page.has_more is True
    page = client.vector_stores.list(limit=5, order="asc", before=ids[5])
    assert [v.id for v in page.data] == ids[0:5]
    assert page.has_more is False
    default = client.vector_stores.list()
    assert [v.id for v in default.data] == ids[::-1][:20]
    client.vector_stores.delete(ids[3])
    listed = [v.id for v in client.vector_stores.list(limit=100, order="asc").data]
    assert listed == ids[:3] + ids[4:]


def test_unknown_cursor_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.vector_stores.list(after="vs_nothing")
    assert_api_error(info.value, 400, "invalid_request_error", param="after")


def test_metadata_limits(client: openai.OpenAI) -> None:
    at_limits = {f"k{i:02d}" + "k" * 61: "v" * 512 for i in range(16)}
    assert client.vector_stores.create(metadata=at_limits).metadata == at_limits
    for metadata, param in (
        ({f"k{i}": "v" for i in range(17)}, "metadata"),
        ({"k" * 65: "v"}, "metadata"),
        ({"k": "v" * 513}, "metadata"),
    ):
        with pytest.raises(openai.BadRequestError) as info:
            client.vector_stores.create(metadata=metadata)
        assert_api_error(info.value, 400, "invalid_request_error", param_prefix=param)
    store_id = client.vector_stores.create().id
    with pytest.raises(openai.BadRequestError) as info:
        client.vector_stores.update(store_id, metadata={f"k{i}": "v" for i in range(17)})
    assert_api_error(info.value, 400, "invalid_request_error", param="metadata")


def test_name_at_most_256_characters(client: openai.OpenAI) -> None:
    assert client.vector_stores.create(name="n" * 256).name == "n" * 256
    with pytest.raises(openai.BadRequestError) as info:
        client.vector_stores.create(name="n" * 257)
    assert_api_error(info.value, 400, "invalid_request_error", param="name")


@pytest.mark.parametrize(
    ("expires_after", "param"),
    [
        ({"anchor": "created_at", "days": 3}, "expires_after.anchor"),
        ({"anchor": "last_active_at", "days": 0}, "expires_after.days"),
        ({"anchor": "last_active_at", "days": 366}, "expires_after.days"),
        ({"anchor": "last_active_at", "days": "3"}, "expires_after.days"),
        ({"anchor": "last_active_at"}, "expires_after.days"),
        ({"days": 3}, "expires_after.anchor"),
        ({"anchor": "last_active_at", "days": 3, "extra": 1}, "expires_after.extra"),
    ],
)
def test_expires_after_is_checked(
    client: openai.OpenAI, expires_after: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.vector_stores.create(expires_after=expires_after)  # type: ignore[arg-type]
    assert_api_error(info.value, 400, "invalid_request_error", param=param)
    store_id = client.vector_stores.create().id
    with pytest.raises(openai.BadRequestError) as info:
        client.vector_stores.update(store_id, expires_after=expires_after)  # type: ignore[arg-type]
    assert_api_error(info.value, 400, "invalid_request_error", param=param)


def test_expires_after_bounds_are_accepted(client: openai.OpenAI) -> None:
    for days in (1, 365):
        created = client.vector_stores.create(
            expires_after={"anchor": "last_active_at", "days": days}
        )
        assert created.expires_at == active(created) + days * DAY


def test_file_ids_and_chunking_on_create_are_checked(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.vector_stores.create(name="never", file_ids=["file-abc"])
    assert_api_error(missing.value, 404, "invalid_request_error", param="file_ids")
    newest = client.vector_stores.list(limit=1).data
    assert all(v.name != "never" for v in newest), "a refused create leaves no store behind"
    with pytest.raises(openai.BadRequestError) as info:
        client.vector_stores.create(
            chunking_strategy={
                "type": "static",
                "static": {"max_chunk_size_tokens": 50, "chunk_overlap_tokens": 10},
            }
        )
    assert_api_error(
        info.value,
        400,
        "invalid_request_error",
        param="chunking_strategy.static.max_chunk_size_tokens",
    )
    assert client.vector_stores.create(chunking_strategy={"type": "auto"}).status == "completed"


def test_unknown_fields_are_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.vector_stores.create(extra_body={"colour": "red"})
    assert_api_error(info.value, 400, "invalid_request_error", param="colour")
    store_id = client.vector_stores.create().id
    with pytest.raises(openai.BadRequestError) as info:
        client.vector_stores.update(store_id, extra_body={"description": "x"})
    assert_api_error(info.value, 400, "invalid_request_error", param="description")


# Over gRPC


def test_lifecycle_over_grpc(grpc_client: GrpcClient) -> None:
    stub = grpc_client.vector_stores
    created = stub.CreateVectorStore(
        vector_stores_pb2.CreateVectorStoreRequest(
            vector_store=vector_stores_pb2.VectorStore(name="g", metadata={"a": "1"})
        )
    )
    assert created.id.startswith("vs_")
    assert created.status == vector_stores_pb2.VECTOR_STORE_STATUS_COMPLETED
    assert not created.HasField("expires_at")
    update = vector_stores_pb2.UpdateVectorStoreRequest(
        vector_store=vector_stores_pb2.VectorStore(
            id=created.id,
            name="ignored",
            expires_after=vector_stores_pb2.VectorStoreExpirationAfter(
                anchor="last_active_at", days=2
            ),
        )
    )
    update.update_mask.paths.append("expires_after")
    updated = stub.UpdateVectorStore(update)
    assert updated.name == "g", "a field the mask does not name stays"
    assert updated.expires_at == updated.last_active_at + 2 * DAY
    fetched = stub.GetVectorStore(
        vector_stores_pb2.GetVectorStoreRequest(vector_store_id=created.id)
    )
    assert fetched.metadata == {"a": "1"}
    listed = stub.ListVectorStores(vector_stores_pb2.ListVectorStoresRequest(limit=100))
    assert created.id in [v.id for v in listed.data]
    status = stub.DeleteVectorStore(
        vector_stores_pb2.DeleteVectorStoreRequest(vector_store_id=created.id)
    )
    assert status.deleted
    with pytest.raises(grpc.RpcError) as info:
        stub.GetVectorStore(vector_stores_pb2.GetVectorStoreRequest(vector_store_id=created.id))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_update_mask_outside_the_updatable_fields_is_refused(grpc_client: GrpcClient) -> None:
    stub = grpc_client.vector_stores
    created = stub.CreateVectorStore(vector_stores_pb2.CreateVectorStoreRequest())
    update = vector_stores_pb2.UpdateVectorStoreRequest(
        vector_store=vector_stores_pb2.VectorStore(id=created.id, usage_bytes=5)
    )
    update.update_mask.paths.append("usage_bytes")
    with pytest.raises(grpc.RpcError) as info:
        stub.UpdateVectorStore(update)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_unknown_file_ids_over_grpc_are_not_found(grpc_client: GrpcClient) -> None:
    with pytest.raises(grpc.RpcError) as info:
        grpc_client.vector_stores.CreateVectorStore(
            vector_stores_pb2.CreateVectorStoreRequest(file_ids=["file-abc"])
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert rich_error(info.value).code == grpc.StatusCode.NOT_FOUND


# Activity and expiry, on the service and a real store (no waiting on the clock)


async def _aged(store: SqlStore, service: VectorStoresService, days: int, age: int) -> str:
    """A store whose expiry policy is `days` and that was last active `age` seconds ago."""
    created = await service.CreateVectorStore(
        vector_stores_pb2.CreateVectorStoreRequest(
            vector_store=vector_stores_pb2.VectorStore(
                expires_after=vector_stores_pb2.VectorStoreExpirationAfter(
                    anchor="last_active_at", days=days
                )
            )
        ),
        None,
    )

    def age_it(v: vector_stores_pb2.VectorStore) -> None:
        v.last_active_at -= age
        v.expires_at = v.last_active_at + days * DAY

    assert await store.update_vector_store(created.id, age_it) is not None
    return created.id


def _service(store: SqlStore, files_dir: Path) -> VectorStoresService:
    """The servicer alone; nothing here adds files, so nothing needs waking."""
    return VectorStoresService(store, VectorStoreFiles(store, BlobStore(files_dir), lambda: None))


async def test_reading_a_store_is_not_using_it(store: SqlStore, tmp_path: Path) -> None:
    service = _service(store, tmp_path)
    store_id = await _aged(store, service, days=1, age=3600)
    aged = await store.get_vector_store(store_id)
    assert aged is not None
    fetched = await service.GetVectorStore(
        vector_stores_pb2.GetVectorStoreRequest(vector_store_id=store_id), None
    )
    listed = await service.ListVectorStores(vector_stores_pb2.ListVectorStoresRequest(), None)
    assert (fetched.last_active_at, fetched.expires_at) == (aged.last_active_at, aged.expires_at)
    assert [v.last_active_at for v in listed.data] == [aged.last_active_at]
    assert await store.get_vector_store(store_id) == aged, "a read writes nothing"


async def test_a_store_past_its_expiry_is_expired_and_stays_so(
    store: SqlStore, tmp_path: Path
) -> None:
    service = _service(store, tmp_path)
    store_id = await _aged(store, service, days=1, age=DAY + 10)
    listed = await service.ListVectorStores(vector_stores_pb2.ListVectorStoresRequest(), None)
    assert [v.status for v in listed.data] == [vector_stores_pb2.VECTOR_STORE_STATUS_EXPIRED]
    request = vector_stores_pb2.GetVectorStoreRequest(vector_store_id=store_id)
    fetched = await service.GetVectorStore(request, None)
    assert fetched.status == vector_stores_pb2.VECTOR_STORE_STATUS_EXPIRED
    assert fetched.expires_at < Clock().start, "using an expired store does not revive it"


# Referenced from tool_resources


def test_assistants_and_threads_can_name_a_real_store(client: openai.OpenAI) -> None:
    store_id = client.vector_stores.create(name="kb").id
    resources: Any = {"file_search": {"vector_store_ids": [store_id]}}
    assistant = client.beta.assistants.create(model="builtin/echo", tool_resources=resources)
    assert assistant.tool_resources is not None
    assert assistant.tool_resources.file_search is not None
    assert assistant.tool_resources.file_search.vector_store_ids == [store_id]
    thread = client.beta.threads.create(tool_resources=resources)
    assert thread.tool_resources is not None
    assert thread.tool_resources.file_search is not None
    assert thread.tool_resources.file_search.vector_store_ids == [store_id]


def test_a_deleted_or_unknown_store_in_tool_resources_is_404(client: openai.OpenAI) -> None:
    store_id = client.vector_stores.create().id
    client.vector_stores.delete(store_id)
    for missing in (store_id, "vs_nothing", "not an id"):
        with pytest.raises(openai.NotFoundError) as info:
            client.beta.assistants.create(
                model="builtin/echo",
                tool_resources={"file_search": {"vector_store_ids": [missing]}},
            )
        assert_api_error(
            info.value,
            404,
            "invalid_request_error",
            param="tool_resources.file_search.vector_store_ids[0]",
        )
