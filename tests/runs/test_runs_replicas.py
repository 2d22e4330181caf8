"""Several cores on one PostgreSQL database: a run is reached through any of them.

Two embedded servers (each a core and an edge) share one database here; the run executes on
the core it was created through, and the other core is the one the client happens to reach.
The failover of a killed core process is `test_runs_failover.py`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from harness import MakeClient, MakeGrpc
from harness.server import ServerThread, database_url, drop_database, postgres_admin_url
from openai.types.beta.threads import Run

from compat_core.v1 import runs_pb2
from runs.support import grpc_name, grpc_text, message_text, run_messages, thread_texts, wait_run
from runs.tools import GET_WEATHER
from runs.upstream import Call, ScriptedModel, text, tool_calls

pytestmark = pytest.mark.skipif(
    postgres_admin_url() is None,
    reason="several cores share a database only on PostgreSQL (the PostgreSQL pass runs this)",
)

WAIT = 20.0
REPLY = ("The ", "whole ", "reply.")


@pytest.fixture
def two_cores(
    tmp_path_factory: pytest.TempPathFactory, provider_overrides: dict[str, Any]
) -> Iterator[tuple[ServerThread, ServerThread]]:
    url = database_url(tmp_path_factory.mktemp("shared"))
    servers: list[ServerThread] = []
    try:
        for name in ("core-a", "core-b"):
            server = ServerThread(database_url=url, replica_id=name, **provider_overrides)
            servers.append(server.start())
        yield servers[0], servers[1]
    finally:
        for server in reversed(servers):
            server.stop()
        drop_database(url)


def start_run(client: openai.OpenAI, scripted: ScriptedModel, **assistant: Any) -> Run:
    """A run of a new assistant on `scripted`, on a new thread that says "hi"."""
    created = client.beta.assistants.create(model=scripted.model, **assistant)
    return client.beta.threads.create_and_run(
        assistant_id=created.id, thread={"messages": [{"role": "user", "content": "hi"}]}
    )


def test_watch_through_another_core_sees_the_whole_run(
    two_cores: tuple[ServerThread, ServerThread],
    make_client: MakeClient,
    make_grpc: MakeGrpc,
    scripted: ScriptedModel,
) -> None:
    executing, other = two_cores
    client = make_client(executing)
    reply = scripted.push(text(*REPLY, hold_after=1))
    run = start_run(client, scripted)
    assert reply.held.wait(WAIT)
    # The model is asked while the run's start is stored: the store may say in_progress a
    # moment after the upstream has the request.
    wait_run(client, run.thread_id, run.id, ["in_progress"])

    watcher = make_grpc(other)
    live = watcher.runs.WatchRun(runs_pb2.WatchRunRequest(run_id=run.id), timeout=WAIT)
    first = next(live)
    assert grpc_name(first) == "thread.run.in_progress", "the run's state comes first"
    reply.release()
    rest = list(live)
    assert [grpc_name(e) for e in rest[-2:]] == ["thread.run.completed", "done"]
    # Everything after the hold; the piece before it too if it was not stored yet when the
    # watcher joined (announced after the state, never lost, never twice).
    seen = grpc_text(rest)
    assert seen in ("".join(REPLY), "".join(REPLY[1:]))

    # From the start: every event the executing core announced, in order, through the other.
    replay = list(
        watcher.runs.WatchRun(
            runs_pb2.WatchRunRequest(run_id=run.id, after_sequence=0), timeout=WAIT
        )
    )
    names = [grpc_name(e) for e in replay]
    assert names[:3] == ["thread.created", "thread.run.created", "thread.run.queued"]
    assert names[-2:] == ["thread.run.completed", "done"]
    assert grpc_text(replay) == "".join(REPLY)
    sequences = [e.sequence for e in replay[:-1]]
    assert sequences == sorted(set(sequences)), "sequences only go up"


def test_cancel_through_another_core_stops_the_run_where_it_executes(
    two_cores: tuple[ServerThread, ServerThread],
    make_client: MakeClient,
    scripted: ScriptedModel,
) -> None:
    executing, other = two_cores
    reply = scripted.push(text(*REPLY, hold_after=1))
    client = make_client(executing)
    run = start_run(client, scripted)
    assert reply.held.wait(WAIT)

    cancelling = make_client(other).beta.threads.runs.cancel(run.id, thread_id=run.thread_id)
    assert cancelling.status == "cancelling"
    # The executing core aborts its upstream call: the held reply never goes on.
    assert reply.disconnected.wait(WAIT), "the cancel did not reach the executing core"
    ended = wait_run(client, run.thread_id, run.id, timeout=WAIT)
    assert ended.status == "cancelled"
    replies = run_messages(client, run.thread_id, run.id)
    assert [(m.status, message_text(m)) for m in replies] == [("incomplete", REPLY[0])]


def test_tool_outputs_through_another_core_resume_the_run_there(
    two_cores: tuple[ServerThread, ServerThread],
    make_client: MakeClient,
    scripted: ScriptedModel,
) -> None:
    executing, other = two_cores
    scripted.push(
        tool_calls(Call("get_weather", '{"city": "Oslo"}')),
        text("It is ", "cold."),
    )
    client = make_client(executing)
    run = start_run(client, scripted, tools=[GET_WEATHER])
    waiting = wait_run(client, run.thread_id, run.id, statuses={"requires_action"}, timeout=WAIT)
    assert waiting.required_action is not None
    call = waiting.required_action.submit_tool_outputs.tool_calls[0]

    answered = make_client(other).beta.threads.runs.submit_tool_outputs(
        run.id, thread_id=run.thread_id, tool_outputs=[{"tool_call_id": call.id, "output": "-3"}]
    )
    assert answered.status == "queued"
    ended = wait_run(client, run.thread_id, run.id, timeout=WAIT)
    assert ended.status == "completed"
    assert thread_texts(client, run.thread_id) == [("user", "hi"), ("assistant", "It is cold.")]
    assert scripted.requests[1]["messages"][-1] == {
        "role": "tool",
        "tool_call_id": call.id,
        "content": "-3",
    }


def test_a_core_that_stops_hands_its_runs_to_another_at_once(
    two_cores: tuple[ServerThread, ServerThread],
    make_client: MakeClient,
    scripted: ScriptedModel,
) -> None:
    executing, other = two_cores
    first = scripted.push(text(*REPLY, hold_after=1))
    scripted.push(text(*REPLY))
    client = make_client(executing)
    run = start_run(client, scripted)
    assert first.held.wait(WAIT)
    # The stop waits for nothing held: the run stays stored, and its lease is released.
    stopper = threading.Thread(target=executing.stop)
    stopper.start()
    stopper.join(WAIT)
    assert not stopper.is_alive()
    first.release()

    survivor = make_client(other)
    ended = wait_run(survivor, run.thread_id, run.id, timeout=WAIT)
    assert ended.status == "completed"
    assert thread_texts(survivor, run.thread_id) == [("user", "hi"), ("assistant", "".join(REPLY))]
