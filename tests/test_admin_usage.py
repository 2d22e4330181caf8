"""Storage usage through the admin surface (issue 18): `/v1/organization/usage/vector_stores`
(OpenAI's), `/v1/organization/usage/files` (ours), their `AdminService` RPCs, and the
per-project storage gauge of `/metrics`.

One server (its own database; SQLite, or PostgreSQL in that pass) with a `COMPAT_API_KEYS`
key, an admin key and a storage gauge refreshed every few hundredths of a second. Usage is
read with the official SDK's admin client (`client.admin.organization.usage`), which parses
OpenAI's shapes; projects' objects are made with the SDK as a project's key.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import grpc
import httpx2
import openai
import pytest
from alembic import command
from harness.grpc_client import bearer
from harness.server import ServerThread, database_url, drop_database
from openai.types.admin.organization.usage_vector_stores_response import (
    DataResultOrganizationUsageVectorStoresResult as VectorStoresResult,
)
from openai.types.admin.organization.usage_vector_stores_response import (
    UsageVectorStoresResponse,
)
from prometheus_client import CollectorRegistry
from sqlalchemy import Connection, insert

from compat_core import tenancy
from compat_core.storage_metrics import StorageGauge
from compat_core.store import SqlStore, TransactionRunner, create_store, schema
from compat_core.store.migrate import ALEMBIC_LOCK, alembic_config
from compat_core.v1 import admin_pb2, admin_pb2_grpc, files_pb2

CONFIG_KEY = "k-default"
ADMIN_KEY = "k-admin"
PROJECTS = "/v1/organization/projects"
VECTOR_STORES = "/v1/organization/usage/vector_stores"
FILES = "/v1/organization/usage/files"
REFRESH_SECONDS = 0.05
HOUR = 3600
DAY = 86_400
# How long a condition polled for may take: a refresh, or a file's ingestion.
DEADLINE_SECONDS = 15.0
MARKDOWN = b"# Zebracorn care\n\nA zebracorn eats clover at dawn and sleeps under birch trees.\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    started = ServerThread(
        database_url=database_url(tmp_path_factory.mktemp("admin-usage")),
        api_keys=[CONFIG_KEY],
        admin_keys=[ADMIN_KEY],
        storage_metrics_seconds=REFRESH_SECONDS,
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
def sdk_admin(server: ServerThread) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=server.base_url, api_key="unused", admin_api_key=ADMIN_KEY, max_retries=0
    ) as client:
        yield client


@pytest.fixture
def stub(server: ServerThread) -> Iterator[admin_pb2_grpc.AdminServiceStub]:
    with grpc.insecure_channel(server.grpc_target) as channel:
        yield admin_pb2_grpc.AdminServiceStub(channel)


def _ok(response: httpx2.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def _error(response: httpx2.Response, status: int, param: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert error["message"]
    assert error["param"] == param, error
    return dict(error)


def _project_client(server: ServerThread, admin: httpx2.Client, name: str) -> tuple[str, Any]:
    project_id = _ok(admin.post(PROJECTS, json={"name": name}))["id"]
    account = _ok(admin.post(f"{PROJECTS}/{project_id}/service_accounts", json={"name": name}))
    key = account["api_key"]["value"]
    return project_id, openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)


def _stored(
    sdk_admin: openai.OpenAI, admin: httpx2.Client, projects: list[str]
) -> tuple[dict[str, int], dict[str | None, int]]:
    """Files' and vector stores' bytes by project: the vector stores' through the SDK, which
    parses OpenAI's shapes, the files' (a route of ours) over plain HTTP."""
    start = int(time.time()) - HOUR
    vectors = sdk_admin.admin.organization.usage.vector_stores(
        start_time=start, project_ids=projects, group_by=["project_id"]
    )
    files = _ok(
        admin.get(
            FILES,
            params={"start_time": start, "project_ids[]": projects, "group_by[]": "project_id"},
        )
    )
    # The range ends now: its last bucket holds now, the one that reports.
    *before, last = files["data"]
    assert all(bucket["results"] == [] for bucket in before), files
    for result in last["results"]:
        assert result["object"] == "organization.usage.files.result"
    by_project = {r["project_id"]: r["usage_bytes"] for r in last["results"]}
    return by_project, _by_project(vectors)


def _results(page: UsageVectorStoresResponse) -> list[VectorStoresResult]:
    """The results of the page's last bucket (the one holding now): OpenAI's vector stores
    results, all of them."""
    *before, last = page.data
    assert all(bucket.results == [] for bucket in before), page
    results = [r for r in last.results if isinstance(r, VectorStoresResult)]
    assert len(results) == len(last.results), last
    for result in results:
        assert result.object == "organization.usage.vector_stores.result"
    return results


def _by_project(page: UsageVectorStoresResponse) -> dict[str | None, int]:
    return {result.project_id: result.usage_bytes for result in _results(page)}


def _gauge(metrics: str, project_id: str, kind: str) -> int | None:
    found = re.search(
        rf'^compat_project_storage_bytes\{{kind="{kind}",project="{project_id}"\}} (\S+)$',
        metrics,
        re.MULTILINE,
    )
    return None if found is None else int(float(found.group(1)))


def _wait_gauge(admin: httpx2.Client, project_id: str, kind: str, expected: int | None) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while (found := _gauge(admin.get("/metrics").text, project_id, kind)) != expected:
        assert time.monotonic() < deadline, f"{kind} of {project_id}: {found}, not {expected}"
        time.sleep(REFRESH_SECONDS)


def test_storage_moves_with_files_and_vector_stores(
    server: ServerThread, admin: httpx2.Client, sdk_admin: openai.OpenAI, stub: Any
) -> None:
    first_id, first = _project_client(server, admin, "storage a")
    second_id, second = _project_client(server, admin, "storage b")
    both = [first_id, second_id]
    assert _stored(sdk_admin, admin, both) == ({}, {})

    note = first.files.create(file=("note.txt", b"x" * 1234), purpose="assistants")
    assert _stored(sdk_admin, admin, both) == ({first_id: 1234}, {})
    _wait_gauge(admin, first_id, "files", 1234)

    store = first.vector_stores.create(name="docs")
    doc = first.files.create(file=("a.md", MARKDOWN), purpose="assistants")
    done = first.vector_stores.files.create_and_poll(
        vector_store_id=store.id, file_id=doc.id, poll_interval_ms=50
    )
    assert done.status == "completed", done.last_error
    assert done.usage_bytes > 0
    files_bytes = 1234 + len(MARKDOWN)
    assert _stored(sdk_admin, admin, both) == (
        {first_id: files_bytes},
        {first_id: done.usage_bytes},
    )
    _wait_gauge(admin, first_id, "vector_stores", done.usage_bytes)

    # The other project's bytes are its own, to the admin and to the project itself.
    second.files.create(file=("b.txt", b"y" * 100), purpose="assistants")
    assert _stored(sdk_admin, admin, both) == (
        {first_id: files_bytes, second_id: 100},
        {first_id: done.usage_bytes},
    )
    assert [s.usage_bytes for s in second.vector_stores.list()] == []
    assert [s.usage_bytes for s in first.vector_stores.list()] == [done.usage_bytes]
    summed = sdk_admin.admin.organization.usage.vector_stores(
        start_time=int(time.time()) - HOUR, project_ids=both
    )
    [total] = _results(summed)
    assert (total.usage_bytes, total.project_id) == (done.usage_bytes, None)
    _wait_gauge(admin, second_id, "files", 100)

    # gRPC answers what HTTP does.
    request = admin_pb2.GetStorageUsageRequest(
        start_time=int(time.time()) - HOUR, project_ids=both, group_by=["project_id"]
    )
    answer = stub.GetFilesUsage(request, metadata=bearer(ADMIN_KEY))
    results = [r for bucket in answer.data for r in bucket.results]
    assert {(r.project_id, r.usage_bytes) for r in results} == {
        (first_id, files_bytes),
        (second_id, 100),
    }

    # Deleting a file takes it out of the store that holds it: both sums drop.
    first.files.delete(doc.id)
    first.files.delete(note.id)
    assert _stored(sdk_admin, admin, both) == ({second_id: 100}, {})
    _wait_gauge(admin, first_id, "files", None)
    _wait_gauge(admin, first_id, "vector_stores", None)


def test_only_the_bucket_of_now_reports(admin: httpx2.Client) -> None:
    now = int(time.time())
    today = now - now % DAY
    page = _ok(admin.get(VECTOR_STORES, params={"start_time": today - 2 * DAY}))
    assert [b["start_time"] for b in page["data"]] == [today - 2 * DAY, today - DAY, today]
    assert [len(b["results"]) for b in page["data"]] == [0, 0, 1]
    assert all(b["object"] == "bucket" for b in page["data"])
    assert page["data"][2]["end_time"] == today + DAY
    assert (page["object"], page["has_more"], page["next_page"]) == ("page", False, None)
    result = page["data"][2]["results"][0]
    assert set(result) == {"object", "usage_bytes", "project_id"}
    assert result["project_id"] is None
    # A range that has passed knows nothing.
    past = _ok(admin.get(FILES, params={"start_time": today - 3 * DAY, "end_time": today}))
    assert len(past["data"]) == 3
    assert all(b["results"] == [] for b in past["data"])


def test_hourly_buckets_page(admin: httpx2.Client) -> None:
    now = int(time.time())
    hour = now - now % HOUR
    start = hour - 30 * HOUR
    first = _ok(admin.get(FILES, params={"start_time": start, "bucket_width": "1h"}))
    assert len(first["data"]) == 24
    assert first["has_more"] is True
    assert [b["start_time"] for b in first["data"][:2]] == [start, start + HOUR]
    rest = _ok(
        admin.get(
            FILES,
            params={"start_time": start, "bucket_width": "1h", "page": first["next_page"]},
        )
    )
    assert [b["start_time"] for b in rest["data"]] == [start + n * HOUR for n in range(24, 31)]
    assert rest["has_more"] is False
    assert [len(b["results"]) for b in rest["data"]] == [0] * 6 + [1]
    minutes = _ok(
        admin.get(
            VECTOR_STORES, params={"start_time": now - 60, "bucket_width": "1m", "limit": 1440}
        )
    )
    assert [b["end_time"] - b["start_time"] for b in minutes["data"]] == [60, 60]


@pytest.mark.parametrize("route", [VECTOR_STORES, FILES])
def test_bad_usage_input(admin: httpx2.Client, route: str) -> None:
    now = int(time.time())
    error = _error(admin.get(route), 400, "start_time")
    assert error["code"] == "missing_required_parameter"
    _error(admin.get(route, params={"start_time": "soon"}), 400, "start_time")
    _error(admin.get(route, params={"start_time": now, "end_time": now - 1}), 400, "start_time")
    for width in ("2d", "1w", "1D"):
        error = _error(
            admin.get(route, params={"start_time": now, "bucket_width": width}),
            400,
            "bucket_width",
        )
        assert error["type"] == "invalid_request_error"
    for group in ("model", "api_key_id"):
        _error(admin.get(route, params={"start_time": now, "group_by": group}), 400, "group_by")
    _error(admin.get(route, params={"start_time": now, "limit": 32}), 400, "limit")
    _error(
        admin.get(route, params={"start_time": now, "bucket_width": "1h", "limit": 169}),
        400,
        "limit",
    )
    for page in ("nope", "123", str(now + DAY - now % DAY + DAY)):
        _error(admin.get(route, params={"start_time": now, "page": page}), 400, "page")


def test_a_project_key_reads_no_usage(server: ServerThread, admin: httpx2.Client) -> None:
    _, client = _project_client(server, admin, "nosy")
    with client, pytest.raises(openai.PermissionDeniedError) as refused:
        client.admin.organization.usage.vector_stores(
            start_time=int(time.time()), extra_headers={"Authorization": f"Bearer {client.api_key}"}
        )
    assert refused.value.type == "permission_error"
    assert "api.management.read" in refused.value.message


def test_grpc_refuses_bad_input(stub: Any) -> None:
    with pytest.raises(grpc.RpcError) as missing:
        stub.GetVectorStoresUsage(admin_pb2.GetStorageUsageRequest(), metadata=bearer(ADMIN_KEY))
    assert missing.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as project_key:
        stub.GetFilesUsage(
            admin_pb2.GetStorageUsageRequest(start_time=1), metadata=bearer(CONFIG_KEY)
        )
    assert project_key.value.code() == grpc.StatusCode.PERMISSION_DENIED


def _downgrade_add_file_and_upgrade(conn: Connection, body: bytes) -> None:
    with ALEMBIC_LOCK:
        command.downgrade(alembic_config(conn), "0013")
    conn.execute(
        insert(schema.files).values(
            id="file-old",
            project_id=tenancy.DEFAULT_PROJECT,
            purpose="assistants",
            created_at=1,
            body=body,
        )
    )
    with ALEMBIC_LOCK:
        command.upgrade(alembic_config(conn), "head")


async def test_the_migration_fills_in_stored_files_sizes(
    db: TransactionRunner, db_url: str
) -> None:
    await db.run_migrations()
    old = files_pb2.File(id="file-old", bytes=4321, filename="old.txt", purpose="assistants")
    await db.write(lambda conn: _downgrade_add_file_and_upgrade(conn, old.SerializeToString()))
    store = create_store(db_url)
    await store.open()
    try:
        found = await store.storage_by_project([tenancy.DEFAULT_PROJECT])
        assert found[tenancy.DEFAULT_PROJECT].files == 4321
        assert found[tenancy.DEFAULT_PROJECT].vector_stores == 0
    finally:
        await store.close()


def test_openai_fields_nothing_here_honours(admin: httpx2.Client, sdk_admin: openai.OpenAI) -> None:
    """OpenAI's create bodies define fields beside `name`: their defaults are taken, any
    other value is refused as unsupported (not "unrecognized", which is for fields OpenAI
    does not define)."""
    project = _ok(admin.post(PROJECTS, json={"name": "defaults", "geography": None}))
    accounts = f"{PROJECTS}/{project['id']}/service_accounts"
    defaults = {"create_service_account_only": False, "expires_in_seconds": None}
    made = _ok(admin.post(accounts, json={"name": "ci", **defaults, "spend_limit": None}))
    assert made["api_key"]["value"]
    sdk_made = sdk_admin.admin.organization.projects.service_accounts.create(
        project["id"], name="sdk", create_service_account_only=False
    )
    assert sdk_made.api_key is not None
    assert sdk_made.role == "member"
    refused = {
        "create_service_account_only": True,
        "expires_in_seconds": 3600,
        "spend_limit": {"currency": "USD", "interval": "month", "threshold_amount": 100},
    }
    for field, value in refused.items():
        error = _error(admin.post(accounts, json={"name": "x", field: value}), 400, field)
        assert error["code"] == "unsupported_parameter"
        assert error["type"] == "invalid_request_error"
    error = _error(
        admin.post(accounts, json={"name": "x", "create_service_account_only": "yes"}),
        400,
        "create_service_account_only",
    )
    assert error["code"] == "invalid_type"
    error = _error(admin.post(accounts, json={"name": "x", "role": "owner"}), 400, "role")
    assert "Unrecognized request argument" in error["message"]
    for field in ("geography", "residency", "external_key_id"):
        error = _error(admin.post(PROJECTS, json={"name": "x", field: "eu"}), 400, field)
        assert error["code"] == "unsupported_parameter"
    error = _error(
        admin.post(f"{PROJECTS}/{project['id']}", json={"name": "y", "geography": "eu"}),
        400,
        "geography",
    )
    assert error["code"] == "unsupported_parameter"
    names = {a["name"] for a in _ok(admin.get(accounts))["data"]}
    assert names == {"ci", "sdk"}


def test_a_project_keys_refusal_has_no_code(server: ServerThread, admin: httpx2.Client) -> None:
    """OpenAI's 403 for a key without the management scope carries no code; neither does
    this one."""
    _, client = _project_client(server, admin, "coded")
    client.close()
    with httpx2.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {client.api_key}"}
    ) as http:
        error = _error(http.get(FILES, params={"start_time": 1}), 403, None)
    assert (error["type"], error["code"]) == ("permission_error", None)
    assert "Missing scopes: api.management.read" in error["message"]


async def test_the_gauge_keeps_its_projects_bounded(store: SqlStore) -> None:
    """Past its bound, the gauge sums the projects last in ID order into `other`."""
    for project, size in (("proj_a", 1), ("proj_b", 20), ("proj_c", 300), ("proj_d", 4000)):
        with tenancy.project(project):
            await store.create_file(
                files_pb2.File(id=f"file-{project}", bytes=size, purpose="assistants")
            )
    registry = CollectorRegistry()
    gauge = StorageGauge(store, 3600, registry, 2, "other")
    await gauge.refresh()
    samples = {
        sample.labels["project"]: sample.value
        for metric in registry.collect()
        if metric.name == "compat_project_storage_bytes"
        for sample in metric.samples
        if sample.labels["kind"] == "files"
    }
    assert samples == {"proj_a": 1, "proj_b": 20, "other": 4300}
    assert registry.get_sample_value("compat_project_storage_refresh_seconds") is not None
    await gauge.close()
    assert list(registry.collect()) == []
