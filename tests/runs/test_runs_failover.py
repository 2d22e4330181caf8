"""A deployment at scale loses a core: two core processes and two edge processes on one
PostgreSQL database, 50 runs in flight through both edges, one core killed with SIGKILL.

Every run is held by the scripted upstream in the middle of its reply when the core dies, so
about half of them die with it. The survivor claims them once their leases run out and writes
their replies again; cancels sent meanwhile (necessarily through the survivor) reach runs on
both sides. In the end every run has ended, every thread holds exactly its user message and one
reply per completed run, and streams the survivor served ran to their end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from harness.processes import Process
from harness.server import database_url, drop_database, postgres_admin_url
from openai.types.beta.threads import Run
from openai.types.beta.threads.run_submit_tool_outputs_params import ToolOutput
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from compat_core.store.postgres import async_url
from runs.support import TERMINAL, message_text, run_messages, run_steps, thread_texts, wait_run
from runs.tools import GET_WEATHER
from runs.upstream import Call, Reply, ScriptedModel, ScriptedUpstream
from runs.upstream import text as text_reply
from runs.upstream import tool_calls as tool_calls_reply

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        postgres_admin_url() is None,
        reason="several cores share a database only on PostgreSQL (the PostgreSQL pass runs this)",
    ),
]

START_TIMEOUT = 60.0
WAIT = 60.0
LEASE_SECONDS = 2
PIECES = tuple(f"word{index} " for index in range(12))
REPLY = "".join(PIECES)
RUNS = 50
STREAMED = range(15)
WITH_TOOLS = range(15, 30)
CANCELS_PER_CORE = 3


@dataclass
class Deployment:
    database_url: str
    cores: dict[str, Process]
    edges: list[Process]
    base_urls: list[str]
    clients: list[openai.OpenAI] = field(default_factory=list)

    def client(self, index: int) -> openai.OpenAI:
        return self.clients[index % len(self.clients)]

    def lease_owners(self) -> dict[str, str]:
        """run ID → the replica holding its lease, read from the database itself."""
        return asyncio.run(_lease_owners(self.database_url))


async def _lease_owners(url: str) -> dict[str, str]:
    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT run_id, owner FROM run_leases"))
            return {str(run_id): str(owner) for run_id, owner in rows}
    finally:
        await engine.dispose()


@pytest.fixture
def deployment(tmp_path: Path, upstream: ScriptedUpstream) -> Iterator[Deployment]:
    url = database_url(tmp_path)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("COMPAT_", "OPENAI_"))}
    cores: dict[str, Process] = {}
    edges: list[Process] = []
    clients: list[openai.OpenAI] = []
    try:
        for name in ("core-a", "core-b"):
            cores[name] = Process(
                "core",
                {
                    **base,
                    "COMPAT_DATABASE_URL": url,
                    "COMPAT_GRPC_HOST": "127.0.0.1",
                    "COMPAT_GRPC_PORT": "0",
                    "COMPAT_METRICS_PORT": "0",
                    "COMPAT_REPLICA_ID": name,
                    "COMPAT_RUN_LEASE_SECONDS": str(LEASE_SECONDS),
                    "COMPAT_FILES_DIR": str(tmp_path / "files"),
                    "COMPAT_PROVIDER_SCRIPTED_BASE_URL": upstream.base_url,
                },
                tmp_path,
            )
        ports = [core.wait_for(r"core serving gRPC on [\d.]+:(\d+)")[1] for core in cores.values()]
        target = "ipv4:" + ",".join(f"127.0.0.1:{port}" for port in ports)
        for _ in range(2):
            edges.append(
                Process(
                    "edge",
                    {
                        **base,
                        "COMPAT_HTTP_HOST": "127.0.0.1",
                        "COMPAT_HTTP_PORT": "0",
                        "COMPAT_CORE_TARGET": target,
                    },
                    tmp_path,
                )
            )
        base_urls = [edge.wait_for(r"Running on (http://[\d.:]+)")[1] + "/v1" for edge in edges]
        for base_url in base_urls:
            clients.append(
                openai.OpenAI(
                    base_url=base_url,
                    api_key="test",
                    # The SDK's own retries ride over a request cut by the kill (503).
                    max_retries=3,
                    http_client=httpx2.Client(timeout=WAIT),
                )
            )
        yield Deployment(url, cores, edges, base_urls, clients)
    finally:
        for client in clients:
            client.close()
        for process in [*edges, *cores.values()]:
            process.stop()
        drop_database(url)


@dataclass
class Job:
    """One run of the test and what its worker saw."""

    index: int
    model: ScriptedModel
    held: Reply
    thread_id: str = ""
    run_id: str = ""
    streamed: list[Any] = field(default_factory=list)
    stream_error: BaseException | None = None
    final: Run | None = None


def script(job_index: int, model: ScriptedModel) -> Reply:
    """The model's replies: the first text reply holds mid-way; later ones (a resumption after
    the kill writes the reply again) run straight through."""
    if job_index in WITH_TOOLS:
        model.push(tool_calls_reply(Call("get_weather", '{"city": "Oslo"}')))
    held = model.push(text_reply(*PIECES, hold_after=3))
    model.push(text_reply(*PIECES), text_reply(*PIECES), text_reply(*PIECES))
    return held


def drive(job: Job, client: openai.OpenAI, assistant_id: str) -> None:
    """Create the run, follow it (streaming or polling), answer tool calls, until it ends."""
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"job {job.index}"}])
    job.thread_id = thread.id
    if job.index in STREAMED:
        try:
            with client.beta.threads.runs.create(
                thread.id, assistant_id=assistant_id, model=job.model.model, stream=True
            ) as stream:
                for event in stream:
                    if not job.run_id and event.event == "thread.run.created":
                        job.run_id = event.data.id
                    job.streamed.append(event)
        except openai.APIError as exc:
            # The core relaying this stream died: the run goes on elsewhere.
            job.stream_error = exc
        if not job.run_id:
            job.run_id = client.beta.threads.runs.list(thread.id).data[0].id
    else:
        run = client.beta.threads.runs.create(
            thread.id, assistant_id=assistant_id, model=job.model.model
        )
        job.run_id = run.id
    while True:
        run = wait_run(
            client, thread.id, job.run_id, statuses=TERMINAL | {"requires_action"}, timeout=WAIT
        )
        if run.status != "requires_action":
            job.final = run
            return
        assert run.required_action is not None
        outputs: list[ToolOutput] = [
            {"tool_call_id": call.id, "output": "sunny"}
            for call in run.required_action.submit_tool_outputs.tool_calls
        ]
        with contextlib.suppress(openai.BadRequestError):  # a retried submit that landed
            client.beta.threads.runs.submit_tool_outputs(
                job.run_id, thread_id=thread.id, tool_outputs=outputs
            )


def test_runs_survive_a_core_killed_mid_reply(
    deployment: Deployment, upstream: ScriptedUpstream
) -> None:
    first = deployment.client(0)
    plain = first.beta.assistants.create(model="builtin/echo", name="plain")
    with_tools = first.beta.assistants.create(
        model="builtin/echo", name="tools", tools=[GET_WEATHER]
    )
    jobs = []
    for index in range(RUNS):
        model = upstream.model()
        jobs.append(Job(index, model, script(index, model)))

    with ThreadPoolExecutor(RUNS) as pool:
        futures: list[Future[None]] = [
            pool.submit(
                drive,
                job,
                deployment.client(job.index),
                with_tools.id if job.index in WITH_TOOLS else plain.id,
            )
            for job in jobs
        ]
        # Every run is in the middle of its reply, held by the upstream.
        for job in jobs:
            assert job.held.held.wait(WAIT), f"job {job.index} never reached its reply"
        owners = deployment.lease_owners()
        by_core = {
            name: [job for job in jobs if owners.get(job.run_id) == name]
            for name in ("core-a", "core-b")
        }
        assert all(by_core.values()), f"runs did not spread over both cores: {owners}"

        deployment.cores["core-a"].kill()

        # Cancels through the edges now reach only the survivor: for runs it executes, and for
        # runs of the dead core that nobody executes until their lease runs out.
        cancelled = [
            job
            for name in ("core-a", "core-b")
            for job in [j for j in by_core[name] if j.index not in WITH_TOOLS][:CANCELS_PER_CORE]
        ]
        for job in cancelled:
            answer = deployment.client(job.index + 1).beta.threads.runs.cancel(
                job.run_id, thread_id=job.thread_id
            )
            assert answer.status == "cancelling"
        for job in jobs:
            job.held.release()
        for future in futures:
            future.result(timeout=WAIT * 2)

    check = deployment.client(1)
    cancelled_ids = {job.run_id for job in cancelled}
    survivor_runs = {job.run_id for job in by_core["core-b"]}
    for job in jobs:
        assert job.final is not None
        side = "surviving" if job.run_id in survivor_runs else "dead"
        where = f"job {job.index} (on the {side} core)"
        for step in run_steps(check, job.thread_id, job.run_id):
            assert step.status != "in_progress", f"{where}: step {step.id} left in progress"
        replies = run_messages(check, job.thread_id, job.run_id)
        if job.run_id in cancelled_ids:
            assert job.final.status == "cancelled", where
            assert len(replies) <= 1, f"{where}: {len(replies)} replies"
            for reply in replies:
                assert reply.status == "incomplete", where
                assert REPLY.startswith(message_text(reply)), where
            continue
        ended = job.final
        assert ended.status == "completed", f"{where}: {ended.status} {ended.last_error}"
        assert thread_texts(check, job.thread_id) == [
            ("user", f"job {job.index}"),
            ("assistant", REPLY),
        ], f"{where}: wrong messages"
        assert [m.status for m in replies] == ["completed"], where
        # One model call per turn; a run of the dead core asked again for the reply it lost.
        turns = 2 if job.index in WITH_TOOLS else 1
        lost = 0 if job.run_id in survivor_runs else 1
        assert len(job.model.requests) == turns + lost, where
        if job.index in STREAMED and job.run_id in survivor_runs:
            assert job.stream_error is None, f"{where}: {job.stream_error}"
            names = [event.event for event in job.streamed]
            assert names[-1] == "thread.run.completed", where
            assert streamed_text(job.streamed) == REPLY, where

    # The survivor, whose work this all was, still stops cleanly.
    assert deployment.cores["core-b"].stop() == 0, "".join(deployment.cores["core-b"].log[-20:])


def streamed_text(events: list[Any]) -> str:
    """The text of the message deltas of an SDK event stream."""
    pieces = []
    for event in events:
        if event.event == "thread.message.delta":
            for part in event.data.delta.content or []:
                if part.type == "text" and part.text and part.text.value:
                    pieces.append(part.text.value)
    return "".join(pieces)
