"""State survives a restart on the same database, and concurrent writes lose nothing."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import openai
from harness import MakeClient, MakeServer
from harness.grpc_client import GrpcClient
from openai.types.beta.threads import Message

from compat_core.v1 import assistants_pb2

CONCURRENT = 50


def test_restart_keeps_everything(make_server: MakeServer, make_client: MakeClient) -> None:
    server = make_server()
    client = make_client(server)
    data = os.urandom(300 * 1024)
    assistant = client.beta.assistants.create(
        model="builtin/echo",
        name="survivor",
        instructions="Remember me.",
        metadata={"k": "v"},
        temperature=0.3,
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    )
    thread = client.beta.threads.create(
        metadata={"t": "1"}, messages=[{"role": "user", "content": "first"}]
    )
    for text in ("second", "third"):
        client.beta.threads.messages.create(thread.id, role="user", content=text)
    uploaded = client.files.create(file=("keep.bin", data), purpose="assistants")
    messages_before = client.beta.threads.messages.list(thread.id, order="asc").data
    deleted = client.beta.assistants.create(model="builtin/echo")
    client.beta.assistants.delete(deleted.id)

    server.restart()
    assert server.is_running()
    assert server.starts == 2
    client = make_client(server)  # the new server listens on new ports

    assert client.beta.assistants.retrieve(assistant.id).model_dump() == assistant.model_dump()
    assert client.beta.threads.retrieve(thread.id).model_dump() == thread.model_dump()
    messages_after = client.beta.threads.messages.list(thread.id, order="asc").data
    assert [m.model_dump() for m in messages_after] == [m.model_dump() for m in messages_before]
    assert client.files.retrieve(uploaded.id).model_dump() == uploaded.model_dump()
    assert client.files.content(uploaded.id).read() == data
    assert [a.id for a in client.beta.assistants.list()] == [assistant.id]
    assert [f.id for f in client.files.list()] == [uploaded.id]

    # And the restarted server goes on writing where the old one stopped.
    later = client.beta.threads.messages.create(thread.id, role="user", content="fourth")
    listed = [m.id for m in client.beta.threads.messages.list(thread.id, order="asc")]
    assert listed == [m.id for m in messages_before] + [later.id]


def test_restart_keeps_grpc_and_http_views_equal(
    make_server: MakeServer, make_client: MakeClient
) -> None:
    server = make_server()
    assistant = make_client(server).beta.assistants.create(model="builtin/echo", name="both")
    server.restart()
    with GrpcClient(server.grpc_target) as grpc_client:
        fetched = grpc_client.assistants.GetAssistant(
            assistants_pb2.GetAssistantRequest(assistant_id=assistant.id)
        )
    assert fetched.id == assistant.id
    assert fetched.name == "both"
    assert fetched.created_at == assistant.created_at


def test_concurrent_message_creates_lose_nothing(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create()
    start = threading.Barrier(CONCURRENT)

    def create(index: int) -> Message:
        start.wait()
        return client.beta.threads.messages.create(
            thread.id, role="user", content=f"concurrent {index}", metadata={"i": str(index)}
        )

    with ThreadPoolExecutor(max_workers=CONCURRENT) as pool:
        created = list(pool.map(create, range(CONCURRENT)))

    created_ids = {m.id for m in created}
    assert len(created_ids) == CONCURRENT, "every create got its own ID"

    ascending = client.beta.threads.messages.list(thread.id, order="asc", limit=100)
    asc_ids = [m.id for m in ascending.data]
    assert len(asc_ids) == CONCURRENT, "each message listed exactly once"
    assert set(asc_ids) == created_ids
    assert ascending.has_more is False
    stamps = [m.created_at for m in ascending.data]
    assert stamps == sorted(stamps), "creation times never go backwards in asc order"
    by_id = {m.id: m for m in created}
    assert all(by_id[m.id].model_dump() == m.model_dump() for m in ascending.data)

    descending = client.beta.threads.messages.list(thread.id, order="desc", limit=100)
    assert [m.id for m in descending.data] == asc_ids[::-1]

    paged = [m.id for m in client.beta.threads.messages.list(thread.id, order="asc", limit=7)]
    assert paged == asc_ids, "auto-pagination sees the same order, each once"
