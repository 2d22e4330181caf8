"""Prometheus metrics: the edge's `/metrics` (with the embedded core's), read as a scraper would.

Each test runs a server of its own, so the counts are absolute: what the test did, nothing else.
"""

from __future__ import annotations

from typing import Any

import httpx2
import openai
import pytest
from harness import MakeClient, MakeHttp, MakeServer
from prometheus_client.parser import text_string_to_metric_families

from compat_core.metrics import MAX_MODEL_LABELS, OTHER_MODEL, CoreMetrics
from compat_core.v1 import common_pb2, runs_pb2
from runs.upstream import ScriptedModel, Usage, http_error, text

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(http: httpx2.Client) -> Samples:
    """Every sample of `/metrics`, by name and labels; fails unless it is Prometheus' text."""
    response = http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 when the series does not exist (nothing was counted)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    return {dict(labels)[label] for sample, labels in samples if sample == name}


@pytest.fixture
def server_and_clients(
    make_server: MakeServer,
    make_client: MakeClient,
    make_http: MakeHttp,
    provider_overrides: dict[str, Any],
) -> tuple[openai.OpenAI, httpx2.Client]:
    server = make_server(**provider_overrides)
    return make_client(server), make_http(server)


def test_requests_are_counted_by_route_pattern_and_status(
    server_and_clients: tuple[openai.OpenAI, httpx2.Client],
) -> None:
    client, http = server_and_clients
    assistant = client.beta.assistants.create(model="builtin/echo")
    client.beta.assistants.retrieve(assistant.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.retrieve("asst_missing")
    assert http.get("/v1/no/such/path/x1").status_code == 404
    assert http.request("PROPFIND", "/v1/assistants").status_code == 405

    samples = scrape(http)
    requests = "compat_http_requests_total"
    one = "/v1/assistants/{assistant_id}"
    assert value(samples, requests, method="POST", route="/v1/assistants", status="200") == 1
    assert value(samples, requests, method="GET", route=one, status="200") == 1
    assert value(samples, requests, method="GET", route=one, status="404") == 1
    assert value(samples, requests, method="GET", route="unrouted", status="404") == 1
    assert value(samples, requests, method="OTHER", route="unrouted", status="405") == 1
    # Routes by pattern only: no path a client sent, no method it made up.
    assert not {r for r in label_values(samples, requests, "route") if "x1" in r or "asst_" in r}
    assert "PROPFIND" not in label_values(samples, requests, "method")
    latency = "compat_http_request_duration_seconds_count"
    assert value(samples, latency, method="GET", route=one) == 2

    rpcs = "compat_core_rpcs_total"
    get = "/compat_core.v1.AssistantsService/GetAssistant"
    assert value(samples, rpcs, method=get, code="OK") == 1
    assert value(samples, rpcs, method=get, code="NOT_FOUND") == 1
    assert value(samples, "compat_core_rpc_duration_seconds_count", method=get) == 2


def test_runs_tokens_and_the_model_calls_are_counted(
    server_and_clients: tuple[openai.OpenAI, httpx2.Client], scripted: ScriptedModel
) -> None:
    client, http = server_and_clients
    echo = client.beta.assistants.create(model="builtin/echo")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "one two three"}])
    done = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=echo.id)
    assert done.status == "completed"
    assert done.usage is not None

    scripted.push(text("Hello", " there", usage=Usage(7, 2)), http_error(503))
    upstream = client.beta.assistants.create(model=scripted.model)
    for expected in ("completed", "failed"):
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
        run = client.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=upstream.id
        )
        assert run.status == expected

    samples = scrape(http)
    finished = "compat_runs_finished_total"
    assert value(samples, finished, status="completed") == 2
    assert value(samples, finished, status="failed") == 1
    tokens = "compat_tokens_total"
    completion = done.usage.completion_tokens
    assert value(samples, tokens, model="builtin/echo", kind="completion") == completion
    assert value(samples, tokens, model="builtin/echo", kind="prompt") == done.usage.prompt_tokens
    assert value(samples, tokens, model=scripted.model, kind="prompt") == 7
    assert value(samples, tokens, model=scripted.model, kind="completion") == 2

    assert value(samples, "compat_upstream_requests_total", provider="builtin") == 1
    assert value(samples, "compat_upstream_requests_total", provider="scripted") == 2
    errors = "compat_upstream_errors_total"
    assert value(samples, errors, provider="scripted", code="server_error") == 1
    first_token = "compat_upstream_first_token_seconds_count"
    assert value(samples, first_token, provider="builtin") == 1
    assert value(samples, first_token, provider="scripted") == 1  # the failed call had none
    assert value(samples, "compat_runs_active") == 0


def test_streams_and_connections_are_gauged(
    server_and_clients: tuple[openai.OpenAI, httpx2.Client], scripted: ScriptedModel
) -> None:
    client, http = server_and_clients
    held = scripted.push(text("Hello", " there", hold_after=1))
    assistant = client.beta.assistants.create(model=scripted.model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "streamed"}])
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        for event in stream:
            if event.event == "thread.message.delta":
                break
        during = scrape(http)  # the upstream holds the rest of the reply
        held.release()
        stream.until_done()
    after = scrape(http)

    assert value(during, "compat_http_event_streams_active") == 1
    assert value(during, "compat_core_streams_active") == 1
    assert value(during, "compat_runs_active") == 1
    assert value(after, "compat_http_event_streams_active") == 0
    assert value(after, "compat_core_streams_active") == 0
    assert value(after, "compat_runs_active") == 0
    # This client's connections at least; none refused.
    assert value(after, "compat_http_connections_open") >= 1
    assert value(after, "compat_http_connections_refused_total") == 0
    runs = "/v1/threads/{thread_id}/runs"
    assert value(after, "compat_http_requests_total", method="POST", route=runs, status="200") == 1
    assert value(after, "compat_run_event_log_bytes") > 0  # the finished run's log, kept
    assert ("compat_store_transactions_pending", frozenset()) in after


def test_the_model_label_is_bounded() -> None:
    metrics = CoreMetrics()
    for number in range(MAX_MODEL_LABELS + 5):
        run = runs_pb2.Run(
            model=f"invented-{number}",
            status=runs_pb2.RUN_STATUS_COMPLETED,
            usage=common_pb2.Usage(prompt_tokens=1, completion_tokens=1),
        )
        metrics.run_finished(run)
    models = {
        sample.labels["model"]
        for family in metrics.registry.collect()
        if family.name == "compat_tokens"
        for sample in family.samples
    }
    assert len(models) == MAX_MODEL_LABELS + 1
    assert OTHER_MODEL in models
