"""The gRPC contract from Node (`tests/node/grpc_run.mjs`: @grpc/grpc-js with the .proto files
of `proto/` loaded by @grpc/proto-loader, nothing generated from Python): a streamed run and
`WatchRun` see what the Python stubs see, and a server with keys refuses a call without one.
Skipped only when `node` or `npm` is not installed (see `runs.nodejs`)."""

from __future__ import annotations

from typing import Any

import grpc
import openai
import pytest
from harness import API_KEY, MakeClient
from harness.grpc_client import GrpcClient
from harness.server import ServerThread
from openai.types.beta import Assistant

from compat_core.v1 import runs_pb2
from runs.nodejs import run_script
from runs.support import TEXT_RUN_EVENTS, collapse, grpc_name, grpc_text, message_text, run_messages

SCRIPT = "grpc_run.mjs"
USER_TEXT = "Node reads this run over gRPC word by word"
DELTA = "thread.message.delta"
WAIT = 10.0

pytestmark = pytest.mark.slow


def _names(events: list[dict[str, Any]]) -> list[str]:
    return [event["name"] for event in events]


def _growing(events: list[dict[str, Any]]) -> bool:
    """Sequences start at 1 and grow up to `done` (merged deltas may skip numbers)."""
    numbers = [event["sequence"] for event in events if event["name"] != "done"]
    return numbers[0] == 1 and numbers == sorted(set(numbers))


@pytest.mark.parametrize("mode", ["one-by-one", "batches"])
def test_node_streams_a_run_and_watches_it_as_python_does(
    node: str,
    runs_server: ServerThread,
    client: openai.OpenAI,
    grpc_client: GrpcClient,
    echo_assistant: Assistant,
    mode: str,
) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": USER_TEXT}])
    args = [runs_server.grpc_target, echo_assistant.id, thread.id]
    output = run_script(node, SCRIPT, *args, *(["batches"] if mode == "batches" else [])).ok()

    run, stream = output["run"], output["stream"]
    assert (run["created"], run["final"]) == ("RUN_STATUS_QUEUED", "RUN_STATUS_COMPLETED")
    assert collapse(_names(stream["events"])) == TEXT_RUN_EVENTS
    assert _growing(stream["events"])
    if mode == "batches":
        # The run's first events are published together, so at least they share a message.
        assert stream["batches"] >= 1
        assert stream["messages"] < len(stream["events"])
    else:
        assert (stream["batches"], stream["messages"]) == (0, len(stream["events"]))

    [stored] = run_messages(client, thread.id, run["id"])
    assert stream["text"] == message_text(stored) == USER_TEXT
    stored_run = grpc_client.runs.GetRun(
        runs_pb2.GetRunRequest(thread_id=thread.id, run_id=run["id"]), timeout=WAIT
    )
    usage = stored_run.usage
    assert run["usage"] == {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }

    # The same run replayed to Python's stubs: the same events in the same order, each
    # non-delta event at the same position in the run's stream, and the same text (deltas may
    # be merged differently for each reader).
    replay = list(
        grpc_client.runs.WatchRun(
            runs_pb2.WatchRunRequest(run_id=run["id"], after_sequence=0), timeout=WAIT
        )
    )
    python_events = [{"name": grpc_name(e), "sequence": e.sequence} for e in replay]
    for node_events in (stream["events"], output["replay"]["events"]):
        assert collapse(_names(node_events)) == collapse(_names(python_events))
        assert [e for e in node_events if e["name"] != DELTA] == [
            e for e in python_events if e["name"] != DELTA
        ]
    assert output["replay"]["text"] == grpc_text(replay) == USER_TEXT
    assert output["replay"]["batches"] == 0
    assert output["state"]["events"] == [
        {"name": "thread.run.completed", "sequence": python_events[-2]["sequence"]},
        {"name": "done", "sequence": python_events[-1]["sequence"]},
    ]


@pytest.mark.parametrize("key", [None, "not-a-key"])
def test_node_without_the_key_is_refused_unauthenticated(
    node: str,
    auth_server: ServerThread,
    make_client: MakeClient,
    key: str | None,
) -> None:
    client = make_client(auth_server, api_key=API_KEY)
    assistant = client.beta.assistants.create(model="builtin/echo")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": USER_TEXT}])
    args = [auth_server.grpc_target, assistant.id, thread.id]

    refused = run_script(node, SCRIPT, *args, env={"COMPAT_API_KEY": key} if key else {})
    assert refused.returncode == 1
    error = refused.output["error"]
    assert (error["code"], error["status"]) == (
        grpc.StatusCode.UNAUTHENTICATED.value[0],
        "UNAUTHENTICATED",
    )
    assert error["details"]
    assert client.beta.threads.runs.list(thread.id).data == []

    # The same call with the key goes through: the refusal was the key's, not the script's.
    output = run_script(node, SCRIPT, *args, env={"COMPAT_API_KEY": API_KEY}).ok()
    assert output["stream"]["text"] == USER_TEXT
    assert [run.id for run in client.beta.threads.runs.list(thread.id).data] == [
        output["run"]["id"]
    ]
