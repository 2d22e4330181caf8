"""Per-project rate limits on requests (issue 18): OpenAI's 429, its headers, the SDK's own
retry, a project's own limits over the defaults, the shared window counter; both stores.

The limits of runs (tokens, concurrent runs, streams) and usage are `runs/test_runs_limits.py`.
"""

from __future__ import annotations

import asyncio
import re
import time

import grpc
import httpx2
import openai
import pytest
from harness import MakeGrpc, MakeHttp, MakeServer
from harness.grpc_client import rich_error

from compat_core import errors, tenancy
from compat_core.keyring import KeyRing, project_named
from compat_core.ratelimit import Limits, RateLimiter, format_reset
from compat_core.store import SqlStore, create_store
from compat_core.store.base import ProjectLimits
from compat_core.v1 import assistants_pb2

RESET = re.compile(r"^(\d+ms|(\d+h)?(\d+m)?\d+(\.\d+)?s)$")
# Long enough that a window does not end in the middle of a test.
LONG_WINDOW = 3600
POLL_SECONDS = 0.02


def _refused_count(http: httpx2.Client, limit: str = "requests") -> float:
    """The core's count of refusals of the default project for `limit`, from /metrics."""
    body = http.get("/metrics").text
    pattern = (
        rf'^compat_project_rate_limited_total\{{[^}}]*limit="{limit}"[^}}]*'
        rf'project="{tenancy.DEFAULT_PROJECT}"[^}}]*\}} (\S+)$'
    )
    found = re.search(pattern, body, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_format_reset_writes_waits_as_openai_does() -> None:
    assert format_reset(0.0172) == "18ms"
    assert format_reset(1) == "1s"
    assert format_reset(8.64) == "8.64s"
    assert format_reset(360) == "6m0s"
    assert format_reset(72.5) == "1m12.5s"
    assert format_reset(3723) == "1h2m3s"


def test_over_the_limit_answers_openais_429_with_its_headers(
    make_server: MakeServer, make_http: MakeHttp
) -> None:
    server = make_server(rate_limit_requests_per_minute=2, rate_limit_window_seconds=LONG_WINDOW)
    http = make_http(server)
    assert http.get("/v1/assistants").status_code == 200
    # A request with a body: the edge's check of its key first is not counted as a request.
    created = http.post("/v1/assistants", json={"model": "builtin/echo"})
    assert created.status_code == 200, created.text
    refused = http.get("/v1/assistants")
    assert refused.status_code == 429
    assert refused.json() == {
        "error": {
            "message": refused.json()["error"]["message"],
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    message = refused.json()["error"]["message"]
    assert message.startswith(
        f"Rate limit reached in project {tenancy.DEFAULT_PROJECT} on requests per min (RPM): "
        "Limit 2, Used 2, Requested 1. Please try again in "
    ), message
    headers = refused.headers
    assert headers["x-ratelimit-limit-requests"] == "2"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert RESET.match(headers["x-ratelimit-reset-requests"]), headers
    assert 1 <= int(headers["retry-after"]) <= LONG_WINDOW
    assert 1 <= int(headers["retry-after-ms"]) <= LONG_WINDOW * 1000
    assert "x-should-retry" not in headers, "the SDKs must retry a 429"
    # A write is refused too, and nothing of it is stored.
    assert http.post("/v1/assistants", json={"model": "builtin/echo"}).status_code == 429
    assert _refused_count(http) == 2

    sdk = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
    with pytest.raises(openai.RateLimitError) as raised:
        sdk.beta.assistants.list()
    assert raised.value.code == "rate_limit_exceeded"
    assert raised.value.type == "requests"


def test_the_sdks_own_retry_honours_retry_after(
    make_server: MakeServer, make_http: MakeHttp
) -> None:
    window = 2
    server = make_server(rate_limit_requests_per_minute=1, rate_limit_window_seconds=window)
    http = make_http(server)
    # Spend a window with at least a second of it left, so that the SDK's first attempt below
    # is refused in it.
    deadline = time.monotonic() + 10 * window
    while True:
        answer = http.get("/v1/assistants")
        if answer.status_code == 429 and int(answer.headers["retry-after-ms"]) >= 1000:
            break
        assert time.monotonic() < deadline, "no window was found spent"
        time.sleep(POLL_SECONDS)

    statuses: list[int] = []
    sdk = openai.OpenAI(
        base_url=server.base_url,
        api_key="test",
        max_retries=1,
        http_client=openai.DefaultHttpxClient(
            event_hooks={"response": [lambda response: statuses.append(response.status_code)]}
        ),
    )
    listed = sdk.beta.assistants.list()
    assert listed.data == []
    assert statuses == [429, 200], "refused once, then let through after retry-after"


def test_a_projects_own_limit_overrides_the_default(
    make_server: MakeServer, make_http: MakeHttp
) -> None:
    server = make_server(
        api_keys=["k-default"],
        rate_limit_requests_per_minute=1,
        rate_limit_window_seconds=LONG_WINDOW,
    )
    key = asyncio.run(_project_with_limits(server.database_url, ProjectLimits(3)))
    # A core reads the projects' limits as it starts (and every few seconds after).
    server.restart()
    own = make_http(server, headers={"Authorization": f"Bearer {key}"})
    default = make_http(server, headers={"Authorization": "Bearer k-default"})
    assert default.get("/v1/assistants").status_code == 200
    assert default.get("/v1/assistants").status_code == 429
    # The project's own 3 requests, in a window of its own.
    assert [own.get("/v1/assistants").status_code for _ in range(4)] == [200, 200, 200, 429]


async def _project_with_limits(url: str, limits: ProjectLimits) -> str:
    """A key of a new project with `limits` of its own, written as the admin surface will."""
    store = create_store(url)
    await store.open()
    try:
        project = await project_named(store, "limited", create=True)
        assert project is not None
        await store.set_project_limits(project.id, limits)
        assert await store.get_project_limits(project.id) == limits
        keys = KeyRing(store, ())
        _, key = await keys.create(project.id, "limited")
        await keys.close()
        return key
    finally:
        await store.close()


async def test_the_window_counter_never_grants_past_the_cap(store: SqlStore) -> None:
    granted = [await store.take_from_window("proj_a", "requests", 600, 4, 10) for _ in range(4)]
    assert granted == [(4, 4), (4, 8), (2, 10), (0, 10)]
    assert await store.take_from_window("proj_a", "tokens", 600, 25, None) == (25, 25)
    assert await store.window_used("proj_a", "requests", 600) == 10
    assert await store.window_used("proj_b", "requests", 600) == 0
    await store.purge_windows(601)
    assert await store.window_used("proj_a", "requests", 600) == 0


async def test_concurrent_leases_add_up_to_the_cap_exactly(store: SqlStore) -> None:
    results = await asyncio.gather(
        *(store.take_from_window("proj_a", "requests", 0, 3, 50) for _ in range(30))
    )
    assert sum(granted for granted, _ in results) == 50


async def test_concurrent_stream_slot_takes_stop_at_the_limit(store: SqlStore) -> None:
    """Cores taking a project's last slots at once take no more than the limit; a row that
    expired, or a core's own (whose count the core passes itself), is not read."""
    now_ms = 1_000_000
    results = await asyncio.gather(
        *(
            store.take_stream_slot("proj_s", f"core-{n}", 0, 3, now_ms, now_ms + 1000)
            for n in range(8)
        )
    )
    assert [taken for taken, _ in results].count(True) == 3
    assert all(others == 3 for taken, others in results if not taken)
    # core-0..7: three rows of one stream each. At their expiry they no longer count.
    assert await store.take_stream_slot("proj_s", "core-x", 0, 3, now_ms, now_ms + 1) == (
        False,
        3,
    )
    assert await store.take_stream_slot("proj_s", "core-x", 0, 3, now_ms + 1000, now_ms + 2000) == (
        True,
        0,
    )
    # core-x's own row (1) is not read: it says what it has open.
    assert await store.take_stream_slot("proj_s", "core-x", 3, 3, now_ms + 1000, 0) == (False, 0)
    assert await store.take_stream_slot("proj_s", "core-x", 2, 3, now_ms + 1000, 0) == (True, 0)
    assert await store.take_stream_slot("proj_t", "core-x", 0, 1, now_ms, now_ms + 1000) == (
        True,
        0,
    )
    # Writing 0 deletes a row; a stopping core's rows all go; expired rows are purged.
    await store.set_stream_slot("proj_t", "core-x", 0, now_ms + 1000)
    assert await store.take_stream_slot("proj_t", "core-y", 0, 1, now_ms, now_ms + 1000) == (
        True,
        0,
    )
    await store.release_stream_slots("core-y")
    assert await store.take_stream_slot("proj_t", "core-z", 0, 1, now_ms, now_ms + 1000) == (
        True,
        0,
    )
    await store.purge_stream_slots(now_ms + 5000)
    assert await store.take_stream_slot("proj_t", "core-w", 0, 1, 0, 1) == (True, 0)


async def test_a_limiter_with_nothing_limited_admits_from_memory(store: SqlStore) -> None:
    limiter = RateLimiter(store, Limits())
    await limiter.refresh()
    assert not limiter.active
    assert all(limiter.admit_now("proj_x") for _ in range(1000))
    await store.set_project_limits(tenancy.DEFAULT_PROJECT, ProjectLimits(requests_per_minute=2))
    await limiter.refresh()
    assert limiter.active
    assert limiter.admit_now("proj_x"), "other projects stay unlimited"


async def test_a_limiter_counts_windows_by_its_clock(store: SqlStore) -> None:
    now = [1000.0]
    limiter = RateLimiter(store, Limits(requests_per_minute=2), 60, clock=lambda: now[0])
    await limiter.refresh()
    for _ in range(2):
        if not limiter.admit_now("proj_x"):
            await limiter.admit("proj_x")
    with pytest.raises(errors.ApiError) as raised:
        await limiter.admit("proj_x")
    assert "Please try again in 20s." in str(raised.value)
    now[0] = 1020.0  # the next window
    assert not limiter.admit_now("proj_x")
    await limiter.admit("proj_x")


def test_grpc_callers_get_resource_exhausted_with_the_same_details(
    make_server: MakeServer, make_grpc: MakeGrpc
) -> None:
    server = make_server(rate_limit_requests_per_minute=1, rate_limit_window_seconds=LONG_WINDOW)
    stub = make_grpc(server).assistants
    stub.ListAssistants(assistants_pb2.ListAssistantsRequest())
    with pytest.raises(grpc.RpcError) as raised:
        stub.ListAssistants(assistants_pb2.ListAssistantsRequest())
    error = rich_error(raised.value)
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.reason == "rate_limit_exceeded"
    assert error.error_info is not None
    metadata = dict(error.error_info.metadata)
    assert metadata["type"] == "requests"
    assert metadata["x-ratelimit-limit-requests"] == "1"
    assert metadata["x-ratelimit-remaining-requests"] == "0"
    assert RESET.match(metadata["x-ratelimit-reset-requests"])
    assert 1 <= int(metadata["retry-after"]) <= LONG_WINDOW
