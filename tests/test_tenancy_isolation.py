"""Two projects on one server: each answers the other's IDs exactly as it answers missing ones.

One server (its own database; SQLite, or PostgreSQL in that pass) with a `COMPAT_API_KEYS`
key and two projects whose keys are made through the store, as `assistants-compat keys
create` makes them. Each project gets the same objects (a file, a vector store holding it, a
batch, an assistant, a thread with a message, a completed run and its step). Then project B
drives every route (the SDK over HTTP) and RPC of project A's objects, and each outcome is
compared with the outcome of the same call on freshly minted IDs of the same shapes: same
status, same body once the IDs are blanked out, and A's objects read the same after each
call as before it. A cursor of A's is an unknown cursor to B;
references to A's objects inside B's requests are refused as missing ones.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx2
import openai
import pytest
from harness.grpc_client import GrpcClient, bearer, rich_error
from harness.server import ServerThread, database_url, drop_database

from compat_core import ids, tenancy
from compat_core.keyring import KeyRing, project_named
from compat_core.store import create_store
from compat_core.v1 import (
    assistants_pb2,
    files_pb2,
    messages_pb2,
    runs_pb2,
    threads_pb2,
    vector_stores_pb2,
)

CONFIG_KEY = "k-default"
POLL_MS = 20
_ID_TAIL = 24


@dataclass
class Tenant:
    project_id: str
    key: str
    client: openai.OpenAI
    # Role ("assistant", "thread", …) to the ID of this project's object.
    ids: dict[str, str] = field(default_factory=dict)


@dataclass
class Shared:
    server: ServerThread
    a: Tenant
    b: Tenant


async def _make_projects(url: str) -> dict[str, tuple[str, str]]:
    """Two projects and a key each, made in the server's database as the CLI makes them."""
    store = create_store(url)
    await store.open()
    made = {}
    try:
        keys = KeyRing(store, ())
        for name in ("team-a", "team-b"):
            project = await project_named(store, name, create=True)
            assert project is not None
            _, key = await keys.create(project.id, "isolation tests")
            made[name] = (project.id, key)
        await keys.close()
    finally:
        await store.close()
    return made


def _populate(tenant: Tenant) -> None:
    client, made = tenant.client, tenant.ids
    upload = client.files.create(file=("notes.txt", b"alpha beta gamma"), purpose="assistants")
    made["file"] = upload.id
    store = client.vector_stores.create(name="docs", file_ids=[upload.id])
    made["vector_store"] = store.id
    batch = client.vector_stores.file_batches.create(vector_store_id=store.id, file_ids=[upload.id])
    made["batch"] = batch.id
    assistant = client.beta.assistants.create(
        model="gpt-4o-mini",
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
    )
    made["assistant"] = assistant.id
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hello"}])
    made["thread"] = thread.id
    made["message"] = client.beta.threads.messages.list(thread.id).data[0].id
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=POLL_MS
    )
    assert run.status == "completed", run.last_error
    made["run"] = run.id
    made["step"] = (
        client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id).data[0].id
    )


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    directory: Path = tmp_path_factory.mktemp("tenancy")
    server = ServerThread(database_url=database_url(directory), api_keys=[CONFIG_KEY]).start()
    clients: list[openai.OpenAI] = []
    try:
        made = asyncio.run(_make_projects(server.database_url))
        tenants = []
        for name in ("team-a", "team-b"):
            project_id, key = made[name]
            client = openai.OpenAI(
                base_url=server.base_url,
                api_key=key,
                max_retries=0,
                http_client=httpx2.Client(timeout=60.0),
            )
            clients.append(client)
            tenant = Tenant(project_id, key, client)
            _populate(tenant)
            tenants.append(tenant)
        yield Shared(server, tenants[0], tenants[1])
    finally:
        for client in clients:
            client.close()
        server.stop()
        drop_database(server.database_url)


def _missing_like(object_id: str) -> str:
    """A fresh ID of the same shape (prefix and length) that names nothing."""
    return ids.new_id(object_id[:-_ID_TAIL])


def _blank(text: str, named: Mapping[str, str]) -> str:
    for role, object_id in named.items():
        text = text.replace(object_id, f"<{role}>")
    return text


def _http_outcome(call: Callable[[], Any], named: Mapping[str, str]) -> tuple[Any, ...]:
    """What a call answered: its error's status and body, or its result, IDs blanked."""
    try:
        result = call()
    except openai.APIStatusError as exc:
        return ("error", exc.status_code, _blank(repr(exc.body), named))
    if hasattr(result, "data"):
        return ("page", [item.id for item in result.data], result.has_more)
    return ("ok", _blank(repr(result), named))


def _same_as_missing(
    call: Callable[[Mapping[str, str]], Any], foreign: Mapping[str, str]
) -> tuple[Any, ...]:
    missing = {role: _missing_like(object_id) for role, object_id in foreign.items()}
    answered = _http_outcome(lambda: call(foreign), foreign)
    expected = _http_outcome(lambda: call(missing), missing)
    assert answered == expected
    return answered


def _snapshot(tenant: Tenant) -> tuple[Any, ...]:
    """Everything of a project's objects that the other project's calls could change."""
    client, i = tenant.client, tenant.ids
    store = client.vector_stores.retrieve(i["vector_store"])
    return (
        client.beta.assistants.retrieve(i["assistant"]).model_dump(),
        client.beta.threads.retrieve(i["thread"]).model_dump(),
        [m.model_dump() for m in client.beta.threads.messages.list(i["thread"]).data],
        [r.model_dump() for r in client.beta.threads.runs.list(i["thread"]).data],
        client.files.retrieve(i["file"]).model_dump(),
        (store.name, store.file_counts.model_dump(), store.status),
        [f.id for f in client.vector_stores.files.list(i["vector_store"]).data],
        client.vector_stores.file_batches.retrieve(
            i["batch"], vector_store_id=i["vector_store"]
        ).model_dump(),
    )


# Every route of one project's object, by the other project (the SDK over HTTP). Each takes
# the roles of the foreign IDs it uses; B's own objects come from the tenant.
HttpCase = tuple[str, tuple[str, ...], Callable[[Tenant, Mapping[str, str]], Any]]
HTTP_CASES: list[HttpCase] = [
    (
        "get assistant",
        ("assistant",),
        lambda b, i: b.client.beta.assistants.retrieve(i["assistant"]),
    ),
    (
        "update assistant",
        ("assistant",),
        lambda b, i: b.client.beta.assistants.update(i["assistant"], name="taken"),
    ),
    (
        "delete assistant",
        ("assistant",),
        lambda b, i: b.client.beta.assistants.delete(i["assistant"]),
    ),
    ("get thread", ("thread",), lambda b, i: b.client.beta.threads.retrieve(i["thread"])),
    (
        "update thread",
        ("thread",),
        lambda b, i: b.client.beta.threads.update(i["thread"], metadata={"x": "y"}),
    ),
    ("delete thread", ("thread",), lambda b, i: b.client.beta.threads.delete(i["thread"])),
    (
        "create message",
        ("thread",),
        lambda b, i: b.client.beta.threads.messages.create(i["thread"], role="user", content="x"),
    ),
    ("list messages", ("thread",), lambda b, i: b.client.beta.threads.messages.list(i["thread"])),
    (
        "get message",
        ("thread", "message"),
        lambda b, i: b.client.beta.threads.messages.retrieve(i["message"], thread_id=i["thread"]),
    ),
    (
        "get message via own thread",
        ("message",),
        lambda b, i: b.client.beta.threads.messages.retrieve(
            i["message"], thread_id=b.ids["thread"]
        ),
    ),
    (
        "update message",
        ("thread", "message"),
        lambda b, i: b.client.beta.threads.messages.update(
            i["message"], thread_id=i["thread"], metadata={"x": "y"}
        ),
    ),
    (
        "delete message",
        ("thread", "message"),
        lambda b, i: b.client.beta.threads.messages.delete(i["message"], thread_id=i["thread"]),
    ),
    (
        "create run on foreign thread",
        ("thread",),
        lambda b, i: b.client.beta.threads.runs.create(
            i["thread"], assistant_id=b.ids["assistant"]
        ),
    ),
    (
        "create run with foreign assistant",
        ("assistant",),
        lambda b, i: b.client.beta.threads.runs.create(
            b.ids["thread"], assistant_id=i["assistant"]
        ),
    ),
    (
        "create thread and run with foreign assistant",
        ("assistant",),
        lambda b, i: b.client.beta.threads.create_and_run(assistant_id=i["assistant"]),
    ),
    (
        "create run streamed on foreign thread",
        ("thread",),
        lambda b, i: [
            event.event
            for event in b.client.beta.threads.runs.create(
                i["thread"], assistant_id=b.ids["assistant"], stream=True
            )
        ],
    ),
    (
        "submit tool outputs streamed",
        ("thread", "run"),
        lambda b, i: [
            event.event
            for event in b.client.beta.threads.runs.submit_tool_outputs(
                i["run"],
                thread_id=i["thread"],
                tool_outputs=[{"tool_call_id": "call_x", "output": ""}],
                stream=True,
            )
        ],
    ),
    ("list runs", ("thread",), lambda b, i: b.client.beta.threads.runs.list(i["thread"])),
    (
        "get run",
        ("thread", "run"),
        lambda b, i: b.client.beta.threads.runs.retrieve(i["run"], thread_id=i["thread"]),
    ),
    (
        "update run",
        ("thread", "run"),
        lambda b, i: b.client.beta.threads.runs.update(
            i["run"], thread_id=i["thread"], metadata={"x": "y"}
        ),
    ),
    (
        "cancel run",
        ("thread", "run"),
        lambda b, i: b.client.beta.threads.runs.cancel(i["run"], thread_id=i["thread"]),
    ),
    (
        "submit tool outputs",
        ("thread", "run"),
        lambda b, i: b.client.beta.threads.runs.submit_tool_outputs(
            i["run"], thread_id=i["thread"], tool_outputs=[{"tool_call_id": "call_x", "output": ""}]
        ),
    ),
    (
        "list steps",
        ("thread", "run"),
        lambda b, i: b.client.beta.threads.runs.steps.list(i["run"], thread_id=i["thread"]),
    ),
    (
        "get step",
        ("thread", "run", "step"),
        lambda b, i: b.client.beta.threads.runs.steps.retrieve(
            i["step"], thread_id=i["thread"], run_id=i["run"]
        ),
    ),
    ("get file", ("file",), lambda b, i: b.client.files.retrieve(i["file"])),
    ("file content", ("file",), lambda b, i: b.client.files.content(i["file"]).read()),
    ("delete file", ("file",), lambda b, i: b.client.files.delete(i["file"])),
    (
        "get vector store",
        ("vector_store",),
        lambda b, i: b.client.vector_stores.retrieve(i["vector_store"]),
    ),
    (
        "update vector store",
        ("vector_store",),
        lambda b, i: b.client.vector_stores.update(i["vector_store"], name="taken"),
    ),
    (
        "delete vector store",
        ("vector_store",),
        lambda b, i: b.client.vector_stores.delete(i["vector_store"]),
    ),
    (
        "search vector store",
        ("vector_store",),
        lambda b, i: b.client.vector_stores.search(i["vector_store"], query="alpha"),
    ),
    (
        "list vector store files",
        ("vector_store",),
        lambda b, i: b.client.vector_stores.files.list(i["vector_store"]),
    ),
    (
        "add own file to foreign store",
        ("vector_store",),
        lambda b, i: b.client.vector_stores.files.create(i["vector_store"], file_id=b.ids["file"]),
    ),
    (
        "add foreign file to own store",
        ("file",),
        lambda b, i: b.client.vector_stores.files.create(b.ids["vector_store"], file_id=i["file"]),
    ),
    (
        "get vector store file",
        ("vector_store", "file"),
        lambda b, i: b.client.vector_stores.files.retrieve(
            i["file"], vector_store_id=i["vector_store"]
        ),
    ),
    (
        "update vector store file",
        ("vector_store", "file"),
        lambda b, i: b.client.vector_stores.files.update(
            i["file"], vector_store_id=i["vector_store"], attributes={"x": "y"}
        ),
    ),
    (
        "vector store file content",
        ("vector_store", "file"),
        lambda b, i: list(
            b.client.vector_stores.files.content(i["file"], vector_store_id=i["vector_store"])
        ),
    ),
    (
        "delete vector store file",
        ("vector_store", "file"),
        lambda b, i: b.client.vector_stores.files.delete(
            i["file"], vector_store_id=i["vector_store"]
        ),
    ),
    (
        "create batch",
        ("vector_store",),
        lambda b, i: b.client.vector_stores.file_batches.create(
            i["vector_store"], file_ids=[b.ids["file"]]
        ),
    ),
    (
        "get batch",
        ("vector_store", "batch"),
        lambda b, i: b.client.vector_stores.file_batches.retrieve(
            i["batch"], vector_store_id=i["vector_store"]
        ),
    ),
    (
        "cancel batch",
        ("vector_store", "batch"),
        lambda b, i: b.client.vector_stores.file_batches.cancel(
            i["batch"], vector_store_id=i["vector_store"]
        ),
    ),
    (
        "list batch files",
        ("vector_store", "batch"),
        lambda b, i: b.client.vector_stores.file_batches.list_files(
            i["batch"], vector_store_id=i["vector_store"]
        ),
    ),
    # References inside requests.
    (
        "assistant naming a foreign vector store",
        ("vector_store",),
        lambda b, i: b.client.beta.assistants.create(
            model="gpt-4o-mini",
            tools=[{"type": "file_search"}],
            tool_resources={"file_search": {"vector_store_ids": [i["vector_store"]]}},
        ),
    ),
    (
        "assistant naming a foreign file",
        ("file",),
        lambda b, i: b.client.beta.assistants.create(
            model="gpt-4o-mini",
            tools=[{"type": "code_interpreter"}],
            tool_resources={"code_interpreter": {"file_ids": [i["file"]]}},
        ),
    ),
    (
        "thread naming a foreign vector store",
        ("vector_store",),
        lambda b, i: b.client.beta.threads.create(
            tool_resources={"file_search": {"vector_store_ids": [i["vector_store"]]}}
        ),
    ),
    (
        "message attaching a foreign file",
        ("file",),
        lambda b, i: b.client.beta.threads.messages.create(
            b.ids["thread"],
            role="user",
            content="x",
            attachments=[{"file_id": i["file"], "tools": [{"type": "file_search"}]}],
        ),
    ),
    (
        "vector store of a foreign file",
        ("file",),
        lambda b, i: b.client.vector_stores.create(file_ids=[i["file"]]),
    ),
    # Cursors of the other project's objects are unknown cursors.
    (
        "assistants after a foreign cursor",
        ("assistant",),
        lambda b, i: b.client.beta.assistants.list(after=i["assistant"]),
    ),
    ("files after a foreign cursor", ("file",), lambda b, i: b.client.files.list(after=i["file"])),
    (
        "vector stores after a foreign cursor",
        ("vector_store",),
        lambda b, i: b.client.vector_stores.list(after=i["vector_store"]),
    ),
    (
        "messages after a foreign cursor",
        ("message",),
        lambda b, i: b.client.beta.threads.messages.list(b.ids["thread"], after=i["message"]),
    ),
    (
        "runs before a foreign cursor",
        ("run",),
        lambda b, i: b.client.beta.threads.runs.list(b.ids["thread"], before=i["run"]),
    ),
]


@pytest.mark.parametrize("case", HTTP_CASES, ids=[name for name, _, _ in HTTP_CASES])
def test_the_other_projects_ids_answer_as_missing_ones_over_http(
    shared: Shared, case: HttpCase
) -> None:
    _, roles, call = case
    foreign = {role: shared.a.ids[role] for role in roles}
    before = _snapshot(shared.a)
    _same_as_missing(lambda named: call(shared.b, named), foreign)
    assert _snapshot(shared.a) == before, "a call of project B changed project A's objects"


def test_lists_show_only_the_projects_own_objects(shared: Shared) -> None:
    for tenant, other in ((shared.a, shared.b), (shared.b, shared.a)):
        client = tenant.client
        listed = {
            "assistant": [a.id for a in client.beta.assistants.list(limit=100).data],
            "file": [f.id for f in client.files.list().data],
            "vector_store": [v.id for v in client.vector_stores.list(limit=100).data],
        }
        for role, found in listed.items():
            assert tenant.ids[role] in found
            assert other.ids[role] not in found


def test_openai_project_header_must_name_the_keys_project(shared: Shared) -> None:
    own = openai.OpenAI(
        base_url=shared.server.base_url,
        api_key=shared.a.key,
        project=shared.a.project_id,
        max_retries=0,
    )
    other = openai.OpenAI(
        base_url=shared.server.base_url,
        api_key=shared.a.key,
        project=shared.b.project_id,
        max_retries=0,
    )
    try:
        assert (
            own.beta.assistants.retrieve(shared.a.ids["assistant"]).id == shared.a.ids["assistant"]
        )
        with pytest.raises(openai.AuthenticationError) as refused:
            other.beta.assistants.retrieve(shared.a.ids["assistant"])
        assert refused.value.status_code == 401
        assert isinstance(refused.value.body, dict)
        assert refused.value.body["code"] == "mismatched_project"
    finally:
        own.close()
        other.close()


def test_config_keys_open_the_default_project(shared: Shared) -> None:
    default = openai.OpenAI(base_url=shared.server.base_url, api_key=CONFIG_KEY, max_retries=0)
    try:
        made = default.beta.assistants.create(model="gpt-4o-mini")
        assert made.id in [a.id for a in default.beta.assistants.list(limit=100).data]
        with pytest.raises(openai.NotFoundError):
            shared.a.client.beta.assistants.retrieve(made.id)
        with pytest.raises(openai.NotFoundError):
            default.beta.assistants.retrieve(shared.a.ids["assistant"])
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(
                base_url=shared.server.base_url, api_key="sk-proj-unknown", max_retries=0
            ).beta.assistants.list()
    finally:
        default.close()


# The same over gRPC, for the RPCs that read by ID and the streams.
GrpcCase = tuple[str, tuple[str, ...], Callable[[GrpcClient, Tenant, Mapping[str, str]], Any]]
GRPC_CASES: list[GrpcCase] = [
    (
        "GetAssistant",
        ("assistant",),
        lambda g, b, i: g.assistants.GetAssistant(
            assistants_pb2.GetAssistantRequest(assistant_id=i["assistant"]), metadata=bearer(b.key)
        ),
    ),
    (
        "DeleteThread",
        ("thread",),
        lambda g, b, i: g.threads.DeleteThread(
            threads_pb2.DeleteThreadRequest(thread_id=i["thread"]), metadata=bearer(b.key)
        ),
    ),
    (
        "ListMessages",
        ("thread",),
        lambda g, b, i: g.messages.ListMessages(
            messages_pb2.ListMessagesRequest(thread_id=i["thread"]), metadata=bearer(b.key)
        ),
    ),
    (
        "GetRun",
        ("thread", "run"),
        lambda g, b, i: g.runs.GetRun(
            runs_pb2.GetRunRequest(thread_id=i["thread"], run_id=i["run"]), metadata=bearer(b.key)
        ),
    ),
    (
        "WatchRun",
        ("run",),
        lambda g, b, i: list(
            g.runs.WatchRun(runs_pb2.WatchRunRequest(run_id=i["run"]), metadata=bearer(b.key))
        ),
    ),
    (
        "ListRunSteps",
        ("thread", "run"),
        lambda g, b, i: g.runs.ListRunSteps(
            runs_pb2.ListRunStepsRequest(thread_id=i["thread"], run_id=i["run"]),
            metadata=bearer(b.key),
        ),
    ),
    (
        "DownloadFileContent",
        ("file",),
        lambda g, b, i: list(
            g.files.DownloadFileContent(
                files_pb2.DownloadFileContentRequest(file_id=i["file"]), metadata=bearer(b.key)
            )
        ),
    ),
    (
        "SearchVectorStore",
        ("vector_store",),
        lambda g, b, i: g.vector_stores.SearchVectorStore(
            vector_stores_pb2.SearchVectorStoreRequest(
                vector_store_id=i["vector_store"], query=["alpha"]
            ),
            metadata=bearer(b.key),
        ),
    ),
    (
        "CreateRunStream",
        ("thread",),
        lambda g, b, i: list(
            g.runs.CreateRunStream(
                runs_pb2.CreateRunRequest(thread_id=i["thread"], assistant_id=b.ids["assistant"]),
                metadata=bearer(b.key),
            )
        ),
    ),
    (
        "CreateThreadAndRunStream",
        ("assistant",),
        lambda g, b, i: list(
            g.runs.CreateThreadAndRunStream(
                runs_pb2.CreateThreadAndRunRequest(assistant_id=i["assistant"]),
                metadata=bearer(b.key),
            )
        ),
    ),
    (
        "SubmitToolOutputsStream",
        ("thread", "run"),
        lambda g, b, i: list(
            g.runs.SubmitToolOutputsStream(
                runs_pb2.SubmitToolOutputsRequest(
                    thread_id=i["thread"],
                    run_id=i["run"],
                    tool_outputs=[runs_pb2.ToolOutput(tool_call_id="call_x", output="")],
                ),
                metadata=bearer(b.key),
            )
        ),
    ),
    (
        "CancelRun",
        ("thread", "run"),
        lambda g, b, i: g.runs.CancelRun(
            runs_pb2.CancelRunRequest(thread_id=i["thread"], run_id=i["run"]),
            metadata=bearer(b.key),
        ),
    ),
    (
        "GetRunStep",
        ("thread", "run", "step"),
        lambda g, b, i: g.runs.GetRunStep(
            runs_pb2.GetRunStepRequest(thread_id=i["thread"], run_id=i["run"], step_id=i["step"]),
            metadata=bearer(b.key),
        ),
    ),
    (
        "CreateMessage",
        ("thread",),
        lambda g, b, i: g.messages.CreateMessage(
            messages_pb2.CreateMessageRequest(
                thread_id=i["thread"],
                message=messages_pb2.MessageInput(
                    role=messages_pb2.MESSAGE_ROLE_USER,
                    content=[messages_pb2.MessageContent(text=messages_pb2.TextContent(value="x"))],
                ),
            ),
            metadata=bearer(b.key),
        ),
    ),
    (
        "DeleteFile",
        ("file",),
        lambda g, b, i: g.files.DeleteFile(
            files_pb2.DeleteFileRequest(file_id=i["file"]), metadata=bearer(b.key)
        ),
    ),
    (
        "GetVectorStoreFileBatch",
        ("vector_store", "batch"),
        lambda g, b, i: g.vector_stores.GetVectorStoreFileBatch(
            vector_stores_pb2.GetVectorStoreFileBatchRequest(
                vector_store_id=i["vector_store"], batch_id=i["batch"]
            ),
            metadata=bearer(b.key),
        ),
    ),
    (
        "ListVectorStoreFiles",
        ("vector_store",),
        lambda g, b, i: g.vector_stores.ListVectorStoreFiles(
            vector_stores_pb2.ListVectorStoreFilesRequest(vector_store_id=i["vector_store"]),
            metadata=bearer(b.key),
        ),
    ),
    (
        "CreateVectorStoreFile with a foreign file",
        ("file",),
        lambda g, b, i: g.vector_stores.CreateVectorStoreFile(
            vector_stores_pb2.CreateVectorStoreFileRequest(
                vector_store_id=b.ids["vector_store"], file_id=i["file"]
            ),
            metadata=bearer(b.key),
        ),
    ),
    (
        "ListAssistants after a foreign cursor",
        ("assistant",),
        lambda g, b, i: g.assistants.ListAssistants(
            assistants_pb2.ListAssistantsRequest(after=i["assistant"]), metadata=bearer(b.key)
        ),
    ),
]


def _grpc_outcome(call: Callable[[], Any], named: Mapping[str, str]) -> tuple[Any, ...]:
    try:
        result = call()
    except grpc.RpcError as exc:
        error = rich_error(exc)
        return ("error", error.code, _blank(error.message, named), error.reason, error.param)
    return ("ok", _blank(repr(result), named))


@pytest.mark.parametrize("case", GRPC_CASES, ids=[name for name, _, _ in GRPC_CASES])
def test_the_other_projects_ids_answer_as_missing_ones_over_grpc(
    shared: Shared, case: GrpcCase
) -> None:
    _, roles, call = case
    foreign = {role: shared.a.ids[role] for role in roles}
    missing = {role: _missing_like(object_id) for role, object_id in foreign.items()}
    with GrpcClient(shared.server.grpc_target) as g:
        answered = _grpc_outcome(lambda: call(g, shared.b, foreign), foreign)
        expected = _grpc_outcome(lambda: call(g, shared.b, missing), missing)
    assert answered == expected
    assert answered[0] == "error" or "after" in case[0]


def test_the_store_refuses_work_outside_any_project(tmp_path: Path) -> None:
    async def outside(url: str) -> None:
        store = create_store(url)
        await store.open()
        try:
            with pytest.raises(tenancy.NoProjectScope):
                await store.get_assistant("asst_x")
            with tenancy.all_projects(), pytest.raises(tenancy.NoProjectScope):
                # Across projects there is no project to give a new object.
                await store.create_file(files_pb2.File(id="file-x", purpose="assistants"))
        finally:
            await store.close()

    url = database_url(tmp_path)
    try:
        # A fresh context: the autouse fixture's default project is not in it.
        contextvars.Context().run(asyncio.run, outside(url))
    finally:
        drop_database(url)
