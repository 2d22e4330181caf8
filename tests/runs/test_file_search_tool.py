"""The file_search tool in runs (issue 16), through both SDKs' helpers, raw SSE and gRPC.

`builtin/echo` calls file_search when a message says `/call file_search {"query": …}` and cites
the first line of each result with its marker; a scripted upstream plays a model that does the
same in pieces of its own choosing. The file `zoo notes.md` has a space in its name, so echo
streams its marker in two pieces, and the citation must come out whole all the same.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, Final

import httpx2
import openai
import pytest
from harness import MakeClient, MakeServer, assert_api_error
from harness.grpc_client import GrpcClient
from harness.server import ServerThread
from openai import AssistantEventHandler, omit
from openai.types.beta import Assistant
from openai.types.beta.threads import Message, Text, TextDelta
from openai.types.beta.threads.runs import RunStep, ToolCall
from openai.types.beta.threads.runs.file_search_tool_call import FileSearch, FileSearchResult
from typing_extensions import override

from compat_core.retrieval.citations import labelled_results
from compat_core.store import create_store
from compat_core.v1 import runs_pb2
from runs.nodejs import run_script
from runs.support import (
    POLL_MS,
    assert_openai_payloads,
    assert_usage_adds_up,
    grpc_name,
    parse_sse,
    run_messages,
    run_steps,
    sse_text,
    validate_sse_event,
    wait_run,
)
from runs.upstream import Call, ScriptedModel, stall, text, tool_calls

CONTENT: Final = "step_details.tool_calls[*].file_search.results[*].content"
NOTES_NAME = "zoo notes.md"
NOTES = "Zebracorns eat clover at dawn.\nThey sleep under birch trees.\n"
MARKER = "【0:0†zoo notes.md】"
ASK = '/call file_search {"query": "what do zebracorns eat"}'
CITED = f"Zebracorns eat clover at dawn. {MARKER}"
WAIT = 10.0


def ready_store(client: openai.OpenAI, *files: tuple[str, str]) -> tuple[str, list[str]]:
    """A vector store with these files, all ingested; its ID and the files' IDs."""
    store_id = client.vector_stores.create().id
    file_ids = []
    for name, data in files:
        done = client.vector_stores.files.upload_and_poll(
            vector_store_id=store_id, file=(name, data.encode()), poll_interval_ms=POLL_MS
        )
        assert done.status == "completed", done.last_error
        file_ids.append(done.id)
    return store_id, file_ids


def searching_assistant(
    client: openai.OpenAI, store_ids: Sequence[str] = (), model: str = "builtin/echo"
) -> Assistant:
    return client.beta.assistants.create(
        model=model,
        tools=[{"type": "file_search"}],
        tool_resources=(
            {"file_search": {"vector_store_ids": list(store_ids)}} if store_ids else omit
        ),
    )


def asking_thread(client: openai.OpenAI, question: str = ASK) -> str:
    return client.beta.threads.create(messages=[{"role": "user", "content": question}]).id


def assert_cites(message: Message, expected_text: str, file_ids: Sequence[str]) -> None:
    """The reply is `expected_text`, and each marker in it is a `file_citation` of the file
    at the same position in `file_ids`, with indices that delimit it exactly."""
    text = message.content[0].text  # type: ignore[union-attr]
    assert text.value == expected_text
    cited = [a for a in text.annotations if a.type == "file_citation"]
    assert [a.file_citation.file_id for a in cited] == list(file_ids)  # type: ignore[union-attr]
    for annotation in cited:
        assert text.value[annotation.start_index : annotation.end_index] == annotation.text
        assert annotation.text.startswith("【")
        assert annotation.text.endswith("】")


def search_step(step: RunStep) -> FileSearch:
    """The file_search call of a tool step, which has that one call."""
    details = step.step_details
    assert details.type == "tool_calls", step
    [call] = details.tool_calls
    assert call.type == "file_search", call
    return call.file_search


def results(step: RunStep) -> list[FileSearchResult]:
    found = search_step(step).results
    assert found is not None, "a search step without results"
    return found


def ranker(step: RunStep) -> tuple[str | None, float]:
    options = search_step(step).ranking_options
    assert options is not None, "a search step without ranking options"
    return options.ranker, options.score_threshold


def texts(result: FileSearchResult) -> list[tuple[str | None, str | None]] | None:
    """A result's content as (type, text) pairs; None when it has none."""
    if result.content is None:
        return None
    return [(c.type, c.text) for c in result.content]


# Echo, through the Python SDK's helpers


def test_create_and_poll_searches_and_the_reply_cites(client: openai.OpenAI) -> None:
    store_id, [file_id] = ready_store(client, (NOTES_NAME, NOTES))
    assistant = searching_assistant(client, [store_id])
    thread_id = asking_thread(client)

    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant.id, poll_interval_ms=POLL_MS
    )

    assert run.status == "completed", run.last_error
    tool_step, message_step = run_steps(client, thread_id, run.id)
    assert ranker(tool_step) == ("default_2024_08_21", 0.0)
    [result] = results(tool_step)
    assert (result.file_id, result.file_name) == (file_id, NOTES_NAME)
    assert 0.0 < result.score <= 1.0
    assert result.content is None, "content is only sent when included"
    [reply] = run_messages(client, thread_id, run.id)
    assert message_step.step_details.message_creation.message_id == reply.id  # type: ignore[union-attr]
    assert_cites(reply, CITED, [file_id])
    assert_usage_adds_up(client, thread_id, run)


class SearchWatcher(AssistantEventHandler):
    """What OpenAI's quick starts listen to: tool calls created, text deltas, steps done."""

    def __init__(self) -> None:
        super().__init__()
        self.created: list[ToolCall] = []
        self.delta_annotations: list[Any] = []
        self.steps_done: list[RunStep] = []
        self.text = ""

    @override
    def on_tool_call_created(self, tool_call: ToolCall) -> None:
        self.created.append(tool_call)

    @override
    def on_text_delta(self, delta: TextDelta, snapshot: Text) -> None:
        self.text += delta.value or ""
        self.delta_annotations.extend(delta.annotations or ())

    @override
    def on_run_step_done(self, run_step: RunStep) -> None:
        self.steps_done.append(run_step)


@pytest.mark.parametrize("include", [True, False], ids=["include", "no-include"])
def test_stream_reports_the_search_and_the_citation(client: openai.OpenAI, include: bool) -> None:
    store_id, [file_id] = ready_store(client, (NOTES_NAME, NOTES))
    assistant = searching_assistant(client, [store_id])
    thread_id = asking_thread(client)
    watcher = SearchWatcher()

    with client.beta.threads.runs.stream(
        thread_id=thread_id,
        assistant_id=assistant.id,
        event_handler=watcher,
        include=[CONTENT] if include else omit,
    ) as stream:
        stream.until_done()
        [final] = stream.get_final_messages()
        snapshot = stream.current_message_snapshot

    [created] = watcher.created
    assert created.type == "file_search"
    assert created.id.startswith("call_")
    tool_step, message_step = watcher.steps_done
    [result] = results(tool_step)
    assert result.file_id == file_id
    assert texts(result) == ([("text", NOTES)] if include else None)
    assert message_step.type == "message_creation"
    assert watcher.text == CITED
    [streamed] = watcher.delta_annotations
    assert (streamed.index, streamed.type, streamed.text) == (0, "file_citation", MARKER)
    assert_cites(final, CITED, [file_id])
    assert snapshot is not None
    assert_cites(snapshot, CITED, [file_id])
    [stored] = run_messages(client, thread_id, final.run_id or "")
    assert_cites(stored, CITED, [file_id])


def test_include_adds_the_results_content_to_listed_and_fetched_steps(
    client: openai.OpenAI,
) -> None:
    store_id, _ = ready_store(client, (NOTES_NAME, NOTES))
    assistant = searching_assistant(client, [store_id])
    thread_id = asking_thread(client)
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant.id, poll_interval_ms=POLL_MS
    )
    steps = client.beta.threads.runs.steps

    listed = steps.list(run.id, thread_id=thread_id, order="asc", include=[CONTENT]).data
    [result] = results(listed[0])
    assert texts(result) == [("text", NOTES)]
    fetched = steps.retrieve(listed[0].id, thread_id=thread_id, run_id=run.id, include=[CONTENT])
    assert [texts(r) for r in results(fetched)] == [[("text", NOTES)]]

    plain = steps.retrieve(listed[0].id, thread_id=thread_id, run_id=run.id)
    assert [(r.file_id, texts(r)) for r in results(plain)] == [(result.file_id, None)]
    plain_list = steps.list(run.id, thread_id=thread_id, order="asc").data
    assert [texts(r) for r in results(plain_list[0])] == [None]


def test_no_vector_store_is_said_so(client: openai.OpenAI) -> None:
    assistant = searching_assistant(client)
    thread_id = asking_thread(client)

    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant.id, poll_interval_ms=POLL_MS
    )

    assert run.status == "completed", run.last_error
    tool_step, _ = run_steps(client, thread_id, run.id)
    assert results(tool_step) == []
    [reply] = run_messages(client, thread_id, run.id)
    assert reply.content[0].text.value == (  # type: ignore[union-attr]
        "file_search returned: There are no files to search: no vector store is attached to "
        "this assistant or conversation."
    )
    assert reply.content[0].text.annotations == []  # type: ignore[union-attr]


def test_thread_and_run_resources_replace_the_assistants_and_the_threads_add(
    client: openai.OpenAI,
) -> None:
    words = "lanterns glow"
    run_store, [run_file] = ready_store(client, ("run.md", f"Run {words}."))
    assistant_store, _ = ready_store(client, ("assistant.md", f"Assistant {words}."))
    thread_store, [thread_file] = ready_store(client, ("thread.md", f"Thread {words}."))
    assistant = searching_assistant(client, [assistant_store])

    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={
            "messages": [{"role": "user", "content": f'/call file_search {{"query": "{words}"}}'}],
            "tool_resources": {"file_search": {"vector_store_ids": [thread_store]}},
        },
        tool_resources={"file_search": {"vector_store_ids": [run_store]}},
        poll_interval_ms=POLL_MS,
    )

    assert run.status == "completed", run.last_error
    tool_step, _ = run_steps(client, run.thread_id, run.id)
    found = results(tool_step)
    assert {r.file_id for r in found} == {run_file, thread_file}
    [reply] = run_messages(client, run.thread_id, run.id)
    lines = reply.content[0].text.value.splitlines()  # type: ignore[union-attr]
    assert sorted(lines) == sorted(
        f"{name.removesuffix('.md').capitalize()} {words}. 【0:{index}†{name}】"
        for index, name in enumerate(r.file_name for r in found)
    )
    assert_cites(reply, "\n".join(lines), [r.file_id for r in found])


def test_a_thread_store_still_ingesting_is_searched_once_ready(client: openai.OpenAI) -> None:
    store_id = client.vector_stores.create().id
    file_id = client.files.create(file=(NOTES_NAME, NOTES.encode()), purpose="assistants").id
    client.vector_stores.files.create(vector_store_id=store_id, file_id=file_id)
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": ASK}],
        tool_resources={"file_search": {"vector_store_ids": [store_id]}},
    )
    assistant = searching_assistant(client)

    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=POLL_MS
    )

    assert run.status == "completed", run.last_error
    [reply] = run_messages(client, thread.id, run.id)
    assert_cites(reply, CITED, [file_id])


# A scripted model


def test_a_model_searches_then_cites_in_pieces_over_raw_sse(
    client: openai.OpenAI, http: httpx2.Client, scripted: ScriptedModel
) -> None:
    store_id, [file_id] = ready_store(client, (NOTES_NAME, NOTES))
    assistant = searching_assistant(client, [store_id], model=scripted.model)
    call = Call("file_search", '{"query": "zebracorn"}')
    scripted.push(
        tool_calls(call),
        text("Zebracorns eat clover ", "【0:0†zoo", " notes.md】", " indeed."),
    )
    thread_id = asking_thread(client, "What do zebracorns eat?")

    with http.stream(
        "POST",
        f"/v1/threads/{thread_id}/runs",
        params={"include[]": CONTENT},
        json={"assistant_id": assistant.id, "stream": True},
    ) as response:
        assert response.status_code == 200
        events = list(parse_sse(response.iter_lines()))

    for event in events:
        validate_sse_event(event)
    assert_openai_payloads(_without_search_deltas(events))
    expected = f"Zebracorns eat clover {MARKER} indeed."
    assert sse_text(events) == expected
    deltas = [e.json() for e in events if e.event == "thread.run.step.delta"]
    assert [d["delta"]["step_details"]["tool_calls"] for d in deltas] == [
        [{"index": 0, "id": call.id, "type": "file_search", "file_search": {}}]
    ]
    [done] = [
        e.json()
        for e in events
        if e.event == "thread.run.step.completed" and e.json()["type"] == "tool_calls"
    ]
    [result] = done["step_details"]["tool_calls"][0]["file_search"]["results"]
    assert result["content"] == [{"type": "text", "text": NOTES}]
    annotations = [
        a
        for e in events
        if e.event == "thread.message.delta"
        for part in e.json()["delta"]["content"]
        for a in part["text"]["annotations"]
    ]
    start = expected.index(MARKER)
    assert annotations == [
        {
            "index": 0,
            "type": "file_citation",
            "text": MARKER,
            "file_citation": {"file_id": file_id},
            "start_index": start,
            "end_index": start + len(MARKER),
        }
    ]
    [completed] = [e.json() for e in events if e.event == "thread.message.completed"]
    assert completed["content"][0]["text"]["annotations"] == [
        {k: v for k, v in annotations[0].items() if k != "index"}
    ]

    first, second = scripted.requests
    assert first["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "file_search",
                "description": first["tools"][0]["function"]["description"],
                "parameters": {
                    "type": "object",
                    "properties": {"query": {"type": "string", "description": _ANY}},
                    "required": ["query"],
                },
            },
        }
    ]
    assistant_turn, tool_turn = second["messages"][-2:]
    assert assistant_turn["tool_calls"] == [
        {
            "id": call.id,
            "type": "function",
            "function": {"name": "file_search", "arguments": '{"query":"zebracorn"}'},
        }
    ]
    assert tool_turn["role"] == "tool"
    assert tool_turn["tool_call_id"] == call.id
    assert labelled_results(tool_turn["content"]) == [(MARKER, NOTES.rstrip("\n"))]


class _Anything:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)


_ANY: Any = _Anything()


def _without_search_deltas(events: list[Any]) -> list[Any]:
    """The events `assert_openai_payloads` knows (it checks function calls' first deltas)."""
    return [
        e
        for e in events
        if e.event != "thread.run.step.delta"
        or e.json()["delta"]["step_details"]["tool_calls"][0]["type"] == "function"
    ]


def test_the_runs_tools_settings_bound_the_search(
    client: openai.OpenAI, scripted: ScriptedModel
) -> None:
    store_id, _ = ready_store(client, ("a.md", "kettle one"), ("b.md", "kettle two"))
    assistant = searching_assistant(client, [store_id], model=scripted.model)
    scripted.push(tool_calls(Call("file_search", '{"query": "kettle"}')), text("ok"))
    thread_id = asking_thread(client, "kettles?")

    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id,
        assistant_id=assistant.id,
        tools=[
            {
                "type": "file_search",
                "file_search": {
                    "max_num_results": 1,
                    "ranking_options": {"ranker": "auto", "score_threshold": 0.0},
                },
            }
        ],
        poll_interval_ms=POLL_MS,
    )

    assert run.status == "completed", run.last_error
    tool_step, _ = run_steps(client, thread_id, run.id)
    assert len(results(tool_step)) == 1
    assert ranker(tool_step) == ("default_2024_08_21", 0.0)


def test_tool_choice_file_search_forces_the_first_call_only(
    client: openai.OpenAI, scripted: ScriptedModel
) -> None:
    assistant = searching_assistant(client, model=scripted.model)
    scripted.push(tool_calls(Call("file_search", '{"query": "anything"}')), text("done"))
    thread_id = asking_thread(client, "look it up")

    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id,
        assistant_id=assistant.id,
        tool_choice={"type": "file_search"},
        poll_interval_ms=POLL_MS,
    )

    assert run.status == "completed", run.last_error
    assert run.tool_choice.type == "file_search"  # type: ignore[union-attr]
    first, second = scripted.requests
    assert first["tool_choice"] == {"type": "function", "function": {"name": "file_search"}}
    assert second["tool_choice"] == "auto", "forcing every call would search forever"


# Failure paths


def test_bad_include_tool_choice_and_settings_are_400s(client: openai.OpenAI) -> None:
    plain = client.beta.assistants.create(model="builtin/echo")
    thread_id = asking_thread(client, "hello")
    runs = client.beta.threads.runs

    with pytest.raises(openai.BadRequestError) as bad:
        runs.create(thread_id=thread_id, assistant_id=plain.id, include=["step_details.nope"])  # type: ignore[list-item]
    assert_api_error(bad.value, 400, "invalid_request_error", param="include")
    with pytest.raises(openai.BadRequestError) as bad:
        runs.create(thread_id=thread_id, assistant_id=plain.id, tool_choice={"type": "file_search"})
    assert_api_error(bad.value, 400, "invalid_request_error", param="tool_choice.type")
    settings: Any = {"ranking_options": {"ranker": "best", "score_threshold": 0.5}}
    with pytest.raises(openai.BadRequestError) as bad:
        runs.create(
            thread_id=thread_id,
            assistant_id=plain.id,
            tools=[{"type": "file_search", "file_search": settings}],
        )
    assert_api_error(
        bad.value, 400, "invalid_request_error", param="tools[0].file_search.ranking_options.ranker"
    )
    with pytest.raises(openai.BadRequestError) as bad:
        client.beta.assistants.create(
            model="builtin/echo",
            tools=[
                {
                    "type": "file_search",
                    "file_search": {"ranking_options": {"score_threshold": 2}},
                }
            ],
        )
    assert_api_error(
        bad.value,
        400,
        "invalid_request_error",
        param="tools[0].file_search.ranking_options.score_threshold",
    )
    with pytest.raises(openai.BadRequestError) as bad:
        client.beta.assistants.create(
            model="builtin/echo",
            tools=[
                {"type": "file_search"},
                {"type": "function", "function": {"name": "file_search"}},
            ],
        )
    assert_api_error(bad.value, 400, "invalid_request_error", param="tools[1].function.name")

    run = runs.create_and_poll(thread_id=thread_id, assistant_id=plain.id, poll_interval_ms=POLL_MS)
    [step] = run_steps(client, thread_id, run.id)
    with pytest.raises(openai.BadRequestError) as bad:
        runs.steps.list(run.id, thread_id=thread_id, include=["nope"])  # type: ignore[list-item]
    assert_api_error(bad.value, 400, "invalid_request_error", param="include")
    with pytest.raises(openai.BadRequestError) as bad:
        runs.steps.retrieve(step.id, thread_id=thread_id, run_id=run.id, include=["nope"])  # type: ignore[list-item]
    assert_api_error(bad.value, 400, "invalid_request_error", param="include")


def test_an_expired_store_fails_the_run(make_server: MakeServer, make_client: MakeClient) -> None:
    server = make_server()
    client = make_client(server)
    store_id = client.vector_stores.create(expires_after={"anchor": "last_active_at", "days": 1}).id
    assistant = searching_assistant(client, [store_id])
    thread_id = asking_thread(client)
    server.stop()
    asyncio.run(_expire(server, store_id))
    server.start()
    client = make_client(server)

    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant.id, poll_interval_ms=POLL_MS
    )

    assert run.status == "failed"
    assert run.last_error is not None
    assert run.last_error.code == "invalid_prompt"
    assert store_id in run.last_error.message
    [tool_step] = run_steps(client, thread_id, run.id)
    assert (tool_step.type, tool_step.status) == ("tool_calls", "failed")
    assert client.vector_stores.retrieve(store_id).status == "expired"


async def _expire(server: ServerThread, store_id: str) -> None:
    store = create_store(server.database_url)
    await store.open()
    try:

        def passed(found: Any) -> None:
            found.expires_at = int(time.time()) - 1

        assert await store.update_vector_store(store_id, passed) is not None
    finally:
        await store.close()


def test_a_run_resumed_after_a_restart_shows_the_model_its_search(
    make_server: MakeServer,
    make_client: MakeClient,
    provider_overrides: dict[str, Any],
    scripted: ScriptedModel,
) -> None:
    server = make_server(**provider_overrides)
    client = make_client(server)
    store_id, [file_id] = ready_store(client, (NOTES_NAME, NOTES))
    assistant = searching_assistant(client, [store_id], model=scripted.model)
    interrupted = scripted.push(
        tool_calls(Call("file_search", '{"query": "zebracorn"}')), stall("Zebracorns ")
    )
    thread_id = asking_thread(client, "What do zebracorns eat?")
    run = client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant.id)
    assert interrupted.held.wait(WAIT)
    deadline = time.monotonic() + WAIT
    while not [m for m in run_messages(client, thread_id, run.id) if m.status == "in_progress"]:
        assert time.monotonic() < deadline, "the partial reply was never stored"
        time.sleep(POLL_MS / 1000)

    scripted.push(text("Zebracorns eat clover ", MARKER))
    server.restart()
    client = make_client(server)
    done = wait_run(client, thread_id, run.id)

    assert done.status == "completed", done.last_error
    _, interrupted_call, resumed_call = scripted.wait_requests(3)
    assert resumed_call["messages"] == interrupted_call["messages"]
    tool_turn = resumed_call["messages"][-1]
    assert tool_turn["role"] == "tool"
    assert labelled_results(tool_turn["content"]) == [(MARKER, NOTES.rstrip("\n"))]
    [reply] = run_messages(client, thread_id, run.id)
    assert_cites(reply, f"Zebracorns eat clover {MARKER}", [file_id])
    tool_step, _ = run_steps(client, thread_id, run.id)
    assert [r.file_id for r in results(tool_step)] == [file_id]


# gRPC


def test_grpc_streams_carry_the_call_and_numbered_annotations(
    client: openai.OpenAI, grpc_client: GrpcClient
) -> None:
    store_id, file_ids = ready_store(
        client, ("owls.md", "Owls hunt mice.\n"), ("more owls.md", "Owls nest in barns.\n")
    )
    assistant = searching_assistant(client, [store_id])
    thread_id = asking_thread(client, '/call file_search {"query": "owls"}')

    events = list(
        grpc_client.runs.CreateRunStream(
            runs_pb2.CreateRunRequest(thread_id=thread_id, assistant_id=assistant.id),
            timeout=WAIT,
        )
    )

    [first_piece] = [
        call
        for e in events
        if e.WhichOneof("event") == "thread_run_step_delta"
        for call in e.thread_run_step_delta.step_details.tool_calls.tool_calls
    ]
    assert first_piece.WhichOneof("kind") == "file_search"
    assert first_piece.file_search == runs_pb2.FileSearchCall()
    [done] = [
        e.thread_run_step_completed
        for e in events
        if e.WhichOneof("event") == "thread_run_step_completed"
        and e.thread_run_step_completed.step_details.HasField("tool_calls")
    ]
    found = done.step_details.tool_calls.tool_calls[0].file_search.results
    assert {r.file_id for r in found} == set(file_ids)
    assert all(not r.content for r in found), "not included"
    annotated = [
        (e.sequence, a)
        for e in events
        if e.WhichOneof("event") == "thread_message_delta"
        for piece in e.thread_message_delta.content
        for a in piece.part.text.annotations
    ]
    assert [a.index for _, a in annotated] == [0, 1]

    # A watcher that joins after the first citation gets the second with its own index.
    run_id = done.run_id
    watched = list(
        grpc_client.runs.WatchRun(
            runs_pb2.WatchRunRequest(run_id=run_id, after_sequence=annotated[0][0]),
            timeout=WAIT,
        )
    )
    late = [
        a
        for e in watched
        if e.WhichOneof("event") == "thread_message_delta"
        for piece in e.thread_message_delta.content
        for a in piece.part.text.annotations
    ]
    assert [(a.index, a.file_citation.file_id) for a in late] == [
        (1, annotated[1][1].file_citation.file_id)
    ]
    assert grpc_name(watched[-1]) == "done"


# Node


@pytest.mark.slow
def test_node_sdk_polls_and_streams_with_citations(
    node: str, runs_server: ServerThread, client: openai.OpenAI
) -> None:
    store_id, [file_id] = ready_store(client, (NOTES_NAME, NOTES))
    assistant = searching_assistant(client, [store_id])

    output = run_script(
        node,
        "file_search.mjs",
        runs_server.base_url,
        assistant.id,
        asking_thread(client),
        asking_thread(client),
        env={"OPENAI_API_KEY": "test"},
    ).ok()

    start = CITED.index(MARKER)
    citation = {
        "type": "file_citation",
        "text": MARKER,
        "file_citation": {"file_id": file_id},
        "start_index": start,
        "end_index": start + len(MARKER),
        "sliced": MARKER,
    }
    polled = output["poll"]
    assert polled["status"] == "completed"
    assert polled["reply"] == {"text": CITED, "annotations": [citation]}
    [call] = polled["calls"]
    assert call["type"] == "file_search"
    [result] = call["file_search"]["results"]
    assert (result["file_id"], result["file_name"], "content" in result) == (
        file_id,
        NOTES_NAME,
        False,
    )
    [included] = polled["includedCalls"]
    assert included["file_search"]["results"][0]["content"] == [{"type": "text", "text": NOTES}]

    streamed = output["stream"]
    assert streamed["status"] == "completed"
    [created] = streamed["createdCalls"]
    assert (created["type"], created["file_search"]) == ("file_search", {})
    assert streamed["deltaAnnotations"] == [
        {k: v for k, v in {**citation, "index": 0}.items() if k != "sliced"}
    ]
    assert streamed["snapshot"] == {"text": CITED, "annotations": [{**citation, "index": 0}]}
    assert streamed["final"] == {"text": CITED, "annotations": [citation]}
    tool_step, message_step = streamed["doneSteps"]
    assert (tool_step["type"], tool_step["status"]) == ("tool_calls", "completed")
    [streamed_result] = tool_step["calls"][0]["file_search"]["results"]
    assert streamed_result["content"] == [{"type": "text", "text": NOTES}]
    assert message_step["type"] == "message_creation"
    assert created["id"].startswith("call_")
