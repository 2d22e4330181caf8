"""The official openai Node SDK (`tests/node/stream.mjs`, openai 7.x, locked) against a live
server. The test is skipped only when `node` or `npm` is not installed (see `runs.nodejs`)."""

from __future__ import annotations

import json

import openai
import pytest
from harness.server import ServerThread
from openai.types.beta import Assistant

from runs.nodejs import run_script
from runs.support import TEXT_RUN_EVENTS, collapse, message_text, run_messages

pytestmark = pytest.mark.slow


def test_node_sdk_streams_polls_and_answers_tools(
    node: str, runs_server: ServerThread, client: openai.OpenAI, echo_assistant: Assistant
) -> None:
    stream_text = "Node streams this sentence word by word"
    threads = client.beta.threads
    stream_thread = threads.create(messages=[{"role": "user", "content": stream_text}])
    poll_thread = threads.create(messages=[{"role": "user", "content": "polled from Node"}])
    tool_thread = threads.create(
        messages=[
            {
                "role": "user",
                "content": '/call get_weather {"city": "Paris"}\n/call get_time {"tz": "UTC"}',
            }
        ]
    )

    output = run_script(
        node,
        "stream.mjs",
        runs_server.base_url,
        echo_assistant.id,
        stream_thread.id,
        poll_thread.id,
        tool_thread.id,
        env={"OPENAI_API_KEY": "test"},
    ).ok()

    streamed = output["stream"]
    assert streamed["run"]["status"] == "completed"
    assert streamed["text"] == stream_text
    assert collapse(streamed["events"]) == TEXT_RUN_EVENTS[:-1]
    [stored] = run_messages(client, stream_thread.id, streamed["run"]["id"])
    assert message_text(stored) == streamed["text"]
    assert streamed["messages"] == [{"id": stored.id, "status": "completed", "text": stream_text}]

    polled = output["poll"]
    assert polled["status"] == "completed"
    assert polled["usage"]["completion_tokens"] == 3
    [reply] = run_messages(client, poll_thread.id, polled["id"])
    assert message_text(reply) == "polled from Node"

    tools = output["tools"]
    assert tools["waiting"]["status"] == "requires_action"
    pending = [(c["name"], json.loads(c["arguments"])) for c in tools["pending"]]
    assert pending == [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "UTC"})]
    assert [(c["id"], c["name"], c["arguments"]) for c in tools["streamedCalls"]] == [
        (c["id"], c["name"], c["arguments"]) for c in tools["pending"]
    ]
    assert tools["done"] == {"id": tools["waiting"]["id"], "status": "completed"}
    expected = "get_weather returned: out:get_weather\nget_time returned: out:get_time"
    assert tools["text"] == expected
    [answer] = run_messages(client, tool_thread.id, tools["waiting"]["id"])
    assert message_text(answer) == expected
