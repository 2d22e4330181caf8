"""Run streams over gRPC: the same events as SSE, `WatchRun` mid-run and from the start,
deadlines and cancelled calls that leave the run running."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import httpx2
import openai
import pytest
from harness.grpc_client import GrpcClient
from openai.types.beta import Assistant

from compat_core.v1 import runs_pb2
from runs.support import (
    TEXT_RUN_EVENTS,
    collapse,
    grpc_name,
    grpc_text,
    message_text,
    parse_sse,
    run_messages,
    sse_text,
    wait_run,
)
from runs.upstream import ScriptedModel, text

USER_TEXT = "streams over two transports agree"
WAIT = 10.0
# A stream deadline that passes while the upstream holds the reply back.
DEADLINE = 1.0


def _read_until(
    stream: Iterator[runs_pb2.RunEvent], field: str, into: list[runs_pb2.RunEvent]
) -> runs_pb2.RunEvent:
    """Read events into `into` up to and including the first `field` event."""
    for event in stream:
        into.append(event)
        if event.WhichOneof("event") == field:
            return event
    raise AssertionError(f"the stream ended without {field}: {[grpc_name(e) for e in into]}")


def _drain(stream: Iterator[runs_pb2.RunEvent], into: list[runs_pb2.RunEvent]) -> None:
    """Read a stream to its end (or its error) into `into`."""
    for event in stream:
        into.append(event)


def _check_sequences(events: list[runs_pb2.RunEvent]) -> None:
    """Sequences grow (merged deltas may skip numbers); `done` closes the stream."""
    assert events, "no events"
    assert events[-1].WhichOneof("event") == "done"
    numbers = [e.sequence for e in events[:-1]]
    assert numbers == sorted(set(numbers)), f"sequences do not grow: {numbers}"


def test_create_run_stream_matches_the_sse_stream(
    grpc_client: GrpcClient,
    http: httpx2.Client,
    client: openai.OpenAI,
    echo_assistant: Assistant,
) -> None:
    sse_thread = client.beta.threads.create(messages=[{"role": "user", "content": USER_TEXT}])
    with http.stream(
        "POST",
        f"/v1/threads/{sse_thread.id}/runs",
        json={"assistant_id": echo_assistant.id, "stream": True},
    ) as response:
        sse_events = list(parse_sse(response.iter_lines()))

    grpc_thread = client.beta.threads.create(messages=[{"role": "user", "content": USER_TEXT}])
    events = list(
        grpc_client.runs.CreateRunStream(
            runs_pb2.CreateRunRequest(thread_id=grpc_thread.id, assistant_id=echo_assistant.id),
            timeout=WAIT,
        )
    )
    assert collapse(grpc_name(e) for e in events) == collapse(e.event for e in sse_events)
    assert collapse(grpc_name(e) for e in events) == TEXT_RUN_EVENTS
    assert events[0].sequence == 1
    _check_sequences(events)
    assert grpc_text(events) == sse_text(sse_events) == USER_TEXT
    run = events[0].thread_run_created
    assert run.status == runs_pb2.RUN_STATUS_QUEUED
    assert events[-2].thread_run_completed.id == run.id
    [stored] = run_messages(client, grpc_thread.id, run.id)
    assert message_text(stored) == USER_TEXT


def _unbatched(messages: list[runs_pb2.RunEvent]) -> list[runs_pb2.RunEvent]:
    """The events of a stream read with `accept_event_batches`, checking each batch."""
    events: list[runs_pb2.RunEvent] = []
    for message in messages:
        if not message.HasField("batch"):
            events.append(message)
            continue
        inner = list(message.batch.events)
        assert len(inner) > 1, "a batch of one is sent as the event itself"
        assert not any(e.HasField("batch") for e in inner), "batches are never nested"
        assert message.sequence == inner[-1].sequence
        events += inner
    return events


def test_a_stream_that_accepts_batches_gets_the_same_events_in_fewer_messages(
    grpc_client: GrpcClient, client: openai.OpenAI, echo_assistant: Assistant
) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": USER_TEXT}])
    request = runs_pb2.CreateRunRequest(
        thread_id=thread.id, assistant_id=echo_assistant.id, accept_event_batches=True
    )
    messages = list(grpc_client.runs.CreateRunStream(request, timeout=WAIT))
    events = _unbatched(messages)
    assert collapse(grpc_name(e) for e in events) == TEXT_RUN_EVENTS
    assert grpc_text(events) == USER_TEXT
    assert events[0].sequence == 1
    _check_sequences(events)
    # The run's first two events are published together, so they at least share a message.
    assert messages[0].HasField("batch")
    assert len(messages) < len(events)

    # Unasked, a stream never carries a batch (clients generated before batches existed).
    run_id = events[0].thread_run_created.id
    replay = list(
        grpc_client.runs.WatchRun(
            runs_pb2.WatchRunRequest(run_id=run_id, after_sequence=0), timeout=WAIT
        )
    )
    assert not any(e.HasField("batch") for e in replay)
    assert collapse(grpc_name(e) for e in replay) == collapse(grpc_name(e) for e in events)

    # A finished run watched with batches: its state and `done`, in one message.
    [state] = grpc_client.runs.WatchRun(
        runs_pb2.WatchRunRequest(run_id=run_id, accept_event_batches=True), timeout=WAIT
    )
    assert [grpc_name(e) for e in state.batch.events] == ["thread.run.completed", "done"]


@pytest.mark.parametrize("attach", ["after-sequence", "current-state"])
def test_watch_run_attached_mid_run_sees_the_rest(
    grpc_client: GrpcClient, client: openai.OpenAI, scripted: ScriptedModel, attach: str
) -> None:
    reply = scripted.push(text("alpha ", "beta ", "gamma ", "delta", hold_after=1, delay=0.01))
    assistant = client.beta.assistants.create(model=scripted.model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "go"}])
    creator = grpc_client.runs.CreateRunStream(
        runs_pb2.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id), timeout=WAIT
    )
    before: list[runs_pb2.RunEvent] = []
    first_delta = _read_until(creator, "thread_message_delta", before)
    assert reply.held.wait(WAIT)
    assert not reply.finished.is_set()
    run_id = before[0].thread_run_created.id
    text_before = grpc_text(before)
    assert text_before == "alpha "

    if attach == "after-sequence":
        request = runs_pb2.WatchRunRequest(run_id=run_id, after_sequence=first_delta.sequence)
    else:
        request = runs_pb2.WatchRunRequest(run_id=run_id)
    watcher = grpc_client.runs.WatchRun(request, timeout=WAIT)
    watched: list[runs_pb2.RunEvent] = []
    if attach == "current-state":
        # Attached before the upstream goes on: the run's state comes first.
        first = next(watcher)
        watched.append(first)
        assert first.WhichOneof("event") == "thread_run_in_progress"
        assert first.thread_run_in_progress.id == run_id
    reply.release()
    watched.extend(watcher)
    rest = list(creator)

    names = [grpc_name(e) for e in watched]
    assert names[-2:] == ["thread.run.completed", "done"]
    assert "thread.run.created" not in names
    assert [e.sequence for e in watched if e.WhichOneof("event") != "done"][-1] == max(
        e.sequence for e in rest
    )
    message = run_messages(client, thread.id, run_id)[0]
    assert text_before + grpc_text(watched) == message_text(message) == "alpha beta gamma delta"
    assert text_before + grpc_text(rest) == message_text(message)
    _check_sequences(watched)


def test_watch_run_from_zero_replays_everything(
    grpc_client: GrpcClient, client: openai.OpenAI, echo_assistant: Assistant
) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": USER_TEXT}])
    live = list(
        grpc_client.runs.CreateRunStream(
            runs_pb2.CreateRunRequest(thread_id=thread.id, assistant_id=echo_assistant.id),
            timeout=WAIT,
        )
    )
    run_id = live[0].thread_run_created.id
    replay = list(
        grpc_client.runs.WatchRun(
            runs_pb2.WatchRunRequest(run_id=run_id, after_sequence=0), timeout=WAIT
        )
    )
    assert collapse(grpc_name(e) for e in replay) == collapse(grpc_name(e) for e in live)
    assert grpc_text(replay) == grpc_text(live) == USER_TEXT
    assert replay[0].sequence == 1
    _check_sequences(replay)

    # Attached to a finished run without a position: its state, then done.
    state = list(grpc_client.runs.WatchRun(runs_pb2.WatchRunRequest(run_id=run_id), timeout=WAIT))
    assert [grpc_name(e) for e in state] == ["thread.run.completed", "done"]
    assert state[0].thread_run_completed.id == run_id


def test_watch_an_unknown_run_is_not_found(grpc_client: GrpcClient) -> None:
    with pytest.raises(grpc.RpcError) as info:
        list(grpc_client.runs.WatchRun(runs_pb2.WatchRunRequest(run_id="run_" + "0" * 24)))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("then", ["release", "cancel"])
def test_a_stream_deadline_leaves_the_run_going(
    grpc_client: GrpcClient, client: openai.OpenAI, scripted: ScriptedModel, then: str
) -> None:
    reply = scripted.push(text("slow ", "but ", "sure", hold_after=1))
    assistant = client.beta.assistants.create(model=scripted.model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "wait"}])
    stream = grpc_client.runs.CreateRunStream(
        runs_pb2.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id),
        timeout=DEADLINE,
    )
    seen: list[runs_pb2.RunEvent] = []
    with pytest.raises(grpc.RpcError) as info:
        _drain(stream, seen)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert reply.held.wait(WAIT), "the run never reached the upstream"
    assert not reply.finished.is_set()
    [run] = client.beta.threads.runs.list(thread.id).data
    run_id = run.id
    assert run.status == "in_progress"
    assert not reply.disconnected.is_set()

    if then == "release":
        reply.release()
        run = wait_run(client, thread.id, run_id)
        assert run.status == "completed", run.last_error
        [message] = run_messages(client, thread.id, run_id)
        assert message_text(message) == "slow but sure"
    else:
        cancelled = grpc_client.runs.CancelRun(
            runs_pb2.CancelRunRequest(thread_id=thread.id, run_id=run_id), timeout=WAIT
        )
        assert cancelled.status == runs_pb2.RUN_STATUS_CANCELLING
        assert wait_run(client, thread.id, run_id).status == "cancelled"
        assert reply.disconnected.wait(WAIT), "the upstream request was not aborted"


def test_a_cancelled_call_leaves_the_run_running(
    grpc_client: GrpcClient, client: openai.OpenAI, scripted: ScriptedModel
) -> None:
    reply = scripted.push(text("one ", "two ", "three", hold_after=1))
    assistant = client.beta.assistants.create(model=scripted.model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "count"}])
    call = grpc_client.runs.CreateRunStream(
        runs_pb2.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id), timeout=WAIT
    )
    seen: list[runs_pb2.RunEvent] = []
    _read_until(call, "thread_message_delta", seen)
    run_id = seen[0].thread_run_created.id
    call.cancel()
    with pytest.raises(grpc.RpcError) as info:
        list(call)
    assert info.value.code() == grpc.StatusCode.CANCELLED
    reply.release()
    run = wait_run(client, thread.id, run_id)
    assert run.status == "completed", run.last_error
    assert not reply.disconnected.is_set()
    [message] = run_messages(client, thread.id, run_id)
    assert message_text(message) == "one two three"


def test_submit_tool_outputs_stream_over_grpc(
    grpc_client: GrpcClient, client: openai.OpenAI, echo_assistant: Assistant
) -> None:
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": '/call get_weather {"city": "Bern"}'}]
    )
    first = list(
        grpc_client.runs.CreateRunStream(
            runs_pb2.CreateRunRequest(thread_id=thread.id, assistant_id=echo_assistant.id),
            timeout=WAIT,
        )
    )
    assert [grpc_name(e) for e in first][-2:] == ["thread.run.requires_action", "done"]
    waiting = first[-2].thread_run_requires_action
    [call] = waiting.required_action.tool_calls
    assert call.name == "get_weather"
    resumed = list(
        grpc_client.runs.SubmitToolOutputsStream(
            runs_pb2.SubmitToolOutputsRequest(
                thread_id=thread.id,
                run_id=waiting.id,
                tool_outputs=[runs_pb2.ToolOutput(tool_call_id=call.id, output="cold")],
            ),
            timeout=WAIT,
        )
    )
    names = collapse(grpc_name(e) for e in resumed)
    assert names[-2:] == ["thread.run.completed", "done"]
    assert "thread.run.created" not in names
    assert grpc_text(resumed) == "get_weather returned: cold"
    assert min(e.sequence for e in resumed) > first[-2].sequence


def test_a_fast_upstream_reply_is_relayed_as_it_arrives(
    grpc_client: GrpcClient, client: openai.OpenAI, scripted: ScriptedModel
) -> None:
    # Chunks of a fast upstream arrive buffered, and reading them never suspends the run: the
    # first pieces must still go out early, not with the whole reply at the end (a watcher
    # busy with an earlier event may get the first few pieces merged into one delta). Read
    # as the edge reads, with batches: one by one, the run's seven first events take seven
    # round trips, which on a loaded machine can outlast a 300-piece reply.
    pieces = [f"piece{i} " for i in range(300)]
    scripted.push(text(*pieces))
    assistant = client.beta.assistants.create(model=scripted.model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "go"}])
    request = runs_pb2.CreateRunRequest(
        thread_id=thread.id, assistant_id=assistant.id, accept_event_batches=True
    )
    events = _unbatched(list(grpc_client.runs.CreateRunStream(request, timeout=WAIT)))
    deltas = [e.thread_message_delta for e in events if e.HasField("thread_message_delta")]
    first = deltas[0].content[0].part.text.value
    assert first.startswith(pieces[0])
    assert len(first) < len("".join(pieces)) // 4
    assert len(deltas) > 1
    assert grpc_text(events) == "".join(pieces)


def test_grpc_events_announce_parts_as_openai_does(
    grpc_client: GrpcClient, client: openai.OpenAI, echo_assistant: Assistant
) -> None:
    # The core decides what the events say, so gRPC watchers get what the SSE renders: a
    # reply announced with no content (its first delta makes the part), and a call's first
    # piece with its id and name and no arguments (the pieces after it have them).
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": '/call get_weather {"city": "Bern"}'}]
    )
    first = list(
        grpc_client.runs.CreateRunStream(
            runs_pb2.CreateRunRequest(thread_id=thread.id, assistant_id=echo_assistant.id),
            timeout=WAIT,
        )
    )
    pieces = [
        call
        for e in first
        if e.HasField("thread_run_step_delta")
        for call in e.thread_run_step_delta.step_details.tool_calls.tool_calls
    ]
    assert len(pieces) > 1
    head, *rest = pieces
    assert head.HasField("id")
    assert (head.function.name, head.function.arguments) == ("get_weather", "")
    assert not any(p.HasField("id") or p.function.HasField("name") for p in rest)
    waiting = first[-2].thread_run_requires_action
    [call] = waiting.required_action.tool_calls
    assert (head.id, "".join(p.function.arguments for p in rest)) == (call.id, call.arguments)

    resumed = list(
        grpc_client.runs.SubmitToolOutputsStream(
            runs_pb2.SubmitToolOutputsRequest(
                thread_id=thread.id,
                run_id=waiting.id,
                tool_outputs=[runs_pb2.ToolOutput(tool_call_id=call.id, output="cold")],
            ),
            timeout=WAIT,
        )
    )
    announced = {
        name: getattr(e, name)
        for e in resumed
        for name in ("thread_message_created", "thread_message_in_progress")
        if e.HasField(name)
    }
    assert len(announced) == 2
    assert {name: len(m.content) for name, m in announced.items()} == dict.fromkeys(announced, 0)
    [completed] = [
        e.thread_message_completed for e in resumed if e.HasField("thread_message_completed")
    ]
    assert completed.content[0].text.value == grpc_text(resumed) == "get_weather returned: cold"
