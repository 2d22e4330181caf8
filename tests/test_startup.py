"""Start-up as a newcomer meets it: the real `assistants-compat` console script, run as a
process, for every setting a person can get wrong, and the summary it logs once it listens.

Bad settings are one line each on stderr naming the variable, no traceback, exit status 2;
every bad setting found before the database is opened is reported at once. The processes of
the bad-setting cases start together (a Python start costs about a second, most of it
importing), and each case is then checked on its own.
"""

from __future__ import annotations

import asyncio
import os
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from harness.server import database_url, drop_database, sqlite_url
from sqlalchemy.engine import make_url

from compat_core.config import ConfigError, Settings
from compat_core.embedded import create_server
from compat_core.server import CoreServer
from compat_core.summary import Listening, startup_summary
from http_edge.app import run_edge

CLI = Path(sys.executable).parent / "assistants-compat"
TIMEOUT = 60.0
SECRET = "s3cret-pw"
# TEST-NET-1 (RFC 5737): never an address of this machine.
FOREIGN_HOST = "192.0.2.1"


def base_env(directory: Path) -> dict[str, str]:
    """The test's environment without its own COMPAT_/OPENAI_ settings, on loopback ports the
    kernel picks, and a SQLite file in `directory`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPAT_", "OPENAI_"))}
    env.update(
        COMPAT_HTTP_HOST="127.0.0.1",
        COMPAT_HTTP_PORT="0",
        COMPAT_GRPC_HOST="127.0.0.1",
        COMPAT_GRPC_PORT="0",
        COMPAT_METRICS_HOST="127.0.0.1",
        COMPAT_METRICS_PORT="0",
        COMPAT_DATABASE_URL=f"sqlite:///{directory / 'compat.db'}",
        # Nothing leaves the machine: the built-in providers point at a closed port.
        OPENAI_BASE_URL="http://127.0.0.1:9/v1",
    )
    return env


@dataclass(frozen=True)
class Case:
    """Bad settings given to one command, and for each variable words its line must hold."""

    command: str
    env: dict[str, str]
    expected: dict[str, str]
    # Whether those lines are all of stderr (nothing is logged before the checks).
    alone: bool = True


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stderr: str


@pytest.fixture(scope="module")
def busy_port() -> Iterator[int]:
    """A loopback port another program listens on."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield listener.getsockname()[1]


@pytest.fixture(scope="module")
def closed_port() -> Iterator[int]:
    """A loopback port bound, not listening: connecting to it is refused."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


# Every variable of README's table that a value alone can make wrong: (value, words).
FIELDS = {
    "COMPAT_HTTP_PORT": ("eighty", "valid integer"),
    "COMPAT_GRPC_PORT": ("70000", "65535"),
    "COMPAT_METRICS_PORT": ("-1", "greater than or equal to 0"),
    "COMPAT_CORE_TARGET": ("http://core:50051", "not a URL"),
    "COMPAT_DATABASE_URL": (f"postgresql://app:{SECRET}@db:port/compat", "postgresql://app:***@"),
    "COMPAT_CORS_ORIGINS": ("app.example.com", "scheme://host[:port]"),
    "COMPAT_LOG_REQUESTS": ("maybe", "boolean"),
    "COMPAT_TOOLS": ("mytools", "package.module:attribute"),
    "COMPAT_DEFAULT_MODEL": ("gpt-4o", "provider/model"),
    "COMPAT_MODEL_ALIASES": ("gpt-4o-mini", "name=provider/model"),
    "COMPAT_MAX_UPLOAD_BYTES": ("0", "greater than or equal to 1"),
    "COMPAT_REQUIRES_ACTION_TIMEOUT_SECONDS": ("soon", "valid integer"),
    "COMPAT_RUN_LEASE_SECONDS": ("0", "greater than or equal to 0.5"),
    "COMPAT_REPLICA_ID": ("r" * 101, "at most 100"),
    "COMPAT_LOG_LEVEL": ("loud", "'INFO'"),
    "COMPAT_LOG_FORMAT": ("xml", "'json'"),
    "COMPAT_PROVIDER_LOCAL_BASE_URL": ("localhost:8000/v1", "http:// or https://"),
    "OPENAI_BASE_URL": ("api.openai.com", "http:// or https://"),
    "COMPAT_PROVIDER_OTHER_API_KEY": ("sk-other", "COMPAT_PROVIDER_OTHER_BASE_URL is required"),
}


@pytest.fixture(scope="module")
def cases(
    tmp_path_factory: pytest.TempPathFactory, busy_port: int, closed_port: int
) -> dict[str, Case]:
    plain_file = tmp_path_factory.mktemp("plain") / "a-file"
    plain_file.write_text("")
    unreachable = f"postgresql://app:{SECRET}@127.0.0.1:{closed_port}/compat"
    busy = str(busy_port)
    return {
        "every field": Case(
            "run",
            {variable: value for variable, (value, _) in FIELDS.items()},
            {variable: says for variable, (_, says) in FIELDS.items()},
        ),
        "run": Case(
            "run",
            {
                "COMPAT_TOOLS": "no_such_tools_module:add",
                "COMPAT_DEFAULT_MODEL": "nowhere/m",
                "COMPAT_FILES_DIR": str(plain_file / "files"),
                "COMPAT_HTTP_PORT": busy,
                "COMPAT_GRPC_HOST": FOREIGN_HOST,
            },
            {
                "COMPAT_TOOLS": "no module 'no_such_tools_module'",
                "COMPAT_DEFAULT_MODEL": "'nowhere'",
                "COMPAT_FILES_DIR": "is not a directory",
                "COMPAT_HTTP_PORT": "already in use",
                "COMPAT_GRPC_HOST": "not an address of this machine",
            },
        ),
        "core": Case(
            "core",
            {
                "COMPAT_MODEL_ALIASES": "gpt-4o-mini=nowhere/m",
                "COMPAT_GRPC_PORT": busy,
                "COMPAT_METRICS_PORT": busy,
            },
            {
                "COMPAT_MODEL_ALIASES": "'nowhere'",
                "COMPAT_GRPC_PORT": "already in use",
                "COMPAT_METRICS_PORT": "already in use",
            },
        ),
        "edge": Case(
            "edge",
            {"COMPAT_HTTP_HOST": FOREIGN_HOST},
            {"COMPAT_HTTP_HOST": "not an address of this machine"},
        ),
        "database (run)": Case(
            "run",
            {"COMPAT_DATABASE_URL": unreachable},
            {"COMPAT_DATABASE_URL": "cannot open the database: Connection refused"},
            alone=False,
        ),
        "database (migrate)": Case(
            "migrate",
            {"COMPAT_DATABASE_URL": unreachable},
            {"COMPAT_DATABASE_URL": "cannot open the database: Connection refused"},
        ),
    }


@pytest.fixture(scope="module")
def outcomes(
    tmp_path_factory: pytest.TempPathFactory, cases: dict[str, Case]
) -> Iterator[dict[str, Outcome]]:
    """Every case's process, started together, run to its exit."""
    started: dict[str, subprocess.Popen[str]] = {}
    try:
        for name, case in cases.items():
            directory = tmp_path_factory.mktemp("case")
            started[name] = subprocess.Popen(
                [str(CLI), case.command],
                env={**base_env(directory), **case.env},
                cwd=directory,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        results: dict[str, Outcome] = {}
        for name, process in started.items():
            _, stderr = process.communicate(timeout=TIMEOUT)
            results[name] = Outcome(process.returncode, stderr)
        yield results
    finally:
        for process in started.values():
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.mark.parametrize(
    "name", ["every field", "run", "core", "edge", "database (run)", "database (migrate)"]
)
def test_each_bad_setting_is_one_line_naming_its_variable(
    name: str, cases: dict[str, Case], outcomes: dict[str, Outcome]
) -> None:
    case, outcome = cases[name], outcomes[name]
    assert outcome.returncode == 2, outcome.stderr
    assert "Traceback" not in outcome.stderr
    assert SECRET not in outcome.stderr
    lines = outcome.stderr.splitlines()
    for variable, says in case.expected.items():
        naming = [line for line in lines if f"{variable}=" in line or f"{variable} " in line]
        assert len(naming) == 1, f"{variable}: {outcome.stderr}"
        assert says in naming[0], outcome.stderr
    if case.alone:
        assert len(lines) == len(case.expected), outcome.stderr
    else:
        # Only the start-up's own INFO lines come before it.
        assert all(" INFO " in line for line in lines[:-1]), outcome.stderr


def test_logs_below_the_level_are_left_out(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(CLI), "migrate"],
        env={**base_env(tmp_path), "COMPAT_LOG_LEVEL": "warning"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert (tmp_path / "compat.db").exists()


class Server:
    """`assistants-compat run` as a process, its stderr read on a thread."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        self.process = subprocess.Popen(
            [str(CLI), "run"],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            self.lines.put(line)

    def summary(self) -> list[str]:
        """The summary block: from its first line to its CORS line."""
        block: list[str] = []
        while not block or not block[-1].lstrip().startswith("CORS"):
            try:
                line = self.lines.get(timeout=TIMEOUT)
            except queue.Empty:
                raise AssertionError(f"no summary in {self.log}") from None
            if block or "assistants-compat run: ready" in line:
                block.append(line.rstrip("\n"))
        return block

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def db_url_with_password(tmp_path: Path) -> Iterator[str]:
    """A fresh database whose URL holds a password (trust auth accepts any on PostgreSQL)."""
    url = database_url(tmp_path / "data")
    parsed = make_url(url)
    yield (
        parsed.set(password=SECRET).render_as_string(hide_password=False)
        if parsed.drivername.startswith("postgresql")
        else url
    )
    drop_database(url)


def test_the_summary_says_what_serves_where_and_tools_come_from_the_working_directory(
    tmp_path: Path, db_url_with_password: str
) -> None:
    (tmp_path / "mytools.py").write_text(
        "def add(a: int, b: int) -> int:\n    '''Add two numbers.'''\n    return a + b\n"
    )
    env = {
        **base_env(tmp_path),
        "COMPAT_HTTP_HOST": "0.0.0.0",
        "COMPAT_DATABASE_URL": db_url_with_password,
        "COMPAT_TOOLS": "mytools:add",
        "COMPAT_API_KEYS": "k1,k2",
        "COMPAT_PROVIDER_LOCAL_BASE_URL": f"http://user:{SECRET}@127.0.0.1:9/v1",
        "COMPAT_MODEL_ALIASES": "gpt-4o-mini=local/llama",
        "COMPAT_CORS_ORIGINS": "https://app.example",
    }
    server = Server(env, tmp_path)
    try:
        block = server.summary()
        text = "\n".join(block)
        http = next(line for line in block if line.lstrip().startswith("HTTP"))
        port = int(http.split("http://0.0.0.0:")[1].split()[0])
        assert f"(all interfaces; OpenAI base URL http://127.0.0.1:{port}/v1)" in http
        listed = httpx2.get(
            f"http://127.0.0.1:{port}/v1/models",
            headers={"Authorization": "Bearer k2"},
            timeout=TIMEOUT,
        )
        assert listed.status_code == 200
    finally:
        server.stop()
    grpc = next(line for line in block if line.lstrip().startswith("gRPC"))
    assert "127.0.0.1:" in grpc
    assert "this address only" in grpc
    assert "auth       on (2 API keys)" in text
    assert "tools      add" in text
    assert "local http://user:***@127.0.0.1:9/v1" in text
    assert "aliases gpt-4o-mini=local/llama" in text
    assert "CORS       https://app.example" in text
    shown_db = make_url(db_url_with_password).render_as_string(hide_password=True)
    assert f"database   {shown_db}" in text
    assert SECRET not in "".join(server.log)
    assert "Traceback" not in "".join(server.log)


def test_the_summary_masks_the_database_password(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env file
    for key in list(os.environ):
        if key.startswith(("COMPAT_", "OPENAI_")):
            monkeypatch.delenv(key)
    settings = Settings(database_url=f"postgresql://app:{SECRET}@db.example:5432/compat")
    summary = startup_summary("core", settings, Listening(grpc_port=50051))
    assert "database   postgresql://app:***@db.example:5432/compat" in summary
    assert "gRPC       0.0.0.0:50051 (all interfaces; clients use 127.0.0.1:50051)" in summary
    assert "auth       off" in summary
    assert SECRET not in summary
    assert "HTTP" not in summary
    assert "CORS" not in summary


# The servers' own checks, for an embedding application (and for a port taken between the
# command line's checks and the bind).


async def test_an_embedded_server_on_a_busy_port_is_a_config_error(
    tmp_path: Path, busy_port: int
) -> None:
    server = create_server(database_url=sqlite_url(tmp_path), http_port=busy_port)
    with pytest.raises(ConfigError) as raised:
        await server.start()
    assert raised.value.lines == (
        f"COMPAT_HTTP_PORT={busy_port}: cannot listen on 127.0.0.1:{busy_port} (HTTP): the port "
        "is already in use by another program; stop it or set COMPAT_HTTP_PORT to a free port",
    )
    assert not server.is_running()


async def test_a_core_on_a_busy_port_stops_before_it_opens_the_database(
    tmp_path: Path, busy_port: int
) -> None:
    settings = Settings(
        database_url=sqlite_url(tmp_path), grpc_host="127.0.0.1", grpc_port=busy_port
    )
    with pytest.raises(ConfigError, match=f"^COMPAT_GRPC_PORT={busy_port}: .* already in use"):
        await CoreServer(settings).start()
    assert not (tmp_path / "compat.db").exists()


def test_an_edge_on_a_busy_port_is_a_config_error(busy_port: int) -> None:
    settings = Settings(http_host="127.0.0.1", http_port=busy_port)
    # The edge runs an event loop of its own, on the main thread (it handles signals): the
    # test's loop is put back after.
    policy = asyncio.get_event_loop_policy()
    try:
        previous: asyncio.AbstractEventLoop | None = policy.get_event_loop()
    except RuntimeError:
        previous = None
    try:
        with pytest.raises(ConfigError, match=f"^COMPAT_HTTP_PORT={busy_port}: .* already in use"):
            run_edge(settings)
    finally:
        policy.set_event_loop(previous)
