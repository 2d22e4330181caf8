"""A single core on SQLite that crashes (SIGKILL) resumes its runs as soon as it is restarted.

Leases exist for cores that share a database; a SQLite file serves one core, so a restarted
core takes over whatever the crashed one held without waiting for those leases to run out.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx2
import openai
import pytest
from harness.processes import Process
from harness.server import postgres_admin_url

from runs.support import assert_nothing_left_open, thread_texts, wait_run
from runs.upstream import ScriptedModel, ScriptedUpstream, text

pytestmark = pytest.mark.skipif(
    postgres_admin_url() is not None,
    reason="on PostgreSQL other cores may share the database: leases are honoured (failover test)",
)

WAIT = 20.0
REPLY = ("The ", "whole ", "reply.")


def start(tmp_path: Path, upstream: ScriptedUpstream) -> tuple[Process, openai.OpenAI]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("COMPAT_", "OPENAI_"))}
    process = Process(
        "run",
        {
            **base,
            "COMPAT_DATABASE_URL": f"sqlite:///{tmp_path / 'compat.db'}",
            "COMPAT_HTTP_HOST": "127.0.0.1",
            "COMPAT_HTTP_PORT": "0",
            "COMPAT_GRPC_HOST": "127.0.0.1",
            "COMPAT_GRPC_PORT": "0",
            # Far longer than the test: only the restart's own claim can resume the run.
            "COMPAT_RUN_LEASE_SECONDS": "600",
            "COMPAT_PROVIDER_SCRIPTED_BASE_URL": upstream.base_url,
        },
        tmp_path,
    )
    base_url = process.wait_for(r"OpenAI base URL (\S+)\)")[1]
    client = openai.OpenAI(
        base_url=base_url, api_key="test", max_retries=0, http_client=httpx2.Client(timeout=WAIT)
    )
    return process, client


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()


def test_a_crashed_core_resumes_its_runs_when_restarted(
    tmp_path: Path,
    upstream: ScriptedUpstream,
    scripted: ScriptedModel,
    processes: list[Process],
) -> None:
    first = scripted.push(text(*REPLY, hold_after=1))
    scripted.push(text(*REPLY))
    crashing, client = start(tmp_path, upstream)
    processes.append(crashing)
    assistant = client.beta.assistants.create(model=scripted.model)
    run = client.beta.threads.create_and_run(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "hi"}]}
    )
    assert first.held.wait(WAIT)
    crashing.kill()
    client.close()

    restarted, client = start(tmp_path, upstream)
    processes.append(restarted)
    ended = wait_run(client, run.thread_id, run.id, timeout=WAIT)
    assert ended.status == "completed"
    assert thread_texts(client, run.thread_id) == [("user", "hi"), ("assistant", "".join(REPLY))]
    assert_nothing_left_open(client, run.thread_id, ended)
    client.close()
