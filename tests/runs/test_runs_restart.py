"""Stopping and restarting a server in the middle of runs.

- A run interrupted by a restart finishes afterwards, with its reply written exactly once.
- A stop waits on event streams only for its grace, whether their client is still reading
  or already left; a client still reading then gets an `error` event, not a bare cut.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from harness import MakeClient, MakeHttp, MakeServer

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
# The grace of a stop (`COMPAT_SHUTDOWN_GRACE_SECONDS`); a stop may take it and a little
# more, never as long as a stream stays open.
GRACE = 1.0
STOP_BOUND = 7.0


def test_a_run_interrupted_by_a_restart_completes_with_one_reply(
    make_server: MakeServer,
    make_client: MakeClient,
    provider_overrides: dict[str, Any],
    scripted: ScriptedModel,
) -> None:
    server = make_server(**provider_overrides)
    client = make_client(server)
    interrupted = scripted.push(stall("This reply ", "is cut "))
    assistant = client.beta.assistants.create(model=scripted.model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "long story"}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)

    # Mid-stream: the upstream sent part of the reply and the server stored the open message.
    assert interrupted.held.wait(WAIT)
    deadline = time.monotonic() + WAIT
    while not [m for m in run_messages(client, thread.id, run.id) if m.status == "in_progress"]:
        assert time.monotonic() < deadline, "the partial reply was never stored"
        time.sleep(POLL_MS / 1000)

    resumed = scripted.push(text("The whole ", "reply."))
    server.restart()
    assert interrupted.disconnected.wait(WAIT), "stopping the server did not abort the upstream"
    assert not interrupted.finished.is_set()

    client = make_client(server)  # new ports
    done = wait_run(client, thread.id, run.id)
    assert done.status == "completed", done.last_error
    assert resumed.finished.wait(WAIT)
    first, second = scripted.wait_requests(2)
    assert second["messages"] == first["messages"], "the resumed call must see the same prompt"

    [reply] = run_messages(client, thread.id, run.id)
    assert reply.status == "completed"
    assert message_text(reply) == "The whole reply."
    roles = [m.role for m in client.beta.threads.messages.list(thread.id, order="asc").data]
    assert roles == ["user", "assistant"]
    [step] = run_steps(client, thread.id, run.id)
    assert step.type == "message_creation"
    assert step.status == "completed"
    assert step.step_details.type == "message_creation"
    assert step.step_details.message_creation.message_id == reply.id
    assert_nothing_left_open(client, thread.id, done)


def test_a_run_waiting_for_tool_outputs_survives_a_restart(
    make_server: MakeServer, make_client: MakeClient
) -> None:
    server = make_server()
    client = make_client(server)
    assistant = client.beta.assistants.create(model="builtin/echo", tools=[GET_WEATHER])
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": '/call get_weather {"city": "Paris"}'}]
    )
    waiting = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=POLL_MS
    )
    assert waiting.status == "requires_action"
    assert waiting.required_action is not None
    [call] = waiting.required_action.submit_tool_outputs.tool_calls

    server.restart()
    client = make_client(server)  # new ports
    still = client.beta.threads.runs.retrieve(run_id=waiting.id, thread_id=thread.id)
    assert still.status == "requires_action"
    assert still.required_action is not None
    assert [c.id for c in still.required_action.submit_tool_outputs.tool_calls] == [call.id]

    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=waiting.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": call.id, "output": "sunny"}],
        poll_interval_ms=POLL_MS,
    )
    assert done.status == "completed", done.last_error
    [reply] = run_messages(client, thread.id, done.id)
    assert message_text(reply) == "get_weather returned: sunny"
    assert_nothing_left_open(client, thread.id, done)


@pytest.mark.slow
@pytest.mark.parametrize("client_state", ["reading", "gone"])
def test_a_stop_waits_on_event_streams_only_for_its_grace(
    make_server: MakeServer,
    make_client: MakeClient,
    make_http: MakeHttp,
    provider_overrides: dict[str, Any],
    scripted: ScriptedModel,
    client_state: str,
) -> None:
    server = make_server(**provider_overrides, shutdown_grace_seconds=GRACE)
    client = make_client(server)
    # Held, not stalled: if the stop hangs, releasing the reply ends the stream and the stop.
    reply = scripted.push(text("Waiting ", "for ", "ever", hold_after=1))
    assistant = client.beta.assistants.create(model=scripted.model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hold on"}])
    http = make_http(server)
    request = http.build_request(
        "POST",
        f"/v1/threads/{thread.id}/runs",
        json={"assistant_id": assistant.id, "stream": True},
    )
    response = http.send(request, stream=True)
    lines = response.iter_lines()
    seen = []
    for event in parse_sse(lines):
        seen.append(event)
        if event.event == "thread.message.delta":
            break
    assert sse_text(seen) == "Waiting "
    assert reply.held.wait(WAIT)
    if client_state == "gone":
        response.close()

    stopper = threading.Thread(target=server.stop, name="stop-server")
    started = time.monotonic()
    stopper.start()
    stopper.join(STOP_BOUND)
    took = time.monotonic() - started
    stopped = not stopper.is_alive()
    if not stopped:
        reply.release()  # unblock the stop so that the test can clean up
        stopper.join(WAIT)
    rest = []
    if client_state == "reading":
        # The stream ends: by the stop, or (after the release) with its run.
        rest = list(parse_sse(_until_closed(lines)))
        response.close()
    assert stopped, (
        f"stopping the server took more than {took:.1f}s: it waited on an event stream whose "
        f"client is {client_state} (a run stalled upstream)"
    )
    assert took >= GRACE, f"the stop ended the stream after {took:.2f}s, before its grace"
    if client_state == "reading":
        assert rest, "the stream was cut without an event"
        last = rest[-1]
        assert last.event == "error", f"the stream ended with {last.event!r}, not an error"
        error = last.json()
        assert error["type"] == error["error"]["type"] == "server_error"
        assert "restarting" in error["error"]["message"]


def _until_closed(lines: Iterator[str]) -> Iterator[str]:
    """The remaining lines of a stream the server may cut: stop quietly when it does."""
    try:
        yield from lines
    except Exception:
        return
