"""The admin surface of rate limits and usage (issue 18): `/v1/organization/projects/{id}/
rate_limits`, `/v1/organization/usage/completions`, and their `AdminService` RPCs.

One server (its own database; SQLite, or PostgreSQL in that pass) with a `COMPAT_API_KEYS`
key, an admin key, a default of 5 requests a window and windows long enough not to end in a
test. No OpenAPI schema covers these routes, so the tests assert OpenAI's fields themselves.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc
import httpx2
import openai
import pytest
from harness.grpc_client import bearer
from harness.server import ServerThread, database_url, drop_database, postgres_admin_url
from runs.support import wait_run

from compat_core.ratelimit import REFRESH_SECONDS
from compat_core.v1 import admin_pb2, admin_pb2_grpc

CONFIG_KEY = "k-default"
ADMIN_KEY = "k-admin"
PROJECTS = "/v1/organization/projects"
USAGE = "/v1/organization/usage/completions"
DEFAULT_RPM = 5
LIMIT_FIELDS = {
    "max_requests_per_1_minute",
    "max_tokens_per_1_minute",
    "max_concurrent_runs",
    "max_concurrent_streams",
}
DAY = 86_400


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    started = ServerThread(
        database_url=database_url(tmp_path_factory.mktemp("admin-limits")),
        api_keys=[CONFIG_KEY],
        admin_keys=[ADMIN_KEY],
        rate_limit_requests_per_minute=DEFAULT_RPM,
        rate_limit_window_seconds=3600,
    ).start()
    yield started
    started.stop()
    drop_database(started.database_url)


@pytest.fixture
def admin(server: ServerThread) -> Iterator[httpx2.Client]:
    with httpx2.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30.0
    ) as client:
        yield client


@pytest.fixture
def stub(server: ServerThread) -> Iterator[admin_pb2_grpc.AdminServiceStub]:
    with grpc.insecure_channel(server.grpc_target) as channel:
        yield admin_pb2_grpc.AdminServiceStub(channel)


def _ok(response: httpx2.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def _error(response: httpx2.Response, status: int, param: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert error["message"]
    if param is not None:
        assert error["param"] == param, error
    return dict(error)


def _project_with_key(admin: httpx2.Client, name: str) -> tuple[str, str]:
    project = _ok(admin.post(PROJECTS, json={"name": name}))
    account = _ok(admin.post(f"{PROJECTS}/{project['id']}/service_accounts", json={"name": name}))
    return project["id"], account["api_key"]["value"]


def _limits_url(project_id: str) -> str:
    return f"{PROJECTS}/{project_id}/rate_limits"


def test_a_project_lists_one_rate_limit_of_the_defaults(admin: httpx2.Client) -> None:
    project_id, _ = _project_with_key(admin, "listed")
    page = _ok(admin.get(_limits_url(project_id)))
    assert page["object"] == "list"
    assert page["first_id"] == page["last_id"] == "rl-project"
    assert page["has_more"] is False
    [limit] = page["data"]
    assert limit == {
        "object": "project.rate_limit",
        "id": "rl-project",
        "model": "*",
        "max_requests_per_1_minute": DEFAULT_RPM,
        "max_tokens_per_1_minute": 0,
        "max_concurrent_runs": 0,
        "max_concurrent_streams": 0,
        "uses_default": sorted(LIMIT_FIELDS, key=list(limit).index),
    }
    after = _ok(admin.get(_limits_url(project_id), params={"after": "rl-project"}))
    assert after["data"] == []
    assert after["has_more"] is False


def test_a_modified_limit_is_enforced_and_lifting_it_lets_requests_through(
    server: ServerThread, admin: httpx2.Client
) -> None:
    project_id, key = _project_with_key(admin, "limited")
    url = f"{_limits_url(project_id)}/rl-project"
    modified = _ok(admin.post(url, json={"max_requests_per_1_minute": 2, "max_concurrent_runs": 3}))
    assert modified["max_requests_per_1_minute"] == 2
    assert modified["max_concurrent_runs"] == 3
    assert set(modified["uses_default"]) == {"max_tokens_per_1_minute", "max_concurrent_streams"}
    [listed] = _ok(admin.get(_limits_url(project_id)))["data"]
    assert listed == modified

    # The core that stored the limit applies it at once (the others within 5 s).
    with httpx2.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30.0
    ) as client:
        statuses = [client.get("/v1/assistants").status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        # Unlimited, the project's own value, over the default of 5.
        lifted = _ok(admin.post(url, json={"max_requests_per_1_minute": 0}))
        assert lifted["max_requests_per_1_minute"] == 0
        assert "max_requests_per_1_minute" not in lifted["uses_default"]
        assert lifted["max_concurrent_runs"] == 3, "fields left out stay as they were"
        assert [client.get("/v1/assistants").status_code for _ in range(4)] == [200] * 4
        # Null goes back to the setting's 5, of which the window already holds 7.
        back = _ok(admin.post(url, json={"max_requests_per_1_minute": None}))
        assert back["max_requests_per_1_minute"] == DEFAULT_RPM
        assert "max_requests_per_1_minute" in back["uses_default"]
        assert client.get("/v1/assistants").status_code == 429


def test_rate_limits_over_grpc(stub: admin_pb2_grpc.AdminServiceStub) -> None:
    auth = bearer(ADMIN_KEY)
    project = stub.CreateProject(admin_pb2.CreateProjectRequest(name="grpc"), metadata=auth)
    request = admin_pb2.ModifyProjectRateLimitRequest(
        project_id=project.id, rate_limit_id="rl-project"
    )
    request.max_tokens_per_1_minute.value = 1000
    modified = stub.ModifyProjectRateLimit(request, metadata=auth)
    assert modified.max_tokens_per_1_minute == admin_pb2.RateLimitValue(
        value=1000, is_default=False
    )
    assert modified.max_requests_per_1_minute == admin_pb2.RateLimitValue(
        value=DEFAULT_RPM, is_default=True
    )
    page = stub.ListProjectRateLimits(
        admin_pb2.ListProjectRateLimitsRequest(project_id=project.id), metadata=auth
    )
    assert list(page.data) == [modified]
    with pytest.raises(grpc.RpcError) as missing:
        stub.ListProjectRateLimits(
            admin_pb2.ListProjectRateLimitsRequest(project_id="proj_nope"), metadata=auth
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as no_start:
        stub.GetCompletionsUsage(admin_pb2.GetCompletionsUsageRequest(), metadata=auth)
    assert no_start.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as project_key:
        stub.ListProjectRateLimits(
            admin_pb2.ListProjectRateLimitsRequest(project_id=project.id),
            metadata=bearer(CONFIG_KEY),
        )
    assert project_key.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_bad_rate_limit_input(admin: httpx2.Client) -> None:
    project_id, _ = _project_with_key(admin, "bad input")
    url = f"{_limits_url(project_id)}/rl-project"
    _error(
        admin.post(url, json={"max_requests_per_1_minute": -1}), 400, "max_requests_per_1_minute"
    )
    _error(admin.post(url, json={"max_tokens_per_1_minute": "9"}), 400, "max_tokens_per_1_minute")
    _error(admin.post(url, json={"max_images_per_1_minute": 1}), 400, "max_images_per_1_minute")
    _error(admin.get(_limits_url(project_id), params={"limit": "0"}), 400, "limit")
    _error(admin.get(_limits_url(project_id), params={"after": "rl-x"}), 400, "after")
    _error(admin.post(f"{_limits_url(project_id)}/rl-gpt-4o", json={}), 404, "rate_limit_id")
    _error(admin.get(_limits_url("proj_nope")), 404, "project_id")
    _error(admin.post(f"{_limits_url('proj_nope')}/rl-project", json={}), 404, "project_id")


def test_project_keys_are_refused(server: ServerThread) -> None:
    with httpx2.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {CONFIG_KEY}"}, timeout=30.0
    ) as http:
        _error(http.get(_limits_url("proj_default")), 403)
        _error(http.post(f"{_limits_url('proj_default')}/rl-project", json={}), 403)
        _error(http.get(USAGE, params={"start_time": 0}), 403)


def test_usage_shows_a_runs_tokens_by_project_and_model(
    server: ServerThread, admin: httpx2.Client
) -> None:
    project_id, key = _project_with_key(admin, "usage")
    _ok(admin.post(f"{_limits_url(project_id)}/rl-project", json={"max_requests_per_1_minute": 0}))
    client = openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)
    assistant = client.beta.assistants.create(model="builtin/echo")
    run = client.beta.threads.create_and_run(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "one two three"}]},
    )
    done = wait_run(client, run.thread_id, run.id)
    assert done.status == "completed"
    assert done.usage is not None
    assert done.completed_at is not None
    # Usage is kept by the UTC day the run ended.
    now = done.completed_at
    today = now - now % DAY

    grouped = _ok(
        admin.get(
            USAGE,
            params={
                "start_time": now - DAY,
                "end_time": today + DAY,
                "project_ids[]": project_id,
                "group_by[]": ["project_id", "model"],
            },
        )
    )
    assert grouped["object"] == "page"
    assert grouped["has_more"] is False
    assert grouped["next_page"] is None
    yesterday, current = grouped["data"]
    assert yesterday == {
        "object": "bucket",
        "start_time": today - DAY,
        "end_time": today,
        "results": [],
    }
    assert current["start_time"] == today
    assert current["end_time"] == today + DAY
    [result] = current["results"]
    assert result["object"] == "organization.usage.completions.result"
    assert result["project_id"] == project_id
    assert result["model"] == "builtin/echo"
    assert result["input_tokens"] == done.usage.prompt_tokens
    assert result["output_tokens"] == done.usage.completion_tokens
    assert result["num_model_requests"] == 1

    # Without group_by, one result sums the bucket and names neither project nor model.
    summed = _ok(admin.get(USAGE, params={"start_time": now, "project_ids": project_id}))
    [bucket] = summed["data"]
    [total] = bucket["results"]
    assert total["project_id"] is None
    assert total["model"] is None
    assert total["input_tokens"] == done.usage.prompt_tokens
    other_model = _ok(
        admin.get(USAGE, params={"start_time": now, "project_ids": project_id, "models": "x"})
    )
    assert other_model["data"][0]["results"] == []
    # Every project, grouped: this one is among them.
    everyone = _ok(admin.get(USAGE, params={"start_time": now, "group_by": "project_id"}))
    assert project_id in {r["project_id"] for r in everyone["data"][0]["results"]}


def test_usage_pages_by_day(admin: httpx2.Client) -> None:
    start = 1_700_000_000 - 1_700_000_000 % DAY
    first = _ok(
        admin.get(USAGE, params={"start_time": start, "end_time": start + 3 * DAY, "limit": 2})
    )
    assert [b["start_time"] for b in first["data"]] == [start, start + DAY]
    assert first["has_more"] is True
    second = _ok(
        admin.get(
            USAGE,
            params={"start_time": start, "end_time": start + 3 * DAY, "page": first["next_page"]},
        )
    )
    assert [b["start_time"] for b in second["data"]] == [start + 2 * DAY]
    assert second["has_more"] is False
    assert second["next_page"] is None


def test_bad_usage_input(admin: httpx2.Client) -> None:
    now = int(time.time())
    _error(admin.get(USAGE), 400, "start_time")
    _error(admin.get(USAGE, params={"start_time": "soon"}), 400, "start_time")
    _error(admin.get(USAGE, params={"start_time": now, "bucket_width": "1h"}), 400, "bucket_width")
    _error(admin.get(USAGE, params={"start_time": now, "group_by": "user_id"}), 400, "group_by")
    _error(admin.get(USAGE, params={"start_time": now, "limit": 32}), 400, "limit")
    _error(admin.get(USAGE, params={"start_time": now, "page": "nope"}), 400, "page")
    _error(admin.get(USAGE, params={"start_time": now, "end_time": now - 1}), 400, "start_time")


@pytest.mark.skipif(postgres_admin_url() is None, reason="cores share a database on PostgreSQL")
def test_another_core_applies_a_modified_limit_within_its_refresh(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    url = database_url(tmp_path_factory.mktemp("two-cores"))
    first = ServerThread(database_url=url, admin_keys=[ADMIN_KEY]).start()
    try:
        second = ServerThread(database_url=url, admin_keys=[ADMIN_KEY]).start()
        try:
            with httpx2.Client(
                base_url=first.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
            ) as admin:
                project_id, key = _project_with_key(admin, "refreshed")
                limit_url = f"{_limits_url(project_id)}/rl-project"
                _ok(admin.post(limit_url, json={"max_requests_per_1_minute": 1}))
            with httpx2.Client(
                base_url=second.url, headers={"Authorization": f"Bearer {key}"}
            ) as client:
                deadline = time.monotonic() + REFRESH_SECONDS + 1.5
                while client.get("/v1/assistants").status_code != 429:
                    assert time.monotonic() < deadline, "the other core never applied the limit"
                    time.sleep(0.05)
        finally:
            second.stop()
    finally:
        first.stop()
        drop_database(url)
