"""Fixtures of the run tests (issue 3).

- `upstream`: one `ScriptedUpstream` for the session; `scripted` gives each test a model of
  its own on it (`scripted.model` is the `scripted/<name>` string runs use).
- `runs_server`: one server for the session whose providers are the scripted upstream
  (`scripted`) and a closed port (`dead`; `openai` and `ollama` point there too, so nothing
  leaves the machine), with the server-side tools of this package (`calculator`, `explode`,
  `shout`). `provider_overrides` gives the same providers to a `make_server(...)` server.
- `client`, `http` and `grpc_client` are overridden here to talk to `runs_server`.
- `echo_assistant`: a `builtin/echo` assistant with the client-side tools `get_weather` and
  `get_time`.
- `node`: the `node` executable with `tests/node`'s locked packages installed (skips the test
  without Node).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from harness import MakeClient, MakeGrpc, MakeHttp
from harness.grpc_client import GrpcClient
from harness.sandbox import require_sandbox, sessions_root
from harness.server import ServerThread, sqlite_url
from openai.types.beta import Assistant

from compat_core.config import ProviderConfig
from compat_core.sandbox.bubblewrap import BubblewrapSandbox
from runs.nodejs import locked_versions, node_with_locked_packages
from runs.tools import GET_TIME, GET_WEATHER, SERVER_TOOLS
from runs.upstream import ScriptedModel, ScriptedUpstream, closed_port_url


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: takes more than a few seconds (deselect: -m 'not slow')"
    )


# Servers


@pytest.fixture(scope="session")
def upstream() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream(provider="scripted") as server:
        yield server


@pytest.fixture(scope="session")
def dead_url() -> str:
    return closed_port_url()


@pytest.fixture(scope="session")
def provider_overrides(upstream: ScriptedUpstream, dead_url: str) -> dict[str, Any]:
    """`ServerThread`/`make_server` keyword arguments for this package's providers.

    `ServerThread` hands unknown keywords to `Settings`, which knows `extra_providers` (what
    `create_server(providers=…)` fills in) and ignores `providers`.
    """
    providers = {
        "scripted": ProviderConfig(name="scripted", base_url=upstream.base_url),
        "dead": ProviderConfig(name="dead", base_url=dead_url),
        "openai": ProviderConfig(name="openai", base_url=dead_url),
        "ollama": ProviderConfig(name="ollama", base_url=dead_url),
    }
    return {"extra_providers": providers}


@pytest.fixture(scope="session")
def code_sessions_dir() -> Iterator[Path]:
    """Where `runs_server`'s (and any test server's) code_interpreter sessions keep their
    files: a directory the sandbox's unprivileged uids can pass through."""
    with sessions_root() as root:
        yield root


@pytest.fixture(scope="session")
def runs_server(
    tmp_path_factory: pytest.TempPathFactory,
    provider_overrides: dict[str, Any],
    code_sessions_dir: Path,
) -> Iterator[ServerThread]:
    server = ServerThread(
        database_url=sqlite_url(tmp_path_factory.mktemp("runs-server")),
        tools=SERVER_TOOLS,
        code_interpreter_dir=str(code_sessions_dir / "runs-server"),
        **provider_overrides,
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sandbox_ready() -> None:
    """The tests that run code need the sandbox (see `harness.sandbox`)."""
    require_sandbox(BubblewrapSandbox())


@pytest.fixture
def scripted(upstream: ScriptedUpstream) -> ScriptedModel:
    """A model of this test's own on the scripted upstream."""
    return upstream.model()


# Clients on `runs_server`


@pytest.fixture
def client(runs_server: ServerThread, make_client: MakeClient) -> openai.OpenAI:
    return make_client(runs_server)


@pytest.fixture
def http(runs_server: ServerThread, make_http: MakeHttp) -> httpx2.Client:
    return make_http(runs_server)


@pytest.fixture
def grpc_client(runs_server: ServerThread, make_grpc: MakeGrpc) -> GrpcClient:
    return make_grpc(runs_server)


@pytest.fixture
def echo_assistant(client: openai.OpenAI, tag: str) -> Assistant:
    return client.beta.assistants.create(
        model="builtin/echo",
        name="echo",
        instructions="Repeat after me.",
        tools=[GET_WEATHER, GET_TIME],
        metadata={"tag": tag},
    )


@pytest.fixture(scope="session")
def node() -> str:
    locked = locked_versions()["openai"]
    assert locked.startswith("7."), f"tests/node must pin openai 7.x, the lockfile has {locked}"
    return node_with_locked_packages()
