"""Runs of a project other than the default one, through what the core does in the background.

A run resumed after a restart is claimed across projects and executed again in its own: its
reply lands in its thread's project, readable with that project's key and missing to others.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import openai
import pytest
from harness import MakeClient, MakeServer

from compat_core.keyring import KeyRing, project_named
from compat_core.store import create_store
from runs.support import POLL_MS, message_text, run_messages, wait_run
from runs.upstream import ScriptedModel, stall, text

WAIT = 10.0
CONFIG_KEY = "k-default"


async def _project_key(url: str) -> str:
    """A key of a new project, made in the running server's database as the CLI makes it."""
    store = create_store(url)
    await store.open()
    try:
        project = await project_named(store, "team-runs", create=True)
        assert project is not None
        keys = KeyRing(store, ())
        _, key = await keys.create(project.id, "runs")
        await keys.close()
        return key
    finally:
        await store.close()


def test_a_run_resumed_after_a_restart_writes_into_its_own_project(
    make_server: MakeServer,
    make_client: MakeClient,
    provider_overrides: dict[str, Any],
    scripted: ScriptedModel,
) -> None:
    server = make_server(api_keys=[CONFIG_KEY], **provider_overrides)
    key = asyncio.run(_project_key(server.database_url))
    client = make_client(server, api_key=key)
    interrupted = scripted.push(stall("Cut ", "short "))
    assistant = client.beta.assistants.create(model=scripted.model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "story"}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    assert interrupted.held.wait(WAIT)
    deadline = time.monotonic() + WAIT
    while not [m for m in run_messages(client, thread.id, run.id) if m.status == "in_progress"]:
        assert time.monotonic() < deadline, "the partial reply was never stored"
        time.sleep(POLL_MS / 1000)

    resumed = scripted.push(text("Told ", "whole."))
    server.restart()
    client = make_client(server, api_key=key)  # new ports
    done = wait_run(client, thread.id, run.id)
    assert done.status == "completed", done.last_error
    assert resumed.finished.wait(WAIT)
    [reply] = run_messages(client, thread.id, run.id)
    assert message_text(reply) == "Told whole."

    default = make_client(server, api_key=CONFIG_KEY)
    with pytest.raises(openai.NotFoundError):
        default.beta.threads.messages.retrieve(reply.id, thread_id=thread.id)
    with pytest.raises(openai.NotFoundError):
        default.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
