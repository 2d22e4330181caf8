"""The SDK's run helpers end to end on `builtin/echo`: poll, stream, and the raw SSE under them."""

from __future__ import annotations

from typing import Any

import httpx2
import openai
import pytest
from openai import AssistantEventHandler
from openai.types.beta import Assistant, AssistantStreamEvent
from openai.types.beta.threads import Message, Text, TextDelta
from typing_extensions import override

from runs.support import (
    POLL_MS,
    TEXT_RUN_EVENTS,
    assert_one_open_at_a_time,
    assert_openai_payloads,
    collapse,
    message_text,
    parse_sse,
    run_messages,
    sse_text,
    validate_sse_event,
)

USER_TEXT = "The quick brown fox jumps over the lazy dog"


class Recorder(AssistantEventHandler):
    """Records what the SDK's stream helper reports."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []
        self.deltas: list[str] = []
        self.done_texts: list[str] = []
        self.done_messages: list[Message] = []

    @override
    def on_event(self, event: AssistantStreamEvent) -> None:
        self.events.append(event.event)

    @override
    def on_text_delta(self, delta: TextDelta, snapshot: Text) -> None:
        self.deltas.append(delta.value or "")

    @override
    def on_text_done(self, text: Text) -> None:
        self.done_texts.append(text.value)

    @override
    def on_message_done(self, message: Message) -> None:
        self.done_messages.append(message)


def test_create_and_poll_completes_with_the_echo(
    client: openai.OpenAI, echo_assistant: Assistant
) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": USER_TEXT}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=echo_assistant.id, poll_interval_ms=POLL_MS
    )
    assert run.status == "completed", run.last_error
    assert run.thread_id == thread.id
    assert run.assistant_id == echo_assistant.id
    assert run.model == "builtin/echo"
    assert run.instructions == "Repeat after me."
    assert run.started_at is not None
    assert run.completed_at is not None
    assert run.started_at <= run.completed_at
    assert run.last_error is None
    assert run.required_action is None
    # The echo counts words as tokens: 3 of instructions + 9 of the user's, 9 written.
    assert run.usage is not None
    assert (run.usage.prompt_tokens, run.usage.completion_tokens) == (12, 9)
    assert run.usage.total_tokens == 21

    [reply] = run_messages(client, thread.id, run.id)
    assert reply.role == "assistant"
    assert reply.status == "completed"
    assert reply.assistant_id == echo_assistant.id
    assert message_text(reply) == USER_TEXT
    newest = client.beta.threads.messages.list(thread.id, limit=1).data[0]
    assert newest.id == reply.id


def test_stream_helper_deltas_make_the_stored_message(
    client: openai.OpenAI, echo_assistant: Assistant
) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": USER_TEXT}])
    recorder = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=echo_assistant.id, event_handler=recorder
    ) as stream:
        stream.until_done()
        final_run = stream.get_final_run()
        final_messages = stream.get_final_messages()

    assert final_run.status == "completed"
    assert collapse(recorder.events) == TEXT_RUN_EVENTS[:-1]  # the helper does not show `done`
    streamed = "".join(recorder.deltas)
    assert streamed == USER_TEXT
    assert recorder.done_texts == [USER_TEXT]
    [stored] = run_messages(client, thread.id, final_run.id)
    assert message_text(stored) == streamed
    assert [m.id for m in final_messages] == [stored.id]
    assert [m.id for m in recorder.done_messages] == [stored.id]
    assert (
        final_run.model_dump()
        == client.beta.threads.runs.retrieve(final_run.id, thread_id=thread.id).model_dump()
    )


@pytest.mark.parametrize("endpoint", ["create_run", "create_thread_and_run"])
def test_raw_sse_follows_the_spec_event_by_event(
    http: httpx2.Client, client: openai.OpenAI, echo_assistant: Assistant, endpoint: str
) -> None:
    message: dict[str, Any] = {"role": "user", "content": USER_TEXT}
    if endpoint == "create_run":
        thread_id = client.beta.threads.create(messages=[{"role": "user", "content": USER_TEXT}]).id
        path = f"/v1/threads/{thread_id}/runs"
        body: dict[str, Any] = {"assistant_id": echo_assistant.id, "stream": True}
    else:
        path = "/v1/threads/runs"
        body = {
            "assistant_id": echo_assistant.id,
            "stream": True,
            "thread": {"messages": [message]},
        }

    with http.stream("POST", path, json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].split(";")[0] == "text/event-stream"
        lines = list(response.iter_lines())

    assert lines[-3:] == ["event: done", "data: [DONE]", ""] or lines[-2:] == [
        "event: done",
        "data: [DONE]",
    ], f"the stream does not end with done: {lines[-4:]}"
    events = list(parse_sse(lines))
    for event in events:
        validate_sse_event(event)
    assert_one_open_at_a_time(events)
    assert_openai_payloads(events)
    names = [event.event for event in events]
    expected = TEXT_RUN_EVENTS if endpoint == "create_run" else ["thread.created", *TEXT_RUN_EVENTS]
    assert collapse(names) == expected
    assert names.count("done") == 1

    if endpoint == "create_thread_and_run":
        thread_id = events[0].json()["id"]
    runs = [
        e.json() for e in events if e.event.startswith("thread.run.") and ".step." not in e.event
    ]
    run_id = runs[0]["id"]
    assert {r["id"] for r in runs} == {run_id}
    assert {r["thread_id"] for r in runs} == {thread_id}
    assert [r["status"] for r in runs] == ["queued", "queued", "in_progress", "completed"]
    message_events = [e.json() for e in events if e.event.startswith("thread.message.")]
    message_id = message_events[0]["id"]
    assert {m["id"] for m in message_events} == {message_id}
    steps = [e.json() for e in events if e.event.startswith("thread.run.step.")]
    assert {s["step_details"]["message_creation"]["message_id"] for s in steps} == {message_id}
    assert [s["status"] for s in steps] == ["in_progress", "in_progress", "completed"]

    streamed = sse_text(events)
    assert streamed == USER_TEXT
    [stored] = run_messages(client, thread_id, run_id)
    assert stored.id == message_id
    assert message_text(stored) == streamed
    completed = events[-2].json()
    assert completed["usage"] == {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}


def test_raw_sse_of_a_tool_round(
    http: httpx2.Client, client: openai.OpenAI, echo_assistant: Assistant
) -> None:
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": '/call get_weather {"city": "Paris"}'}]
    )
    with http.stream(
        "POST",
        f"/v1/threads/{thread.id}/runs",
        json={"assistant_id": echo_assistant.id, "stream": True},
    ) as response:
        first = list(parse_sse(response.iter_lines()))
    for event in first:
        validate_sse_event(event)
    assert_one_open_at_a_time(first)
    assert_openai_payloads(first)
    assert collapse(e.event for e in first) == [
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.run.step.delta",
        "thread.run.requires_action",
        "done",
    ]
    waiting = first[-2].json()
    [call] = waiting["required_action"]["submit_tool_outputs"]["tool_calls"]

    with http.stream(
        "POST",
        f"/v1/threads/{thread.id}/runs/{waiting['id']}/submit_tool_outputs",
        json={"tool_outputs": [{"tool_call_id": call["id"], "output": "mild"}], "stream": True},
    ) as response:
        assert response.status_code == 200
        resumed = list(parse_sse(response.iter_lines()))
    for event in resumed:
        validate_sse_event(event)
    assert_one_open_at_a_time(resumed)
    assert_openai_payloads(resumed)
    names = collapse(e.event for e in resumed)
    assert names[-2:] == ["thread.run.completed", "done"]
    assert "thread.run.created" not in names
    step_done = [e.json() for e in resumed if e.event == "thread.run.step.completed"]
    tool_steps = [s for s in step_done if s["type"] == "tool_calls"]
    assert [
        c["function"]["output"] for s in tool_steps for c in s["step_details"]["tool_calls"]
    ] == ["mild"]
    assert sse_text(resumed) == "get_weather returned: mild"


def test_create_and_run_poll(client: openai.OpenAI, echo_assistant: Assistant) -> None:
    run = client.beta.threads.create_and_run_poll(
        assistant_id=echo_assistant.id,
        thread={"messages": [{"role": "user", "content": "hello from a new thread"}]},
        poll_interval_ms=POLL_MS,
    )
    assert run.status == "completed", run.last_error
    assert run.thread_id.startswith("thread_")
    texts = [
        (m.role, message_text(m))
        for m in client.beta.threads.messages.list(run.thread_id, order="asc").data
    ]
    assert texts == [("user", "hello from a new thread"), ("assistant", "hello from a new thread")]


def test_create_and_run_stream_starts_with_the_thread(
    client: openai.OpenAI, echo_assistant: Assistant
) -> None:
    recorder = Recorder()
    with client.beta.threads.create_and_run_stream(
        assistant_id=echo_assistant.id,
        thread={"messages": [{"role": "user", "content": "streamed thread"}]},
        event_handler=recorder,
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
    assert collapse(recorder.events) == ["thread.created", *TEXT_RUN_EVENTS[:-1]]
    assert "".join(recorder.deltas) == "streamed thread"
    assert run.status == "completed"
    [stored] = run_messages(client, run.thread_id, run.id)
    assert message_text(stored) == "streamed thread"


def test_a_bare_model_name_is_served_by_the_echo_and_kept_verbatim(
    client: openai.OpenAI, echo_assistant: Assistant
) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "bare name"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=echo_assistant.id,
        model="gpt-4o-mini",
        poll_interval_ms=POLL_MS,
    )
    assert run.status == "completed", run.last_error
    assert run.model == "gpt-4o-mini"
    [reply] = run_messages(client, thread.id, run.id)
    assert message_text(reply) == "bare name"
