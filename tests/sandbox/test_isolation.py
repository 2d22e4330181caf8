"""What a session cannot reach: the network, the host's files, other sessions, anything to
write outside /mnt/data."""

from __future__ import annotations

import ast
import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from compat_core.sandbox.base import MNT_DATA
from compat_core.sandbox.bubblewrap import BubblewrapSandbox

from .conftest import OpenSession
from .procs import uid_of

# All a session's / may hold: the system's links and directories, and the sandbox's own.
SANDBOX_ROOT = {"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "dev", "proc"} | {
    "tmp",
    "opt",
    "run",
    "mnt",
}


@pytest.fixture
def listening_port() -> Iterator[int]:
    """A TCP port the host listens on at 127.0.0.1 (as the server's and PostgreSQL's do)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


async def test_loopback_of_the_host_is_out_of_reach(
    open_session: OpenSession, listening_port: int
) -> None:
    # The host can connect: the port is really there.
    with socket.create_connection(("127.0.0.1", listening_port), timeout=2):
        pass
    session = await open_session()
    result = await session.execute(
        "import socket\n"
        f"for port in ({listening_port}, 5432):\n"
        "    try:\n"
        "        socket.create_connection(('127.0.0.1', port), timeout=2).close()\n"
        "        print('connected', port)\n"
        "    except OSError as exc:\n"
        "        print('refused', port, type(exc).__name__)\n"
    )
    assert result.logs == (
        f"refused {listening_port} ConnectionRefusedError\nrefused 5432 ConnectionRefusedError\n"
    )


async def test_no_route_out_and_no_dns(open_session: OpenSession) -> None:
    session = await open_session()
    result = await session.execute(
        "import socket\n"
        "try:\n"
        "    socket.getaddrinfo('example.com', 443)\n"
        "    print('resolved')\n"
        "except socket.gaierror:\n"
        "    print('no dns')\n"
        "try:\n"
        "    socket.create_connection(('1.1.1.1', 53), timeout=2)\n"
        "    print('connected')\n"
        "except OSError as exc:\n"
        "    print('no route', exc.errno)\n"
        "import os\n"
        "print(sorted(os.listdir('/sys/class/net')) if os.path.isdir('/sys/class/net') "
        "else 'no /sys')\n"
    )
    lines = result.logs.splitlines()
    assert lines[0] == "no dns"
    assert lines[1].startswith("no route")
    assert lines[2] == "no /sys"


async def test_host_files_are_not_visible(open_session: OpenSession, data_root: Path) -> None:
    # A server-like data directory beside the session's, with a marker in it.
    server_data = data_root / "server-data"
    server_data.mkdir()
    (server_data / "compat.db").write_text("secret")
    session = await open_session()
    probes = [
        str(server_data / "compat.db"),
        str(server_data),
        str(data_root),
        "/root",
        "/home",
        "/work",
        "/etc/shadow",
        "/etc/hostname",
        "/var",
        "/proc/1/root/etc/shadow",
    ]
    result = await session.execute(
        "import os\n"
        f"for path in {probes!r}:\n"
        "    print(path, os.path.exists(path))\n"
        "print(sorted(os.listdir('/')))\n"
        "print(sorted(os.listdir('/proc'))[:0], len([p for p in os.listdir('/proc') "
        "if p.isdigit()]) < 10)\n"
    )
    lines = result.logs.splitlines()
    assert lines[: len(probes)] == [f"{path} False" for path in probes]
    assert set(ast.literal_eval(lines[len(probes)])) <= SANDBOX_ROOT
    # Only the sandbox's own few processes in its /proc.
    assert lines[len(probes) + 1] == "[] True"


async def test_writes_outside_mnt_data_fail(open_session: OpenSession) -> None:
    session = await open_session()
    targets = ["/x", "/usr/x", "/etc/x", "/opt/site/x", "/opt/python/x", "/run/x", "/mnt/x"]
    targets += ["/dev/x", "/proc/x"]
    if os.geteuid() == 0:
        targets.append("/run/kernel/x")  # the sockets' directory, the session's no more
    result = await session.execute(
        f"for path in {targets!r}:\n"
        "    try:\n"
        "        open(path, 'w').write('x')\n"
        "        print(path, 'written')\n"
        "    except OSError as exc:\n"
        "        print(path, 'refused')\n"
        f"open('{MNT_DATA}/ok', 'w').write('ok')\n"
        "open('/tmp/scratch', 'w').write('ok')\n"
        "print('done')\n"
    )
    assert result.logs.splitlines() == [f"{path} refused" for path in targets] + ["done"]
    assert (session.data_dir / "ok").read_text() == "ok"


async def test_another_sessions_files_are_not_visible(
    open_session: OpenSession, data_root: Path
) -> None:
    first = await open_session()
    second = await open_session()
    await second.execute(f"open('{MNT_DATA}/mine.txt', 'w').write('second')")
    assert (second.data_dir / "mine.txt").exists()
    result = await first.execute(
        "import os\n"
        f"print(os.listdir('{MNT_DATA}'))\n"
        f"print(os.path.exists({str(second.data_dir / 'mine.txt')!r}))\n"
    )
    assert result.logs == "[]\nFalse\n"


async def test_ten_sessions_at_once_stay_apart(open_session: OpenSession) -> None:
    sessions = await asyncio.gather(*(open_session() for _ in range(10)))
    if os.geteuid() == 0:
        assert len({uid_of(session) for session in sessions}) == 10
    await asyncio.gather(
        *(
            session.execute(f"me = {index}\nopen('{MNT_DATA}/me', 'w').write(str(me))")
            for index, session in enumerate(sessions)
        )
    )
    results = await asyncio.gather(
        *(
            session.execute(
                f"import os\nprint(me, open('{MNT_DATA}/me').read(), os.listdir('{MNT_DATA}'))"
            )
            for session in sessions
        )
    )
    assert [result.logs for result in results] == [
        f"{index} {index} ['me']\n" for index in range(10)
    ]
    assert [(session.data_dir / "me").read_text() for session in sessions] == [
        str(index) for index in range(10)
    ]


async def test_memory_backed_directories_are_bounded(
    sandbox: BubblewrapSandbox, open_session: OpenSession
) -> None:
    """/tmp and /dev/shm live in memory that no process limit counts: each has a size."""
    session = await open_session()
    # In files of 8 MiB, under the file size limit, to 1 MiB past the directory's size.
    files = sandbox.tmp_bytes // (8 * 1024**2) + 1
    result = await session.execute(
        "for directory in ('/tmp', '/dev/shm'):\n"
        "    try:\n"
        f"        for index in range({files}):\n"
        "            open(f'{directory}/{index}', 'wb').write(b'x' * 8 * 1024**2)\n"
        "        print(directory, 'written')\n"
        "    except OSError as exc:\n"
        "        print(directory, exc.strerror)\n"
    )
    assert result.logs == "/tmp No space left on device\n/dev/shm No space left on device\n"


async def test_the_hosts_abstract_unix_sockets_are_out_of_reach(open_session: OpenSession) -> None:
    """Abstract unix sockets (no file; D-Bus, X11 and others listen on them) belong to a
    network namespace."""
    name = f"\0compat-sandbox-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(name)
        server.listen()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(name)  # there for the host
        session = await open_session()
        result = await session.execute(
            "import socket\n"
            "with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:\n"
            "    try:\n"
            f"        client.connect({name!r})\n"
            "        print('connected')\n"
            "    except OSError as exc:\n"
            "        print(type(exc).__name__)\n"
        )
    assert result.logs == "ConnectionRefusedError\n"
