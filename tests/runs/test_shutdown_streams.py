"""Event streams when the edge stops, and how many it relays at once (`http_edge.streams`).

- A server stopping while a run's stream is open lets the stream go on for its grace, then
  ends it with an `error` event saying that the server is restarting, which the SDK raises:
  never a bare cut. The run goes on after the restart. The same for a stand-alone edge sent
  SIGTERM: its core goes on with the run.
- Beyond `COMPAT_MAX_STREAMS` a streamed run is refused with a retryable 503 before the run
  is created; once a stream ends, the next one is served.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from harness import MakeClient, MakeServer
from harness.processes import Process
from harness.server import database_url, drop_database

from runs.support import message_text, run_messages, wait_run
from runs.upstream import ScriptedModel, ScriptedUpstream, text

WAIT = 10.0
GRACE = 1.0
HELD = ("Half ", "a ", "reply")
WHOLE = ("The ", "whole ", "reply.")

# Starts an edge process in front of the test's core: its base URL, and the process.
StartEdge = Callable[[], tuple[str, Process]]


def stream_until_cut(
    stream: Any, on_first_delta: Callable[[], None]
) -> tuple[str, openai.APIError | None]:
    """Follow an SDK stream; call `on_first_delta` at its first text delta. The run's ID and
    the error the stream ended with (None if it ended without one)."""
    run_id = ""
    called = False
    try:
        for event in stream:
            if event.event == "thread.run.created":
                run_id = event.data.id
            elif event.event == "thread.message.delta" and not called:
                called = True
                on_first_delta()
    except openai.APIError as exc:
        return run_id, exc
    return run_id, None


def assert_restarting(error: openai.APIError | None) -> None:
    assert error is not None, "the stream ended without an error event"
    assert "restarting" in error.message
    assert isinstance(error.body, dict)
    assert error.body["type"] == "server_error"


def test_a_stopping_server_ends_open_streams_with_an_error_event(
    make_server: MakeServer,
    make_client: MakeClient,
    provider_overrides: dict[str, Any],
    scripted: ScriptedModel,
) -> None:
    server = make_server(**provider_overrides, shutdown_grace_seconds=GRACE)
    client = make_client(server)
    held = scripted.push(text(*HELD, hold_after=1))
    resumed = scripted.push(text(*WHOLE))
    assistant = client.beta.assistants.create(model=scripted.model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hold on"}])
    stopper = threading.Thread(target=server.stop, name="stop-server")

    def stop() -> None:
        assert held.held.wait(WAIT)
        stopper.start()

    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        run_id, error = stream_until_cut(stream, stop)
    stopper.join(WAIT)
    assert not stopper.is_alive()
    assert_restarting(error)
    assert not held.finished.is_set()

    server.start()
    client = make_client(server)  # new ports
    done = wait_run(client, thread.id, run_id)
    assert done.status == "completed", done.last_error
    assert resumed.finished.is_set()
    [reply] = run_messages(client, thread.id, run_id)
    assert message_text(reply) == "".join(WHOLE)


@pytest.fixture
def start_edge(tmp_path: Path, upstream: ScriptedUpstream) -> Iterator[StartEdge]:
    """A core process of the test's own, and what starts edge processes in front of it; all
    stopped at the end."""
    url = database_url(tmp_path)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("COMPAT_", "OPENAI_"))}
    processes: list[Process] = []
    try:
        core = Process(
            "core",
            {
                **base,
                "COMPAT_DATABASE_URL": url,
                "COMPAT_GRPC_HOST": "127.0.0.1",
                "COMPAT_GRPC_PORT": "0",
                "COMPAT_METRICS_PORT": "0",
                "COMPAT_FILES_DIR": str(tmp_path / "files"),
                "COMPAT_PROVIDER_SCRIPTED_BASE_URL": upstream.base_url,
            },
            tmp_path,
        )
        processes.append(core)
        port = core.wait_for(r"core serving gRPC on [\d.]+:(\d+)")[1]

        def start() -> tuple[str, Process]:
            edge = Process(
                "edge",
                {
                    **base,
                    "COMPAT_HTTP_HOST": "127.0.0.1",
                    "COMPAT_HTTP_PORT": "0",
                    "COMPAT_CORE_TARGET": f"127.0.0.1:{port}",
                    "COMPAT_SHUTDOWN_GRACE_SECONDS": str(GRACE),
                },
                tmp_path,
            )
            processes.append(edge)
            return edge.wait_for(r"Running on (http://[\d.:]+)")[1] + "/v1", edge

        yield start
    finally:
        for process in reversed(processes):
            process.stop()
        drop_database(url)


def test_sigterm_to_an_edge_ends_its_streams_with_an_error_event(
    start_edge: StartEdge, scripted: ScriptedModel
) -> None:
    base_url, edge = start_edge()
    held = scripted.push(text(*HELD, hold_after=1))
    with openai.OpenAI(
        base_url=base_url, api_key="test", max_retries=0, http_client=httpx2.Client(timeout=WAIT)
    ) as client:
        assistant = client.beta.assistants.create(model=scripted.model)
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "hold on"}])

        def terminate() -> None:
            assert held.held.wait(WAIT)
            edge.popen.send_signal(signal.SIGTERM)

        with client.beta.threads.runs.stream(
            thread_id=thread.id, assistant_id=assistant.id
        ) as stream:
            run_id, error = stream_until_cut(stream, terminate)
    assert_restarting(error)
    assert edge.popen.wait(WAIT) == 0, edge.log

    # The core goes on with the run; another edge shows it.
    held.release()
    base_url, _ = start_edge()
    with openai.OpenAI(
        base_url=base_url, api_key="test", max_retries=0, http_client=httpx2.Client(timeout=WAIT)
    ) as client:
        done = wait_run(client, thread.id, run_id)
        assert done.status == "completed", done.last_error
        [reply] = run_messages(client, thread.id, run_id)
        assert message_text(reply) == "".join(HELD)


def test_beyond_the_stream_cap_a_stream_gets_a_503(
    make_server: MakeServer,
    make_client: MakeClient,
    provider_overrides: dict[str, Any],
    scripted: ScriptedModel,
) -> None:
    server = make_server(**provider_overrides, max_streams=1)
    client = make_client(server)
    held = scripted.push(text(*HELD, hold_after=1))
    assistant = client.beta.assistants.create(model=scripted.model)
    echo = client.beta.assistants.create(model="builtin/echo")
    first = client.beta.threads.create(messages=[{"role": "user", "content": "hold on"}])
    second = client.beta.threads.create(messages=[{"role": "user", "content": "me too"}])
    runs = client.beta.threads.runs

    with runs.stream(thread_id=first.id, assistant_id=assistant.id) as stream:
        for event in stream:
            if event.event == "thread.message.delta":
                break
        assert held.held.wait(WAIT)
        with (
            pytest.raises(openai.InternalServerError) as info,
            runs.stream(thread_id=second.id, assistant_id=echo.id) as refused,
        ):
            refused.until_done()
        assert info.value.status_code == 503
        assert info.value.response.headers["retry-after"] == "1"
        assert isinstance(info.value.body, dict)
        assert info.value.body["type"] == "server_error"
        # Refused before the run was created, so a retry creates exactly one.
        assert runs.list(thread_id=second.id).data == []
        # Runs that do not stream are served.
        plain = runs.create_and_poll(thread_id=second.id, assistant_id=echo.id)
        assert plain.status == "completed"
        held.release()
        stream.until_done()

    with runs.stream(thread_id=second.id, assistant_id=echo.id) as again:
        again.until_done()
        assert again.get_final_run().status == "completed"
