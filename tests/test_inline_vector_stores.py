"""Vector stores made on the way, through both official SDKs (and gRPC where the SDKs cannot
go): `tool_resources.file_search.vector_stores` on assistants, threads and
create-thread-and-run, and message attachments for file_search, which give a thread a store of
its own. What takes text out of stores (deleting a file, expiry) is
`test_vector_store_cleanup`'s subject.
"""

from __future__ import annotations

from typing import Any

import grpc
import openai
import pytest
from harness import MakeClient, MakeServer, assert_api_error
from harness.grpc_client import GrpcClient, rich_error
from harness.server import ServerThread
from openai.types import FileObject
from runs.nodejs import node_with_locked_packages, run_script

from compat_core.v1 import assistants_pb2, common_pb2, vector_stores_pb2

DAY = 86_400
ECHO = "builtin/echo"
SAM = b"# Sam\n\nSam is the baker of the village. Sam bakes rye bread every morning.\n"
HARBOUR = b"# Harbour\n\nThe harbour holds fishing boats. Gulls circle the lighthouse at dusk.\n"
MILL = b"# Mill\n\nThe windmill grinds barley into flour when the wind blows from the sea.\n"
FILE_SEARCH: Any = [{"type": "file_search"}]


def upload(client: openai.OpenAI, name: str, data: bytes) -> FileObject:
    return client.files.create(file=(name, data), purpose="assistants")


def completed(client: openai.OpenAI, store_id: str, *files: FileObject) -> None:
    """Wait (the SDK's own poll helper, bounded) until each file of the store is completed."""
    for f in files:
        done = client.vector_stores.files.poll(
            f.id, vector_store_id=store_id, poll_interval_ms=50, max_wait_seconds=30
        )
        assert done.status == "completed", done.last_error


def store_of(resources: Any) -> str:
    assert resources is not None
    assert resources.file_search is not None
    [store_id] = resources.file_search.vector_store_ids
    assert store_id.startswith("vs_")
    return str(store_id)


def file_ids(client: openai.OpenAI, store_id: str) -> set[str]:
    return {f.id for f in client.vector_stores.files.list(store_id)}


def found(client: openai.OpenAI, store_id: str, query: str) -> list[str]:
    return [r.filename for r in client.vector_stores.search(store_id, query=query)]


# Inline stores on assistants, threads and create-thread-and-run


def test_an_assistant_creates_its_store_inline(client: openai.OpenAI, tag: str) -> None:
    sam = upload(client, "sam.md", SAM)
    static: Any = {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 50}
    raw = client.beta.assistants.with_raw_response.create(
        model=ECHO,
        tools=FILE_SEARCH,
        tool_resources={
            "file_search": {
                "vector_stores": [
                    {
                        "file_ids": [sam.id],
                        "metadata": {"tag": tag},
                        "chunking_strategy": {"type": "static", "static": static},
                    }
                ]
            }
        },
    )
    assert raw.http_response.json()["tool_resources"]["file_search"].keys() == {"vector_store_ids"}
    assistant = raw.parse()
    store_id = store_of(assistant.tool_resources)
    store = client.vector_stores.retrieve(store_id)
    assert store.metadata == {"tag": tag}
    assert (store.expires_after, store.expires_at) == (None, None)
    assert store.file_counts.total == 1
    completed(client, store_id, sam)
    stored = client.vector_stores.files.retrieve(sam.id, vector_store_id=store_id)
    assert stored.chunking_strategy is not None
    assert stored.chunking_strategy.type == "static"
    assert stored.chunking_strategy.static.max_chunk_size_tokens == 200
    assert found(client, store_id, "Who bakes bread?") == ["sam.md"]
    again = client.beta.assistants.retrieve(assistant.id)
    assert store_of(again.tool_resources) == store_id


def test_a_thread_creates_its_store_inline(client: openai.OpenAI) -> None:
    harbour = upload(client, "harbour.md", HARBOUR)
    thread = client.beta.threads.create(
        tool_resources={"file_search": {"vector_stores": [{"file_ids": [harbour.id]}]}}
    )
    store_id = store_of(thread.tool_resources)
    completed(client, store_id, harbour)
    stored = client.vector_stores.files.retrieve(harbour.id, vector_store_id=store_id)
    assert stored.chunking_strategy is not None
    assert stored.chunking_strategy.type == "static", "OpenAI answers `auto` by its sizes"
    assert stored.chunking_strategy.static.max_chunk_size_tokens == 800
    assert found(client, store_id, "gulls") == ["harbour.md"]


def test_inline_store_over_grpc(grpc_client: GrpcClient) -> None:
    spec = common_pb2.VectorStoreSpec(metadata={"via": "grpc"})
    created = grpc_client.assistants.CreateAssistant(
        assistants_pb2.CreateAssistantRequest(
            assistant=assistants_pb2.Assistant(
                model=ECHO,
                tool_resources=common_pb2.ToolResources(
                    file_search=common_pb2.FileSearchResources(vector_stores=[spec])
                ),
            )
        )
    )
    search = created.tool_resources.file_search
    assert list(search.vector_stores) == []
    [store_id] = search.vector_store_ids
    store = grpc_client.vector_stores.GetVectorStore(
        vector_stores_pb2.GetVectorStoreRequest(vector_store_id=store_id)
    )
    assert dict(store.metadata) == {"via": "grpc"}
    with pytest.raises(grpc.RpcError) as info:
        grpc_client.assistants.UpdateAssistant(_update_with_inline_store(created.id))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rich_error(info.value).param == "tool_resources.file_search.vector_stores"


def _update_with_inline_store(assistant_id: str) -> assistants_pb2.UpdateAssistantRequest:
    request = assistants_pb2.UpdateAssistantRequest()
    request.assistant.id = assistant_id
    request.assistant.tool_resources.file_search.vector_stores.add()
    request.update_mask.paths.append("tool_resources")
    return request


# Message attachments for file_search


def test_attachments_give_the_thread_a_store_that_expires_after_7_days(
    client: openai.OpenAI,
) -> None:
    sam, harbour, mill = (
        upload(client, n, d)
        for n, d in (("sam.md", SAM), ("harbour.md", HARBOUR), ("mill.md", MILL))
    )
    thread = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": "Who is Sam?",
                "attachments": [{"file_id": sam.id, "tools": FILE_SEARCH}],
            }
        ]
    )
    store_id = store_of(thread.tool_resources)
    store = client.vector_stores.retrieve(store_id)
    assert store.expires_after is not None
    assert (store.expires_after.anchor, store.expires_after.days) == ("last_active_at", 7)
    assert store.last_active_at is not None
    assert store.expires_at == store.last_active_at + 7 * DAY
    completed(client, store_id, sam)

    second = client.beta.threads.messages.create(
        thread.id,
        role="user",
        content="And the harbour?",
        attachments=[
            {"file_id": harbour.id, "tools": FILE_SEARCH},
            {"file_id": mill.id, "tools": [{"type": "code_interpreter"}]},
        ],
    )
    assert [a.file_id for a in second.attachments or []] == [harbour.id, mill.id]
    assert store_of(client.beta.threads.retrieve(thread.id).tool_resources) == store_id
    assert file_ids(client, store_id) == {sam.id, harbour.id}, "code_interpreter stays out"
    completed(client, store_id, harbour)
    assert found(client, store_id, "lighthouse") == ["harbour.md"]


def test_attachments_go_to_the_store_the_thread_names(client: openai.OpenAI) -> None:
    harbour = upload(client, "harbour.md", HARBOUR)
    mine = client.vector_stores.create(name="mine").id
    thread = client.beta.threads.create(
        tool_resources={"file_search": {"vector_store_ids": [mine]}},
        messages=[
            {
                "role": "user",
                "content": "Look",
                "attachments": [{"file_id": harbour.id, "tools": FILE_SEARCH}],
            }
        ],
    )
    assert store_of(thread.tool_resources) == mine
    assert file_ids(client, mine) == {harbour.id}
    assert client.vector_stores.retrieve(mine).expires_after is None, "the store stays the user's"


def test_create_thread_and_run_with_an_inline_store_and_attachments(
    client: openai.OpenAI,
) -> None:
    sam, mill = upload(client, "sam.md", SAM), upload(client, "mill.md", MILL)
    assistant = client.beta.assistants.create(model=ECHO, tools=FILE_SEARCH)
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={
            "tool_resources": {"file_search": {"vector_stores": [{"file_ids": [sam.id]}]}},
            "messages": [
                {
                    "role": "user",
                    "content": "windmill",
                    "attachments": [{"file_id": mill.id, "tools": FILE_SEARCH}],
                }
            ],
        },
        poll_interval_ms=50,
    )
    assert run.status == "completed"
    thread = client.beta.threads.retrieve(run.thread_id)
    store_id = store_of(thread.tool_resources)
    assert file_ids(client, store_id) == {sam.id, mill.id}
    assert client.vector_stores.retrieve(store_id).expires_after is None
    completed(client, store_id, sam, mill)
    assert found(client, store_id, "barley flour") == ["mill.md"]


def test_a_runs_additional_messages_attach_files_the_run_then_searches(
    client: openai.OpenAI,
) -> None:
    mill, harbour = upload(client, "mill.md", MILL), upload(client, "harbour.md", HARBOUR)
    assistant = client.beta.assistants.create(model=ECHO, tools=FILE_SEARCH)
    thread = client.beta.threads.create()

    def run_asking(query: str, file: FileObject) -> list[Any]:
        """Run with one additional message that attaches `file` and searches for `query`;
        the results of the run's one file_search call, once the run completed with a reply
        that cites `file`."""
        run = client.beta.threads.runs.create_and_poll(
            thread_id=thread.id,
            assistant_id=assistant.id,
            additional_messages=[
                {
                    "role": "user",
                    "content": f'/call file_search {{"query": "{query}"}}',
                    "attachments": [{"file_id": file.id, "tools": FILE_SEARCH}],
                }
            ],
            poll_interval_ms=50,
        )
        assert run.status == "completed", run.last_error
        calls = [
            call
            for step in client.beta.threads.runs.steps.list(run.id, thread_id=thread.id)
            if step.step_details.type == "tool_calls"
            for call in step.step_details.tool_calls
        ]
        [call] = calls
        assert call.type == "file_search", call
        [reply] = client.beta.threads.messages.list(thread.id, run_id=run.id)
        cited = [a for a in reply.content[0].text.annotations if a.type == "file_citation"]  # type: ignore[union-attr]
        assert [a.file_citation.file_id for a in cited] == [file.id]  # type: ignore[union-attr]
        return list(call.file_search.results or [])

    [first] = run_asking("barley flour", mill)
    assert (first.file_id, first.file_name) == (mill.id, "mill.md")
    store_id = store_of(client.beta.threads.retrieve(thread.id).tool_resources)
    store = client.vector_stores.retrieve(store_id)
    assert store.expires_after is not None
    assert (store.expires_after.anchor, store.expires_after.days) == ("last_active_at", 7)

    [second] = run_asking("lighthouse gulls", harbour)
    assert second.file_id == harbour.id
    assert store_of(client.beta.threads.retrieve(thread.id).tool_resources) == store_id
    assert file_ids(client, store_id) == {mill.id, harbour.id}


def test_a_message_or_run_refused_leaves_no_store_behind(
    make_server: MakeServer, make_client: MakeClient
) -> None:
    client = make_client(make_server())
    sam = upload(client, "sam.md", SAM)
    assistant = client.beta.assistants.create(
        model=ECHO,
        tools=[{"type": "function", "function": {"name": "lookup"}}],
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "/call lookup {}"}])
    waiting = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert waiting.status == "requires_action"
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.threads.messages.create(
            thread.id,
            role="user",
            content="too soon",
            attachments=[{"file_id": sam.id, "tools": FILE_SEARCH}],
        )
    assert_api_error(info.value, 400, "invalid_request_error", param="thread_id")
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.threads.runs.create(
            thread.id,
            assistant_id=assistant.id,
            additional_messages=[
                {
                    "role": "user",
                    "content": "a second run",
                    "attachments": [{"file_id": sam.id, "tools": FILE_SEARCH}],
                }
            ],
        )
    assert_api_error(info.value, 400, "invalid_request_error", param="thread_id")
    assert list(client.vector_stores.list()) == []
    assert client.beta.threads.retrieve(thread.id).tool_resources.file_search is None  # type: ignore[union-attr]
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.create(
            model=ECHO,
            tool_resources={
                "file_search": {"vector_stores": [{"file_ids": [sam.id, "file-missing"]}]}
            },
        )
    assert list(client.vector_stores.list()) == []


# Bad input


_STATIC_TOO_MUCH_OVERLAP: Any = {
    "type": "static",
    "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 51},
}
_AT = "tool_resources.file_search"


@pytest.mark.parametrize(
    ("file_search", "param"),
    [
        ({"vector_store_ids": ["vs_x"], "vector_stores": [{}]}, _AT),
        ({"vector_stores": [{}, {}]}, f"{_AT}.vector_stores"),
        (
            {"vector_stores": [{"chunking_strategy": _STATIC_TOO_MUCH_OVERLAP}]},
            f"{_AT}.vector_stores[0].chunking_strategy.static.chunk_overlap_tokens",
        ),
        (
            {"vector_stores": [{"metadata": {f"k{i}": "v" for i in range(17)}}]},
            f"{_AT}.vector_stores[0].metadata",
        ),
        (
            {"vector_stores": [{"file_ids": [f"file-{i}" for i in range(501)]}]},
            f"{_AT}.vector_stores[0].file_ids",
        ),
    ],
)
def test_bad_inline_stores_are_400_naming_the_field(
    client: openai.OpenAI, file_search: Any, param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.assistants.create(model=ECHO, tool_resources={"file_search": file_search})
    assert_api_error(info.value, 400, "invalid_request_error", param=param)
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.threads.create(tool_resources={"file_search": file_search})
    assert_api_error(info.value, 400, "invalid_request_error", param=param)


def test_bad_inline_stores_in_create_thread_and_run_name_the_thread(
    client: openai.OpenAI,
) -> None:
    assistant = client.beta.assistants.create(model=ECHO)
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.threads.create_and_run(
            assistant_id=assistant.id,
            thread={
                "tool_resources": {
                    "file_search": {
                        "vector_stores": [{"chunking_strategy": _STATIC_TOO_MUCH_OVERLAP}]
                    }
                }
            },
        )
    assert_api_error(
        info.value,
        400,
        "invalid_request_error",
        param="thread.tool_resources.file_search.vector_stores[0].chunking_strategy.static."
        "chunk_overlap_tokens",
    )
    with pytest.raises(openai.NotFoundError) as missing:
        client.beta.threads.create_and_run(
            assistant_id=assistant.id,
            thread={
                "tool_resources": {"file_search": {"vector_stores": [{"file_ids": ["file-nope"]}]}}
            },
        )
    assert_api_error(
        missing.value,
        404,
        "invalid_request_error",
        param="thread.tool_resources.file_search.vector_stores[0].file_ids",
    )


def test_inline_stores_are_refused_on_update(client: openai.OpenAI) -> None:
    assistant = client.beta.assistants.create(model=ECHO)
    resources: Any = {"file_search": {"vector_stores": [{"file_ids": []}]}}
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.assistants.update(assistant.id, tool_resources=resources)
    assert_api_error(info.value, 400, "invalid_request_error", param=f"{_AT}.vector_stores")
    thread = client.beta.threads.create()
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.threads.update(thread.id, tool_resources=resources)
    assert_api_error(info.value, 400, "invalid_request_error", param=f"{_AT}.vector_stores")


# The Node SDK


def test_node_sdk_thread_and_run_attachments_get_the_threads_store(
    session_server: ServerThread, client: openai.OpenAI
) -> None:
    output = run_script(
        node_with_locked_packages(),
        "inline_stores.mjs",
        session_server.base_url,
        env={"OPENAI_API_KEY": "test"},
    ).ok()
    [store_id] = output["vectorStoreIds"]
    assert store_id.startswith("vs_")
    thread = client.beta.threads.retrieve(output["threadId"])
    assert store_of(thread.tool_resources) == store_id
    assert output["store"]["expires_after"] == {"anchor": "last_active_at", "days": 7}
    assert output["store"]["expires_at"] == output["store"]["last_active_at"] + 7 * DAY
    assert output["fileStatus"] == "completed"
    assert output["found"] == ["mill.md"]
    run = output["run"]
    assert (run["status"], run["found"]) == ("completed", ["harbour.md"])
    assert set(run["storeFileIds"]) == {output["fileId"], run["fileId"]}
    assert file_ids(client, store_id) == {output["fileId"], run["fileId"]}
