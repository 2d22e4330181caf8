"""The admin surface: `/v1/organization/projects…` over HTTP and `AdminService` over gRPC.

One server (its own database; SQLite, or PostgreSQL in that pass) with a `COMPAT_API_KEYS`
key and an admin key. The repository's OpenAPI file has no schema for these routes, so the
admin client goes without the schema hook and each test asserts the fields of OpenAI's
objects itself; calls to the project API are made with the SDK and validated as usual.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import grpc
import httpx2
import openai
import pytest
from harness import MakeServer
from harness.grpc_client import bearer
from harness.server import ServerThread, database_url, drop_database, postgres_admin_url

from compat_core import tenancy
from compat_core.store import create_store
from compat_core.v1 import admin_pb2, admin_pb2_grpc

CONFIG_KEY = "k-default"
ADMIN_KEY = "k-admin"
PROJECTS = "/v1/organization/projects"
# How long a revocation may take to reach the other core (the notice, not the 5 s re-check).
NOTICE_SECONDS = 2.5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    started = ServerThread(
        database_url=database_url(tmp_path_factory.mktemp("admin")),
        api_keys=[CONFIG_KEY],
        admin_keys=[ADMIN_KEY],
    ).start()
    yield started
    started.stop()
    drop_database(started.database_url)


def _http(server: ServerThread, key: str | None) -> httpx2.Client:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    return httpx2.Client(base_url=server.url, headers=headers, timeout=30.0)


@pytest.fixture
def admin(server: ServerThread) -> Iterator[httpx2.Client]:
    with _http(server, ADMIN_KEY) as client:
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


def _project(admin: httpx2.Client, name: str) -> dict[str, Any]:
    return dict(_ok(admin.post(PROJECTS, json={"name": name})))


def _account(admin: httpx2.Client, project_id: str, name: str) -> dict[str, Any]:
    return dict(_ok(admin.post(f"{PROJECTS}/{project_id}/service_accounts", json={"name": name})))


def _client(server: ServerThread, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)


def _assert_project(body: dict[str, Any], name: str, archived: bool = False) -> None:
    assert body["object"] == "organization.project"
    assert body["id"].startswith("proj_")
    assert body["name"] == name
    assert abs(body["created_at"] - time.time()) < 600
    assert body["status"] == ("archived" if archived else "active")
    assert (body["archived_at"] is not None) is archived
    assert set(body) == {"object", "id", "name", "created_at", "archived_at", "status"}


def _assert_account(body: dict[str, Any], name: str) -> None:
    assert body["object"] == "organization.project.service_account"
    assert body["id"].startswith("svc_acct_")
    assert body["name"] == name
    assert body["role"] == "member"
    assert isinstance(body["created_at"], int)


async def _stored_assistant(server: ServerThread, project_id: str, assistant_id: str) -> str:
    """The name of an assistant as the store holds it in its project (whose keys may be
    gone)."""
    store = create_store(server.database_url)
    await store.open()
    try:
        with tenancy.project(project_id):
            found = await store.get_assistant(assistant_id)
    finally:
        await store.close()
    assert found is not None, "the object is gone"
    return found.name


def _works(server: ServerThread, key: str) -> bool:
    """Whether `key` opens its project's API now (a 401 says it does not)."""
    with _client(server, key) as client:
        try:
            client.beta.assistants.list(limit=1)
        except openai.AuthenticationError:
            return False
    return True


def test_projects_are_created_read_renamed_and_listed(admin: httpx2.Client) -> None:
    made = [_project(admin, f"team {index}") for index in range(3)]
    for index, body in enumerate(made):
        _assert_project(body, f"team {index}")
        assert _ok(admin.get(f"{PROJECTS}/{body['id']}")) == body
    renamed = _ok(admin.post(f"{PROJECTS}/{made[0]['id']}", json={"name": "renamed"}))
    _assert_project(renamed, "renamed")
    assert _ok(admin.get(f"{PROJECTS}/{made[0]['id']}"))["name"] == "renamed"

    listed = _ok(admin.get(PROJECTS, params={"limit": 100}))
    assert listed["object"] == "list"
    ids = [project["id"] for project in listed["data"]]
    assert "proj_default" in ids, "the default project is not listed"
    assert {body["id"] for body in made} <= set(ids)
    # Oldest first (within a second, by ID); page by page, each page after the last.
    order = [(p["created_at"], p["id"]) for p in listed["data"]]
    assert order == sorted(order)
    paged: list[str] = []
    after = ""
    while True:
        page = _ok(admin.get(PROJECTS, params={"limit": 2, "after": after}))
        assert len(page["data"]) <= 2
        paged += [project["id"] for project in page["data"]]
        if not page["has_more"]:
            break
        assert page["last_id"] == paged[-1]
        assert page["first_id"] == page["data"][0]["id"]
        after = page["last_id"]
    assert paged == ids


def test_archiving_stops_the_keys_at_once_and_keeps_the_objects(
    server: ServerThread, admin: httpx2.Client
) -> None:
    project = _project(admin, "to archive")
    key = _account(admin, project["id"], "app")["api_key"]["value"]
    with _client(server, key) as client:
        assistant = client.beta.assistants.create(model="gpt-4o-mini", name="kept")
    assert _works(server, key)

    archived = _ok(admin.post(f"{PROJECTS}/{project['id']}/archive"))
    _assert_project(archived, "to archive", archived=True)
    assert not _works(server, key), "an archived project's key still works"
    again = _ok(admin.post(f"{PROJECTS}/{project['id']}/archive"))
    assert again == archived, "archiving twice changed the project"

    active = [p["id"] for p in _ok(admin.get(PROJECTS, params={"limit": 100}))["data"]]
    assert project["id"] not in active
    every = _ok(admin.get(PROJECTS, params={"limit": 100, "include_archived": "true"}))
    assert project["id"] in [p["id"] for p in every["data"]]
    assert _ok(admin.get(f"{PROJECTS}/{project['id']}"))["status"] == "archived"

    refused = admin.post(f"{PROJECTS}/{project['id']}/service_accounts", json={"name": "late"})
    _error(refused, 400, "project_id")
    _error(admin.post(f"{PROJECTS}/{project['id']}", json={"name": "x"}), 400, "project_id")
    assert asyncio.run(_stored_assistant(server, project["id"], assistant.id)) == "kept"
    listed_keys = _ok(admin.get(f"{PROJECTS}/{project['id']}/api_keys"))
    assert len(listed_keys["data"]) == 1, "archiving deleted the project's keys"


def test_the_default_project_cannot_be_archived(admin: httpx2.Client) -> None:
    error = _error(admin.post(f"{PROJECTS}/proj_default/archive"), 400, "project_id")
    assert "default project" in error["message"]
    assert _ok(admin.get(f"{PROJECTS}/proj_default"))["status"] == "active"


def test_service_accounts_and_their_keys(server: ServerThread, admin: httpx2.Client) -> None:
    project = _project(admin, "with accounts")
    base = f"{PROJECTS}/{project['id']}"
    created = _account(admin, project["id"], "ci")
    _assert_account(created, "ci")
    key = created["api_key"]
    assert key["object"] == "organization.project.service_account.api_key"
    assert key["id"].startswith("key_")
    assert key["name"] == "ci"
    assert key["value"].startswith("sk-proj-")
    assert len(key["value"]) > 40
    assert isinstance(key["created_at"], int)
    account = {name: value for name, value in created.items() if name != "api_key"}

    assert _ok(admin.get(f"{base}/service_accounts/{created['id']}")) == account
    accounts = _ok(admin.get(f"{base}/service_accounts"))
    assert accounts["object"] == "list"
    assert accounts["data"] == [account]
    assert accounts["first_id"] == accounts["last_id"] == created["id"]
    assert accounts["has_more"] is False

    # The key works on its project's API at once, and sees that project alone.
    with _client(server, key["value"]) as client:
        mine = client.beta.assistants.create(model="gpt-4o-mini", name="mine")
        assert [a.id for a in client.beta.assistants.list().data] == [mine.id]
    with _client(server, CONFIG_KEY) as default, pytest.raises(openai.NotFoundError):
        default.beta.assistants.retrieve(mine.id)

    listed = _ok(admin.get(f"{base}/api_keys"))
    assert [k["id"] for k in listed["data"]] == [key["id"]]
    shown = _ok(admin.get(f"{base}/api_keys/{key['id']}"))
    assert shown == listed["data"][0]
    assert shown["object"] == "organization.project.api_key"
    assert shown["name"] == "ci"
    assert shown["created_at"] == key["created_at"]
    assert shown["redacted_value"].endswith(key["value"][-4:])
    assert key["value"] not in str(listed), "a listing shows a key's value"
    assert shown["owner"] == {"type": "service_account", "service_account": account}
    assert shown["last_used_at"] is None or abs(shown["last_used_at"] - time.time()) < 600

    deleted = _ok(admin.delete(f"{base}/service_accounts/{created['id']}"))
    assert deleted == {
        "object": "organization.project.service_account.deleted",
        "id": created["id"],
        "deleted": True,
    }
    assert not _works(server, key["value"]), "a deleted service account's key still works"
    _error(admin.get(f"{base}/service_accounts/{created['id']}"), 404, "service_account_id")
    _error(admin.get(f"{base}/api_keys/{key['id']}"), 404, "key_id")

    other = _account(admin, project["id"], "other")["api_key"]
    assert _works(server, other["value"])
    gone = _ok(admin.delete(f"{base}/api_keys/{other['id']}"))
    assert gone == {
        "object": "organization.project.api_key.deleted",
        "id": other["id"],
        "deleted": True,
    }
    assert not _works(server, other["value"]), "a deleted key still works"
    assert _ok(admin.get(f"{base}/api_keys"))["data"] == []


def test_lists_of_accounts_and_keys_page(admin: httpx2.Client) -> None:
    project = _project(admin, "paged")
    base = f"{PROJECTS}/{project['id']}"
    made = {_account(admin, project["id"], f"a{index}")["id"] for index in range(3)}
    first = _ok(admin.get(f"{base}/service_accounts", params={"limit": 2}))
    assert len(first["data"]) == 2
    assert first["has_more"] is True
    rest = _ok(admin.get(f"{base}/service_accounts", params={"after": first["last_id"]}))
    assert len(rest["data"]) == 1
    assert rest["has_more"] is False
    assert {a["id"] for a in first["data"] + rest["data"]} == made
    keys = _ok(admin.get(f"{base}/api_keys", params={"limit": 1}))
    assert len(keys["data"]) == 1
    assert keys["has_more"] is True
    later = _ok(admin.get(f"{base}/api_keys", params={"after": keys["last_id"]}))
    assert len(later["data"]) == 2
    assert keys["last_id"] not in [k["id"] for k in later["data"]]


def test_admin_and_project_keys_are_kept_apart(server: ServerThread, admin: httpx2.Client) -> None:
    project = _project(admin, "apart")
    service_key = _account(admin, project["id"], "svc")["api_key"]["value"]
    for key in (CONFIG_KEY, service_key):
        with _http(server, key) as http:
            error = _error(http.get(PROJECTS), 403)
            assert error["type"] == "permission_error"
            assert "api.management.read" in error["message"]
            _error(http.post(PROJECTS, json={"name": "nope"}), 403)
    with _http(server, "not-a-key") as http:
        _error(http.get(PROJECTS), 401)
    with _http(server, None) as http:
        _error(http.get(PROJECTS), 401)
    client = _client(server, ADMIN_KEY)
    with client, pytest.raises(openai.AuthenticationError) as refused:
        client.beta.assistants.list()
    assert "COMPAT_ADMIN_KEYS" in refused.value.message
    with _http(server, ADMIN_KEY) as http:
        _error(http.post("/v1/assistants", json={"model": "gpt-4o-mini"}), 401)
    names = [p["name"] for p in _ok(admin.get(PROJECTS, params={"limit": 100}))["data"]]
    assert "nope" not in names


def test_grpc_keeps_the_keys_apart(server: ServerThread, stub: Any) -> None:
    with pytest.raises(grpc.RpcError) as project_key:
        stub.ListProjects(admin_pb2.ListProjectsRequest(), metadata=bearer(CONFIG_KEY))
    assert project_key.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as no_key:
        stub.AuthenticateAdmin(admin_pb2.AuthenticateAdminRequest())
    assert no_key.value.code() == grpc.StatusCode.UNAUTHENTICATED
    stub.AuthenticateAdmin(admin_pb2.AuthenticateAdminRequest(), metadata=bearer(ADMIN_KEY))


def test_every_rpc(server: ServerThread, stub: Any) -> None:
    md = bearer(ADMIN_KEY)
    project = stub.CreateProject(admin_pb2.CreateProjectRequest(name="rpc"), metadata=md)
    assert project.id.startswith("proj_")
    assert not project.HasField("archived_at")
    assert stub.GetProject(admin_pb2.GetProjectRequest(project_id=project.id), metadata=md) == (
        project
    )
    renamed = stub.ModifyProject(
        admin_pb2.ModifyProjectRequest(project_id=project.id, name="rpc2"), metadata=md
    )
    assert renamed.name == "rpc2"
    listed = stub.ListProjects(admin_pb2.ListProjectsRequest(limit=100), metadata=md)
    assert project.id in [p.id for p in listed.data]
    created = stub.CreateServiceAccount(
        admin_pb2.CreateServiceAccountRequest(project_id=project.id, name="bot"), metadata=md
    )
    account = created.service_account
    assert account.role == "member"
    assert created.api_key.value.startswith("sk-proj-")
    assert _works(server, created.api_key.value)
    accounts = stub.ListServiceAccounts(
        admin_pb2.ListServiceAccountsRequest(project_id=project.id), metadata=md
    )
    assert list(accounts.data) == [account]
    got = stub.GetServiceAccount(
        admin_pb2.GetServiceAccountRequest(project_id=project.id, service_account_id=account.id),
        metadata=md,
    )
    assert got == account
    keys = stub.ListApiKeys(admin_pb2.ListApiKeysRequest(project_id=project.id), metadata=md)
    assert [k.id for k in keys.data] == [created.api_key.id]
    key = stub.GetApiKey(
        admin_pb2.GetApiKeyRequest(project_id=project.id, key_id=created.api_key.id), metadata=md
    )
    assert key.owner == account
    deleted = stub.DeleteServiceAccount(
        admin_pb2.DeleteServiceAccountRequest(project_id=project.id, service_account_id=account.id),
        metadata=md,
    )
    assert deleted.deleted
    assert deleted.id == account.id
    assert not _works(server, created.api_key.value)
    second = stub.CreateServiceAccount(
        admin_pb2.CreateServiceAccountRequest(project_id=project.id, name="bot2"), metadata=md
    )
    gone = stub.DeleteApiKey(
        admin_pb2.DeleteApiKeyRequest(project_id=project.id, key_id=second.api_key.id),
        metadata=md,
    )
    assert gone.deleted
    assert gone.id == second.api_key.id
    archived = stub.ArchiveProject(
        admin_pb2.ArchiveProjectRequest(project_id=project.id), metadata=md
    )
    assert archived.HasField("archived_at")
    with pytest.raises(grpc.RpcError) as refused:
        stub.ArchiveProject(admin_pb2.ArchiveProjectRequest(project_id="proj_default"), metadata=md)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_bad_input(admin: httpx2.Client) -> None:
    project = _project(admin, "bad input")
    base = f"{PROJECTS}/{project['id']}"
    _error(admin.post(PROJECTS, json={}), 400, "name")
    _error(admin.post(PROJECTS, json={"name": ""}), 400, "name")
    _error(admin.post(PROJECTS, json={"name": 5}), 400, "name")
    _error(admin.post(PROJECTS, json={"name": "x" * 257}), 400, "name")
    _error(admin.post(PROJECTS, json={"name": "a\nb"}), 400, "name")
    _error(admin.post(PROJECTS, json={"name": "x", "extra": 1}), 400, "extra")
    _error(admin.post(PROJECTS, content=b"not json"), 400)
    _error(admin.get(PROJECTS, params={"limit": 0}), 400, "limit")
    _error(admin.get(PROJECTS, params={"limit": "many"}), 400, "limit")
    _error(admin.get(PROJECTS, params={"include_archived": "maybe"}), 400, "include_archived")
    _error(admin.get(PROJECTS, params={"after": "proj_missing"}), 400, "after")
    _error(admin.get(f"{base}/api_keys", params={"after": "key_missing"}), 400, "after")
    _error(admin.post(f"{base}/service_accounts", json={}), 400, "name")
    missing = f"{PROJECTS}/proj_missing"
    for method, path in (
        ("GET", missing),
        ("POST", f"{missing}/archive"),
        ("GET", f"{missing}/service_accounts"),
        ("GET", f"{missing}/service_accounts/svc_acct_x"),
        ("DELETE", f"{missing}/service_accounts/svc_acct_x"),
        ("GET", f"{missing}/api_keys"),
        ("GET", f"{missing}/api_keys/key_x"),
        ("DELETE", f"{missing}/api_keys/key_x"),
    ):
        _error(admin.request(method, path), 404, "project_id")
    _error(admin.post(missing, json={"name": "x"}), 404, "project_id")
    _error(admin.post(f"{missing}/service_accounts", json={"name": "x"}), 404, "project_id")
    _error(admin.get(f"{base}/service_accounts/svc_acct_nothing"), 404, "service_account_id")
    _error(admin.get(f"{base}/service_accounts/key_wrongkind"), 404, "service_account_id")
    _error(admin.delete(f"{base}/api_keys/key_nothing"), 404, "key_id")
    # A key of another project is missing from this one's paths.
    other = _project(admin, "other")
    foreign = _account(admin, other["id"], "foreign")
    _error(admin.get(f"{base}/api_keys/{foreign['api_key']['id']}"), 404, "key_id")
    _error(admin.delete(f"{base}/service_accounts/{foreign['id']}"), 404, "service_account_id")
    assert _ok(admin.get(f"{PROJECTS}/{other['id']}/service_accounts/{foreign['id']}"))


def test_without_admin_keys_the_admin_api_says_how_to_turn_it_on(
    make_server: MakeServer,
) -> None:
    server = make_server(api_keys=[CONFIG_KEY])
    with _http(server, CONFIG_KEY) as http:
        error = _error(http.get(PROJECTS), 403)
    assert "COMPAT_ADMIN_KEYS" in error["message"]


@pytest.mark.skipif(
    postgres_admin_url() is None, reason="cores share a database, and revocations, on PostgreSQL"
)
def test_revocation_and_archiving_reach_another_core_at_once(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    url = database_url(tmp_path_factory.mktemp("two-cores"))
    first = ServerThread(database_url=url, admin_keys=[ADMIN_KEY]).start()
    try:
        second = ServerThread(database_url=url, admin_keys=[ADMIN_KEY]).start()
        try:
            with _http(first, ADMIN_KEY) as admin:
                deleted, archived = _project(admin, "deleted"), _project(admin, "archived")
                doomed = _account(admin, deleted["id"], "doomed")
                frozen = _account(admin, archived["id"], "frozen")
                for made in (doomed, frozen):
                    # The other core has a verdict on each key cached before it is revoked.
                    assert _works(second, made["api_key"]["value"])
                base = f"{PROJECTS}/{deleted['id']}/service_accounts/{doomed['id']}"
                _ok(admin.delete(base))
                _ok(admin.post(f"{PROJECTS}/{archived['id']}/archive"))
            for made in (doomed, frozen):
                deadline = time.monotonic() + NOTICE_SECONDS
                while _works(second, made["api_key"]["value"]):
                    assert time.monotonic() < deadline, "the other core still takes the key"
                    time.sleep(0.05)
        finally:
            second.stop()
    finally:
        first.stop()
        drop_database(url)


def test_admin_calls_count_against_no_project_limit(make_server: MakeServer) -> None:
    server = make_server(
        api_keys=[CONFIG_KEY], admin_keys=[ADMIN_KEY], rate_limit_requests_per_minute=2
    )
    with _http(server, ADMIN_KEY) as admin:
        for _ in range(5):
            _ok(admin.get(PROJECTS))
    with _http(server, CONFIG_KEY) as http:
        statuses = [http.get("/v1/assistants").status_code for _ in range(3)]
    assert statuses == [200, 200, 429], "the project's limit is not the one counted"
