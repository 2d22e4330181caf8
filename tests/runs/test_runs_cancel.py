"""Stopping runs: cancel (mid-stream, waiting for tools, too late), expiry, and a client that
leaves a stream while the run goes on."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
import openai
import pytest
from harness import MakeClient, MakeServer, assert_api_error
from harness.server import ServerThread
from openai.types.beta import Assistant

from compat_core.store import create_store
from compat_core.v1 import runs_pb2
from runs.support import (
    POLL_MS,
    assert_nothing_left_open,
    message_text,
    parse_sse,
    run_messages,
    run_steps,
    sse_text,
    wait_run,
)
from runs.tools import GET_WEATHER
from runs.upstream import ScriptedModel, stall, text

WAIT = 10.0


def test_cancel_a_streaming_run_keeps_the_partial_reply(
    client: openai.OpenAI, scripted: ScriptedModel
) -> None:
    reply = scripted.push(stall("Partial ", "answer"))
    assistant = client.beta.assistants.create(model=scripted.model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "talk"}])
    runs = client.beta.threads.runs
    names: list[str] = []
    streamed = ""
    cancelling: str | None = None
    with runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        for event in stream:
            names.append(event.event)
            if event.event == "thread.message.delta":
                for part in event.data.delta.content or []:
                    if part.type == "text" and part.text:
                        streamed += part.text.value or ""
                if streamed == "Partial answer" and cancelling is None:
                    assert reply.held.wait(WAIT)
                    current = stream.current_run
                    assert current is not None
                    answer = runs.cancel(current.id, thread_id=thread.id)
                    cancelling = answer.status
        final = stream.get_final_run()

    assert cancelling == "cancelling", "cancel must answer at once, with the run cancelling"
    assert final.status == "cancelled"
    assert names[-1] == "thread.run.cancelled"
    assert "thread.run.cancelling" in names
    assert reply.disconnected.wait(WAIT), "the upstream request was not aborted"
    assert not reply.finished.is_set()

    run = runs.poll(final.id, thread_id=thread.id, poll_interval_ms=POLL_MS)
    assert run.status == "cancelled"
    assert run.cancelled_at is not None
    [message] = run_messages(client, thread.id, run.id)
    assert message.status == "incomplete"
    assert message_text(message) == "Partial answer"
    assert message.incomplete_details is not None
    assert message.incomplete_details.reason == "run_cancelled"
    [step] = run_steps(client, thread.id, run.id)
    assert step.status == "cancelled"
    assert_nothing_left_open(client, thread.id, run)


def test_cancel_a_run_while_the_upstream_stalls(
    client: openai.OpenAI, scripted: ScriptedModel
) -> None:
    reply = scripted.push(stall())
    assistant = client.beta.assistants.create(model=scripted.model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "talk"}])
    runs = client.beta.threads.runs
    run = runs.create(thread_id=thread.id, assistant_id=assistant.id)
    assert reply.held.wait(WAIT), "the upstream never got the request"
    answer = runs.cancel(run.id, thread_id=thread.id)
    assert answer.status == "cancelling"
    assert answer.id == run.id
    assert wait_run(client, thread.id, run.id).status == "cancelled"
    assert reply.disconnected.wait(WAIT), "the upstream request was not aborted"
    # The reply a text-only run stores while it waits for the first token goes with the cancel.
    assert run_messages(client, thread.id, run.id) == []
    assert run_steps(client, thread.id, run.id) == []
    assert_nothing_left_open(client, thread.id, runs.retrieve(run.id, thread_id=thread.id))


def test_cancel_a_run_waiting_for_tool_outputs(
    client: openai.OpenAI, echo_assistant: Assistant
) -> None:
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": '/call get_weather {"city": "Lima"}'}]
    )
    runs = client.beta.threads.runs
    run = runs.create_and_poll(
        thread_id=thread.id, assistant_id=echo_assistant.id, poll_interval_ms=POLL_MS
    )
    assert run.status == "requires_action"
    answer = runs.cancel(run.id, thread_id=thread.id)
    assert answer.status in ("cancelling", "cancelled")
    cancelled = wait_run(client, thread.id, run.id)
    assert cancelled.status == "cancelled"
    assert cancelled.required_action is None
    [step] = run_steps(client, thread.id, run.id)
    assert step.status == "cancelled"
    with pytest.raises(openai.BadRequestError) as info:
        runs.submit_tool_outputs(
            run.id,
            thread_id=thread.id,
            tool_outputs=[{"tool_call_id": "call_x", "output": "late"}],
        )
    assert_api_error(info.value, 400, "invalid_request_error")


def test_cancel_a_finished_run_is_400(client: openai.OpenAI, echo_assistant: Assistant) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "done soon"}])
    runs = client.beta.threads.runs
    run = runs.create_and_poll(
        thread_id=thread.id, assistant_id=echo_assistant.id, poll_interval_ms=POLL_MS
    )
    assert run.status == "completed"
    with pytest.raises(openai.BadRequestError) as info:
        runs.cancel(run.id, thread_id=thread.id)
    assert_api_error(info.value, 400, "invalid_request_error")
    assert runs.retrieve(run.id, thread_id=thread.id).status == "completed"


def test_a_run_left_waiting_for_tools_expires(
    make_server: MakeServer, make_client: MakeClient
) -> None:
    server = make_server(requires_action_timeout_seconds=1)
    client = make_client(server)
    assistant = client.beta.assistants.create(model="builtin/echo", tools=[GET_WEATHER])
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": '/call get_weather {"city": "Quito"}'}]
    )
    runs = client.beta.threads.runs
    run = runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=POLL_MS
    )
    assert run.status == "requires_action"
    expired = wait_run(client, thread.id, run.id, timeout=8.0)
    assert expired.status == "expired"
    [step] = run_steps(client, thread.id, run.id)
    assert step.status == "expired"
    assert step.expired_at is not None
    with pytest.raises(openai.BadRequestError):
        runs.submit_tool_outputs(
            run.id,
            thread_id=thread.id,
            tool_outputs=[{"tool_call_id": "call_x", "output": "late"}],
        )
    # The thread is free again.
    client.beta.threads.messages.create(thread.id, role="user", content="still there?")
    again = runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=POLL_MS
    )
    assert again.status == "completed"


def test_a_client_that_leaves_the_stream_does_not_stop_the_run(
    http: httpx2.Client, client: openai.OpenAI, scripted: ScriptedModel
) -> None:
    # Paced after the hold, so the edge is still writing when the client is gone.
    reply = scripted.push(
        text("Still ", "here ", "after ", "you ", "left", hold_after=1, delay=0.05)
    )
    assistant = client.beta.assistants.create(model=scripted.model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "stay"}])
    body: dict[str, Any] = {"assistant_id": assistant.id, "stream": True}
    seen = []
    with http.stream("POST", f"/v1/threads/{thread.id}/runs", json=body) as response:
        assert response.status_code == 200
        for event in parse_sse(response.iter_lines()):
            seen.append(event)
            if event.event == "thread.message.delta":
                break
    # The response is closed: the client is gone before the upstream goes on.
    assert sse_text(seen) == "Still "
    run_id = next(e.json()["id"] for e in seen if e.event == "thread.run.created")
    reply.release()
    run = wait_run(client, thread.id, run_id)
    assert run.status == "completed", run.last_error
    assert reply.finished.is_set()
    assert not reply.disconnected.is_set()
    [message] = run_messages(client, thread.id, run_id)
    assert message_text(message) == "Still here after you left"


def test_a_cancel_stored_without_a_notice_reaches_the_run_by_its_lease_renewal(
    client: openai.OpenAI, runs_server: ServerThread, scripted: ScriptedModel
) -> None:
    """Another core's cancel whose notice was lost: the executing core's next lease renewal
    finds it stored (at most a second later) and stops the run."""
    reply = scripted.push(stall("Partial ", "answer"))
    assistant = client.beta.assistants.create(model=scripted.model)
    run = client.beta.threads.create_and_run(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "talk"}]}
    )
    assert reply.held.wait(WAIT)

    async def cancel_in_the_store() -> None:
        # What `CancelRun` on another core stores, without the notice it sends after.
        store = create_store(runs_server.database_url)
        await store.open()
        try:

            def cancelling(current: runs_pb2.Run) -> None:
                current.status = runs_pb2.RUN_STATUS_CANCELLING

            assert await store.update_run(run.thread_id, run.id, cancelling) is not None
        finally:
            await store.close()

    asyncio.run(cancel_in_the_store())
    assert reply.disconnected.wait(WAIT), "the executing core never noticed the cancel"
    ended = wait_run(client, run.thread_id, run.id, timeout=WAIT)
    assert ended.status == "cancelled"
    assert_nothing_left_open(client, run.thread_id, ended)
    replies = run_messages(client, run.thread_id, run.id)
    assert [(m.status, message_text(m)) for m in replies] == [("incomplete", "Partial answer")]
