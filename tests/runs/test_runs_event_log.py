"""A run's event log over gRPC once its pieces are merged and its memory is bounded: late
watchers read exactly what followed their position, and past `COMPAT_EVENT_LOG_MAX_BYTES` a
finished run is told by its state (as after the log's retention time)."""

from __future__ import annotations

import openai
import pytest
from harness import MakeClient, MakeGrpc, MakeServer
from harness.server import postgres_admin_url

from compat_core.v1 import runs_pb2
from runs.support import collapse, grpc_name, grpc_text

WAIT = 20.0
# builtin/echo repeats this a word at a time: 1,500 pieces, merged many times over.
LONG_TEXT = " ".join(f"word{n}" for n in range(1500))


def _long_run(client: openai.OpenAI) -> runs_pb2.CreateRunRequest:
    assistant = client.beta.assistants.create(model="builtin/echo")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": LONG_TEXT}])
    return runs_pb2.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)


@pytest.mark.xfail(
    postgres_admin_url() is not None,
    strict=True,
    reason="on PostgreSQL a late watcher reads the stored log, which merges the pieces of "
    "each 20 ms into one row: a position inside such a row gets the row's whole text",
)
def test_a_late_watcher_of_a_long_run_reads_from_any_position(
    make_server: MakeServer, make_client: MakeClient, make_grpc: MakeGrpc
) -> None:
    server = make_server()
    grpc_client = make_grpc(server)
    live = list(grpc_client.runs.CreateRunStream(_long_run(make_client(server)), timeout=WAIT))
    assert grpc_text(live) == LONG_TEXT
    run_id = live[0].thread_run_created.id
    deltas = [i for i, e in enumerate(live) if e.WhichOneof("event") == "thread_message_delta"]
    for index in (0, deltas[0], deltas[len(deltas) // 3], deltas[-1], len(live) - 3):
        after = live[index].sequence if index else 0
        replay = list(
            grpc_client.runs.WatchRun(
                runs_pb2.WatchRunRequest(run_id=run_id, after_sequence=after), timeout=WAIT
            )
        )
        rest = live[index + 1 :] if index else live
        assert grpc_text(replay) == grpc_text(rest), after
        assert collapse(grpc_name(e) for e in replay) == collapse(grpc_name(e) for e in rest)


@pytest.mark.skipif(
    postgres_admin_url() is not None,
    reason="on PostgreSQL a late watcher reads the stored log, not this core's memory",
)
def test_past_the_byte_budget_a_finished_run_is_told_by_its_state(
    make_server: MakeServer, make_client: MakeClient, make_grpc: MakeGrpc
) -> None:
    server = make_server(event_log_max_bytes=0)
    grpc_client = make_grpc(server)
    # The stream subscribed as the run started: it reads all of it, whatever the budget.
    live = list(grpc_client.runs.CreateRunStream(_long_run(make_client(server)), timeout=WAIT))
    assert grpc_text(live) == LONG_TEXT
    assert grpc_name(live[-2]) == "thread.run.completed"
    run_id = live[0].thread_run_created.id
    replay = list(
        grpc_client.runs.WatchRun(
            runs_pb2.WatchRunRequest(run_id=run_id, after_sequence=0), timeout=WAIT
        )
    )
    assert [grpc_name(e) for e in replay] == ["thread.run.completed", "done"]
    assert replay[0].thread_run_completed.id == run_id
