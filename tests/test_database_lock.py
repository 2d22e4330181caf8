"""A SQLite database serves one server: a second one on the same file is refused, clearly.

Real processes (`assistants-compat run`, `core`, `migrate`) on one SQLite file; the claim is
an OS lock, so a server killed with SIGKILL leaves nothing that stops the next one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness.processes import Process
from harness.server import ServerThread, sqlite_url

from compat_core.store import DatabaseInUse

pytestmark = pytest.mark.skipif(
    os.environ.get("COMPAT_TEST_POSTGRES_URL", "") != "",
    reason="SQLite files only: on PostgreSQL several cores share a database by design",
)

WAIT = 60.0
LISTENING = r"assistants-compat run: ready"


def _env(tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("COMPAT_", "OPENAI_"))}
    return {
        **base,
        "COMPAT_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'compat.db'}",
        "COMPAT_HTTP_HOST": "127.0.0.1",
        "COMPAT_HTTP_PORT": "0",
        "COMPAT_GRPC_HOST": "127.0.0.1",
        "COMPAT_GRPC_PORT": "0",
        "COMPAT_METRICS_PORT": "0",
    }


def _run_to_exit(command: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from compat_core.cli import main; main()", command],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=WAIT,
    )


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()


@pytest.mark.parametrize("second", ["run", "core", "migrate"])
def test_a_second_server_on_the_file_is_refused_in_one_line(
    tmp_path: Path, processes: list[Process], second: str
) -> None:
    env = _env(tmp_path)
    first = Process("run", env, tmp_path)
    processes.append(first)
    first.wait_for(LISTENING)

    refused = _run_to_exit(second, env, tmp_path)
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    database = (tmp_path / "data" / "compat.db").resolve()
    assert f"the SQLite database {database} is in use by another server" in lines[0]
    assert f"(process {first.popen.pid})" in lines[0]
    assert first.popen.poll() is None, "the first server must go on serving"


def test_after_a_sigkill_the_next_server_starts(tmp_path: Path, processes: list[Process]) -> None:
    env = _env(tmp_path)
    crashed = Process("core", env, tmp_path)
    processes.append(crashed)
    crashed.wait_for(r"core serving gRPC")
    crashed.kill()

    restarted = Process("run", env, tmp_path)
    processes.append(restarted)
    restarted.wait_for(LISTENING)
    restarted.stop()
    migrated = _run_to_exit("migrate", env, tmp_path)
    assert migrated.returncode == 0, migrated.stderr


def test_an_embedded_server_claims_its_file_until_it_stops(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    with ServerThread(database_url=url) as first:
        second = ServerThread(database_url=url)
        with pytest.raises(DatabaseInUse) as refused:
            second.start()
        assert str(tmp_path.resolve() / "compat.db") in str(refused.value)
        first.restart()
        assert first.is_running()
    # Stopped: the file is free for the next server (a restart in another process, say).
    with ServerThread(database_url=url) as third:
        assert third.is_running()
