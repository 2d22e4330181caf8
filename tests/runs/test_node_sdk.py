"""The official openai Node SDK (`tests/node`, openai 7.x, locked) against a live server.

`npm ci` installs the locked dependencies into `tests/node/node_modules` when they are missing
or differ from the lockfile. The test is skipped only when `node` or `npm` is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import openai
import pytest
from harness.server import ServerThread
from openai.types.beta import Assistant

from runs.support import TEXT_RUN_EVENTS, collapse, message_text, run_messages

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
SCRIPT = NODE_DIR / "stream.mjs"
INSTALL_TIMEOUT = 300.0
RUN_TIMEOUT = 60.0

pytestmark = pytest.mark.slow


def _locked_version() -> str:
    lock = json.loads((NODE_DIR / "package-lock.json").read_text(encoding="utf-8"))
    version = lock["packages"]["node_modules/openai"]["version"]
    assert isinstance(version, str)
    return version


def _installed_version() -> str | None:
    manifest = NODE_DIR / "node_modules" / "openai" / "package.json"
    if not manifest.is_file():
        return None
    version = json.loads(manifest.read_text(encoding="utf-8")).get("version")
    return version if isinstance(version, str) else None


@pytest.fixture(scope="module")
def node() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("the Node SDK check needs node and npm on PATH")
    locked = _locked_version()
    assert locked.startswith("7."), f"tests/node must pin openai 7.x, the lockfile has {locked}"
    if _installed_version() != locked:
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            check=False,
        )
        assert result.returncode == 0, f"npm ci failed:\n{result.stdout}\n{result.stderr}"
    assert _installed_version() == locked
    return node


def _run_script(node: str, *args: str) -> dict[str, Any]:
    env = {**os.environ, "OPENAI_API_KEY": "test", "NO_COLOR": "1"}
    for name in ("OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        env.pop(name, None)
    result = subprocess.run(
        [node, str(SCRIPT), *args],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=env,
        check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines, f"the script printed nothing (exit {result.returncode}):\n{result.stderr}"
    output = json.loads(lines[-1])
    assert isinstance(output, dict)
    assert result.returncode == 0, f"the script failed: {output.get('error')}\n{result.stderr}"
    return output


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

    output = _run_script(
        node,
        runs_server.base_url,
        echo_assistant.id,
        stream_thread.id,
        poll_thread.id,
        tool_thread.id,
    )

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
