"""Fixtures of the end-to-end suite.

Databases: SQLite files under tmp dirs; in the PostgreSQL pass (`COMPAT_TEST_POSTGRES_URL`
set, see `harness.server`), a fresh PostgreSQL database for each server instead, dropped when
the server's fixture ends (or, for servers other conftests start, when the session does).

Servers
- `session_server`: one server for the whole session (its own database, auth off, CORS
  `*`). Tests that share it must not depend on what others created: they make their own
  threads, tag their objects, or page relative to their own IDs.
- `auth_server` (API key `k1`) and `cors_server` (key `k1`, origin `https://app.example`):
  started on first use, shared by the tests that need that configuration.
- `make_server(**kwargs)`: a server of the test's own on a fresh database, stopped at teardown
  (for absolute counts, restarts, or settings such as `max_upload_bytes`).

Clients (every HTTP response under `/v1` is validated against the OpenAPI spec)
- `client`: `openai.OpenAI` on `session_server`, `max_retries=0`.
- `make_client(server, api_key="test", max_retries=0)`: the same for any server.
- `http`: a raw `httpx2.Client` on `session_server`'s root URL; `make_http(server)` for others.
- `grpc_client`: a `GrpcClient` (sync stubs) on `session_server`; `make_grpc(server)` for others.
- `schema_hook`: the test's `SchemaHook`; teardown fails the test on any spec violation that
  the test itself did not already fail on (say, one a broad `except` swallowed).
- `tag`: a hex string unique to the test, for metadata that marks its objects.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from harness import ALLOWED_ORIGIN, API_KEY, MakeClient, MakeGrpc, MakeHttp, MakeServer
from harness.grpc_client import GrpcClient
from harness.schema import SchemaHook
from harness.server import ServerThread, database_url, drop_all_databases, drop_database

from compat_core import tenancy

CLIENT_TIMEOUT = 60.0

pytest_plugins = ["store_fixtures"]


def pytest_configure(config: pytest.Config) -> None:
    # The SDK's Assistants methods carry `@deprecated("deprecated")`, a warning attributed to
    # the calling test module, which pyproject's `openai.*` module filter does not reach.
    config.addinivalue_line("filterwarnings", "ignore:deprecated$:DeprecationWarning")


@pytest.fixture(scope="session", autouse=True)
def _drop_test_databases() -> Iterator[None]:
    """Set up before, so torn down after, every other session fixture: whatever PostgreSQL
    databases are left (those of servers that other conftests start) go with the session."""
    yield
    drop_all_databases()


@pytest.fixture(autouse=True)
def _default_project() -> Iterator[None]:
    """Tests that call the store directly do so as a client of the default project would (the
    store refuses work outside any project scope). Servers run on threads of their own, which
    this does not reach: the guard and the background work set their scopes themselves."""
    with tenancy.project(tenancy.DEFAULT_PROJECT):
        yield


def _serve(directory: Path, **kwargs: Any) -> ServerThread:
    server = ServerThread(database_url=database_url(directory), **kwargs)
    try:
        return server.start()
    except BaseException:
        drop_database(server.database_url)
        raise


def _dispose(server: ServerThread) -> None:
    try:
        server.stop()
    finally:
        drop_database(server.database_url)


@pytest.fixture(scope="session")
def session_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    server = _serve(tmp_path_factory.mktemp("session-server"))
    yield server
    _dispose(server)


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    server = _serve(tmp_path_factory.mktemp("auth-server"), api_keys=[API_KEY])
    yield server
    _dispose(server)


@pytest.fixture(scope="session")
def cors_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    server = _serve(
        tmp_path_factory.mktemp("cors-server"),
        api_keys=[API_KEY],
        cors_origins=[ALLOWED_ORIGIN],
    )
    yield server
    _dispose(server)


@pytest.fixture
def make_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeServer]:
    servers: list[ServerThread] = []

    def make(**kwargs: Any) -> ServerThread:
        server = _serve(tmp_path_factory.mktemp("own-server"), **kwargs)
        servers.append(server)
        return server

    yield make
    for server in reversed(servers):
        _dispose(server)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # Keep each phase's report on the test, so fixtures can tell whether the call failed.
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.fixture
def schema_hook(request: pytest.FixtureRequest) -> Iterator[SchemaHook]:
    hook = SchemaHook()
    yield hook
    call = request.node.stash.get(_REPORTS, {}).get("call")
    if call is not None and call.failed:
        return  # the violation (if any) already failed the test; don't report it twice
    hook.assert_clean()


@pytest.fixture
def make_client(schema_hook: SchemaHook) -> Iterator[MakeClient]:
    clients: list[openai.OpenAI] = []

    def make(
        server: ServerThread, api_key: str = "test", max_retries: int = 0, **kwargs: Any
    ) -> openai.OpenAI:
        hooks = [schema_hook, *kwargs.pop("extra_hooks", [])]
        http_client = httpx2.Client(event_hooks={"response": hooks}, timeout=CLIENT_TIMEOUT)
        client = openai.OpenAI(
            base_url=server.base_url,
            api_key=api_key,
            max_retries=max_retries,
            http_client=http_client,
            **kwargs,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(session_server: ServerThread, make_client: MakeClient) -> openai.OpenAI:
    return make_client(session_server)


@pytest.fixture
def make_http(schema_hook: SchemaHook) -> Iterator[MakeHttp]:
    clients: list[httpx2.Client] = []

    def make(server: ServerThread, **kwargs: Any) -> httpx2.Client:
        http = httpx2.Client(
            base_url=server.url,
            event_hooks={"response": [schema_hook]},
            timeout=CLIENT_TIMEOUT,
            **kwargs,
        )
        clients.append(http)
        return http

    yield make
    for http in clients:
        http.close()


@pytest.fixture
def http(session_server: ServerThread, make_http: MakeHttp) -> httpx2.Client:
    return make_http(session_server)


@pytest.fixture
def make_grpc() -> Iterator[MakeGrpc]:
    clients: list[GrpcClient] = []

    def make(server: ServerThread) -> GrpcClient:
        client = GrpcClient(server.grpc_target)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def grpc_client(session_server: ServerThread, make_grpc: MakeGrpc) -> GrpcClient:
    return make_grpc(session_server)


@pytest.fixture
def tag() -> str:
    """A value unique to this test, to mark the objects it creates."""
    return uuid.uuid4().hex
