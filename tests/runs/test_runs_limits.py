"""The limits of a project's runs (tokens per minute, concurrent runs, concurrent streams) and
its usage (issue 18); both stores, and two cores on one PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import httpx2
import openai
import pytest
from harness import MakeClient, MakeHttp, MakeServer
from harness.grpc_client import rich_error
from harness.server import ServerThread, database_url, drop_database, postgres_admin_url

from compat_core import tenancy
from compat_core.keyring import KeyRing, project_named
from compat_core.store import create_store
from compat_core.store.base import DailyUsage
from compat_core.v1 import runs_pb2, runs_pb2_grpc
from runs.support import POLL_MS, wait_run
from runs.tools import GET_WEATHER
from runs.upstream import Call, ScriptedModel, ScriptedUpstream, Usage, text, tool_calls

WAIT = 10.0
LONG_WINDOW = 3600
CONFIG_KEY = "k-default"


def _thread_and_run(client: openai.OpenAI, model: str, **assistant: Any) -> Any:
    created = client.beta.assistants.create(model=model, **assistant)
    return client.beta.threads.create_and_run(
        assistant_id=created.id, thread={"messages": [{"role": "user", "content": "hi"}]}
    )


def test_a_spent_tokens_window_refuses_new_runs(
    make_server: MakeServer,
    make_client: MakeClient,
    provider_overrides: dict[str, Any],
    scripted: ScriptedModel,
) -> None:
    server = make_server(
        rate_limit_tokens_per_minute=10,
        rate_limit_window_seconds=LONG_WINDOW,
        **provider_overrides,
    )
    client = make_client(server)
    scripted.push(text("Fine.", usage=Usage(8, 4)))
    first = _thread_and_run(client, scripted.model)
    assert wait_run(client, first.thread_id, first.id).status == "completed"
    assistant = client.beta.assistants.create(model=scripted.model)
    with pytest.raises(openai.RateLimitError) as raised:
        client.beta.threads.create_and_run(assistant_id=assistant.id)
    error = raised.value
    assert error.type == "tokens"
    assert error.code == "rate_limit_exceeded"
    assert "on tokens per min (TPM): Limit 10, Used 12." in error.message
    headers = error.response.headers
    assert headers["x-ratelimit-limit-tokens"] == "10"
    assert headers["x-ratelimit-remaining-tokens"] == "0"
    assert re.match(r"^(\d+m)?\d+(\.\d+)?s$", headers["x-ratelimit-reset-tokens"])
    assert 1 <= int(headers["retry-after"]) <= LONG_WINDOW
    # A run on an existing thread is refused alike; other calls are not limited by tokens.
    thread = client.beta.threads.create()
    with pytest.raises(openai.RateLimitError):
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    assert client.beta.threads.runs.list(thread_id=thread.id).data == []


def test_concurrent_runs_count_those_waiting_for_tool_outputs(
    make_server: MakeServer,
    make_client: MakeClient,
    provider_overrides: dict[str, Any],
    scripted: ScriptedModel,
) -> None:
    server = make_server(rate_limit_concurrent_runs=1, **provider_overrides)
    client = make_client(server)
    scripted.push(tool_calls(Call("get_weather", '{"city": "Oslo"}')))
    waiting = _thread_and_run(client, scripted.model, tools=[GET_WEATHER])
    assert wait_run(client, waiting.thread_id, waiting.id, ["requires_action"])
    with pytest.raises(openai.RateLimitError) as raised:
        _thread_and_run(client, scripted.model)
    assert raised.value.type == "requests"
    assert raised.value.code == "rate_limit_exceeded"
    assert "on concurrent runs: Limit 1, Active 1." in raised.value.message
    assert raised.value.response.headers["retry-after"] == "1"

    client.beta.threads.runs.cancel(waiting.id, thread_id=waiting.thread_id)
    assert wait_run(client, waiting.thread_id, waiting.id).status == "cancelled"
    scripted.push(text("Now."))
    second = _thread_and_run(client, scripted.model)
    assert wait_run(client, second.thread_id, second.id).status == "completed"


# Creations sent at once, and the concurrent runs limit they meet.
SIMULTANEOUS = 8
RUNS_LIMIT = 3


async def _create_at_once(
    targets: list[str], assistant_id: str, thread_ids: list[str]
) -> list[runs_pb2.Run | BaseException]:
    """SIMULTANEOUS run creations sent at once over gRPC (round robin over the cores), on
    `thread_ids` and then with threads of their own."""
    channels = [grpc.aio.insecure_channel(target) for target in targets]
    try:
        for channel in channels:
            await asyncio.wait_for(channel.channel_ready(), WAIT)
        creations: list[Any] = []
        for n in range(SIMULTANEOUS):
            stub = runs_pb2_grpc.RunsServiceStub(channels[n % len(channels)])
            if n < len(thread_ids):
                request = runs_pb2.CreateRunRequest(
                    thread_id=thread_ids[n], assistant_id=assistant_id
                )
                creations.append(stub.CreateRun(request, timeout=WAIT))
            else:
                request_new = runs_pb2.CreateThreadAndRunRequest(assistant_id=assistant_id)
                creations.append(stub.CreateThreadAndRun(request_new, timeout=WAIT))
        outcomes: list[runs_pb2.Run | BaseException] = await asyncio.gather(
            *creations, return_exceptions=True
        )
        return outcomes
    finally:
        for channel in channels:
            await channel.close()


def _check_exactly_the_limit_admitted(
    client: openai.OpenAI, scripted: ScriptedModel, servers: Sequence[ServerThread]
) -> None:
    # Runs wait for tool outputs once started, so every admitted one stays active.
    scripted.push(
        *(tool_calls(Call("get_weather", '{"city": "Oslo"}')) for _ in range(SIMULTANEOUS))
    )
    assistant = client.beta.assistants.create(model=scripted.model, tools=[GET_WEATHER])
    thread_ids = [client.beta.threads.create().id for _ in range(SIMULTANEOUS // 2)]
    targets = [server.grpc_target for server in servers]
    outcomes = asyncio.run(_create_at_once(targets, assistant.id, thread_ids))
    admitted = [o for o in outcomes if isinstance(o, runs_pb2.Run)]
    refused = [rich_error(o) for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(admitted) == RUNS_LIMIT, outcomes
    assert len(refused) == SIMULTANEOUS - RUNS_LIMIT, outcomes
    for error in refused:
        assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error.reason == "rate_limit_exceeded"
        assert f"on concurrent runs: Limit {RUNS_LIMIT}, Active {RUNS_LIMIT}." in error.message
    for run in admitted:
        assert wait_run(client, run.thread_id, run.id, ["requires_action"])
    # A refused creation stored nothing.
    stored = [r.id for t in thread_ids for r in client.beta.threads.runs.list(thread_id=t).data]
    assert sorted(stored) == sorted(r.id for r in admitted if r.thread_id in thread_ids)


def test_simultaneous_run_creations_admit_exactly_the_limit(
    make_server: MakeServer,
    make_client: MakeClient,
    provider_overrides: dict[str, Any],
    scripted: ScriptedModel,
) -> None:
    server = make_server(rate_limit_concurrent_runs=RUNS_LIMIT, **provider_overrides)
    _check_exactly_the_limit_admitted(make_client(server), scripted, [server])


def test_concurrent_streams_are_limited(
    make_server: MakeServer,
    make_http: MakeHttp,
    provider_overrides: dict[str, Any],
    scripted: ScriptedModel,
) -> None:
    server = make_server(rate_limit_concurrent_streams=1, **provider_overrides)
    http = make_http(server)
    assistant = http.post("/v1/assistants", json={"model": scripted.model}).json()
    body = {"assistant_id": assistant["id"], "stream": True}
    reply = scripted.push(text("One ", "two.", hold_after=1))
    with http.stream("POST", "/v1/threads/runs", json=body) as first:
        assert first.status_code == 200
        assert reply.held.wait(WAIT)
        refused = http.post("/v1/threads/runs", json=body)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        reply.release()
        assert "event: done" in first.read().decode()
    # The first stream ended: its slot is free again.
    scripted.push(text("Three."))
    deadline = time.monotonic() + WAIT
    while True:
        with http.stream("POST", "/v1/threads/runs", json=body) as again:
            if again.status_code == 200:
                assert "event: done" in again.read().decode()
                break
            # The core counts a stream until its RPC has wound down, a moment after the
            # client read its end.
            assert again.status_code == 429
        assert time.monotonic() < deadline, "the stream's slot was never given back"
        time.sleep(POLL_MS / 1000)


async def _project_key(url: str, name: str) -> tuple[str, str]:
    store = create_store(url)
    await store.open()
    try:
        project = await project_named(store, name, create=True)
        assert project is not None
        keys = KeyRing(store, ())
        _, key = await keys.create(project.id, name)
        await keys.close()
        return project.id, key
    finally:
        await store.close()


@dataclass(frozen=True)
class _Recorded:
    """A project's usage as the store keeps it: by day and model, and the bytes it stores."""

    days: list[DailyUsage]
    files_bytes: int
    vector_stores_bytes: int


async def _usage(url: str, project_id: str) -> _Recorded:
    store = create_store(url)
    await store.open()
    try:
        today = datetime.datetime.now(datetime.UTC).date()
        first, last = today - datetime.timedelta(days=1), today + datetime.timedelta(days=1)
        days = await store.usage_by_day(project_id, first.isoformat(), last.isoformat())
        stored = (await store.storage_by_project([project_id])).get(project_id)
        return _Recorded(days, stored.files if stored else 0, stored.vector_stores if stored else 0)
    finally:
        await store.close()


def test_usage_is_recorded_per_project_and_model(
    make_server: MakeServer,
    make_client: MakeClient,
    make_http: MakeHttp,
    provider_overrides: dict[str, Any],
    upstream: ScriptedUpstream,
) -> None:
    server = make_server(api_keys=[CONFIG_KEY], **provider_overrides)
    project_id, key = asyncio.run(_project_key(server.database_url, "usage"))
    team = make_client(server, api_key=key)
    default = make_client(server, api_key=CONFIG_KEY)
    first_model, second_model = upstream.model(), upstream.model()
    first_model.push(text("a", usage=Usage(7, 3)), text("b", usage=Usage(1, 1)))
    second_model.push(text("c", usage=Usage(20, 9)), text("d", usage=Usage(5, 2)))
    for client, model in (
        (team, first_model),
        (team, first_model),
        (team, second_model),
        (default, second_model),
    ):
        run = _thread_and_run(client, model.model)
        assert wait_run(client, run.thread_id, run.id).status == "completed"
    team.files.create(file=("notes.txt", b"x" * 1234), purpose="assistants")

    usage = asyncio.run(_usage(server.database_url, project_id))
    by_model = {(d.model, d.input_tokens, d.output_tokens, d.runs) for d in usage.days}
    assert by_model == {(first_model.model, 8, 4, 2), (second_model.model, 20, 9, 1)}
    assert usage.files_bytes == 1234
    assert usage.vector_stores_bytes == 0
    others = asyncio.run(_usage(server.database_url, tenancy.DEFAULT_PROJECT))
    assert [(d.model, d.input_tokens, d.output_tokens) for d in others.days] == [
        (second_model.model, 5, 2)
    ]
    assert others.files_bytes == 0

    metrics = make_http(server).get("/metrics").text
    assert re.search(
        rf'^compat_project_tokens_total\{{kind="prompt",project="{project_id}"\}} 28\.0$',
        metrics,
        re.MULTILINE,
    ), metrics


# Two cores on one PostgreSQL database.


TwoCores = Callable[..., tuple[ServerThread, ServerThread]]


@pytest.fixture
def two_cores(
    tmp_path_factory: pytest.TempPathFactory, provider_overrides: dict[str, Any]
) -> Iterator[TwoCores]:
    """Starts two cores on one fresh PostgreSQL database, with the limits given."""
    if postgres_admin_url() is None:
        pytest.skip("several cores share a database only on PostgreSQL")
    url = database_url(tmp_path_factory.mktemp("shared"))
    servers: list[ServerThread] = []

    def start(**limits: Any) -> tuple[ServerThread, ServerThread]:
        for name in ("core-a", "core-b"):
            server = ServerThread(
                database_url=url,
                replica_id=name,
                rate_limit_window_seconds=LONG_WINDOW,
                **limits,
                **provider_overrides,
            )
            servers.append(server.start())
        return servers[0], servers[1]

    try:
        yield start
    finally:
        for server in reversed(servers):
            server.stop()
        drop_database(url)


def test_requests_limit_holds_across_two_cores(two_cores: TwoCores, make_http: MakeHttp) -> None:
    one, other = (make_http(server) for server in two_cores(rate_limit_requests_per_minute=50))
    answers = [(one if i % 2 else other).get("/v1/assistants").status_code for i in range(120)]
    assert answers.count(200) == 50, "the cores together admit exactly the window's limit"
    assert set(answers[-20:]) == {429}


def test_tokens_spent_through_one_core_refuse_runs_through_the_other(
    two_cores: TwoCores, make_client: MakeClient, scripted: ScriptedModel
) -> None:
    first, second = (make_client(server) for server in two_cores(rate_limit_tokens_per_minute=10))
    scripted.push(text("Costly.", usage=Usage(9, 9)))
    run = _thread_and_run(first, scripted.model)
    assert wait_run(first, run.thread_id, run.id).status == "completed"
    assistant = second.beta.assistants.create(model=scripted.model)
    deadline = time.monotonic() + WAIT
    refusal: openai.RateLimitError | None = None
    while refusal is None:
        try:
            admitted = second.beta.threads.create_and_run(assistant_id=assistant.id)
        except openai.RateLimitError as exc:
            refusal = exc
            continue
        # The other core reads the shared count at most a second late: let this run end
        # (its tokens count too) and try again.
        scripted.push(text("More."))
        wait_run(second, admitted.thread_id, admitted.id)
        assert time.monotonic() < deadline, "the other core never saw the tokens"
        time.sleep(POLL_MS / 1000)
    assert refusal.type == "tokens"


def test_simultaneous_run_creations_on_two_cores_admit_exactly_the_limit(
    two_cores: TwoCores, make_client: MakeClient, scripted: ScriptedModel
) -> None:
    cores = two_cores(rate_limit_concurrent_runs=RUNS_LIMIT)
    _check_exactly_the_limit_admitted(make_client(cores[0]), scripted, cores)


STREAMS_LIMIT = 2
# How long a core's open streams count unrenewed (`run_lease_seconds`): short, so that a
# core's own rows are seen to outlive it only through renewal.
SLOT_SECONDS = 2.0


async def _leave_streams_of_a_dead_core(url: str, open_streams: int, expires_at_ms: int) -> None:
    """The row a core that died with streams open leaves behind."""
    store = create_store(url)
    await store.open()
    try:
        await store.set_stream_slot(
            tenancy.DEFAULT_PROJECT, "dead-core", open_streams, expires_at_ms
        )
    finally:
        await store.close()


def _refused_stream(http: httpx2.Client, body: dict[str, Any]) -> None:
    refused = http.post("/v1/threads/runs", json=body)
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert f"on concurrent streams: Limit {STREAMS_LIMIT}," in refused.json()["error"]["message"]
    assert refused.headers["retry-after"] == "1"


def _stream_once_admitted(http: httpx2.Client, body: dict[str, Any], what: str) -> httpx2.Response:
    """A stream opened as soon as the cores admit it (polling: slots free a moment after
    the stream that held them ends, or once a dead core's row expires). Close it."""
    deadline = time.monotonic() + WAIT
    while True:
        response = http.send(http.build_request("POST", "/v1/threads/runs", json=body), stream=True)
        if response.status_code == 200:
            return response
        assert response.status_code == 429, response.read()
        response.close()
        assert time.monotonic() < deadline, what
        time.sleep(POLL_MS / 1000)


def test_concurrent_streams_are_limited_across_two_cores(
    two_cores: TwoCores, make_http: MakeHttp, scripted: ScriptedModel
) -> None:
    cores = two_cores(rate_limit_concurrent_streams=STREAMS_LIMIT, run_lease_seconds=SLOT_SECONDS)
    one, other = (make_http(server) for server in cores)
    assistant = one.post("/v1/assistants", json={"model": scripted.model}).json()
    body = {"assistant_id": assistant["id"], "stream": True}
    first = scripted.push(text("One ", "two.", hold_after=1))
    second = scripted.push(text("Three ", "four.", hold_after=1))
    with contextlib.ExitStack() as streams:
        # One after the other, so that each core's run takes the reply meant for it.
        on_one = streams.enter_context(one.stream("POST", "/v1/threads/runs", json=body))
        assert on_one.status_code == 200
        assert first.held.wait(WAIT)
        on_other = streams.enter_context(other.stream("POST", "/v1/threads/runs", json=body))
        assert on_other.status_code == 200
        assert second.held.wait(WAIT)
        # Both slots are taken, one on each core: neither core admits another stream.
        _refused_stream(one, body)
        _refused_stream(other, body)

        # The stream on one core ends: its slot is free on the other.
        first.release()
        assert "event: done" in on_one.read().decode()
        scripted.push(text("Freed."))
        freed = _stream_once_admitted(
            other, body, "the slot freed on one core never reached the other"
        )
        assert "event: done" in freed.read().decode()
        freed.close()

        # A core that died with a stream open holds its slot until its row expires, unlike
        # the live core's stream, whose row (written before this one) outlives its first
        # expiry through renewal.
        expires_at_ms = int((time.time() + SLOT_SECONDS) * 1000)
        url = cores[0].database_url
        asyncio.run(_leave_streams_of_a_dead_core(url, 1, expires_at_ms))
        third = scripted.push(text("Five ", "six.", hold_after=1))
        _refused_stream(one, body)
        late = _stream_once_admitted(one, body, "the dead core's stream never stopped counting")
        assert time.time() * 1000 >= expires_at_ms
        assert third.held.wait(WAIT)
        _refused_stream(one, body)
        _refused_stream(other, body)
        second.release()
        third.release()
        assert "event: done" in on_other.read().decode()
        assert "event: done" in late.read().decode()
        late.close()
