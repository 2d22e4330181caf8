"""Code that would take the host down is stopped with a clear word, and the host goes on:
endless loops (Python's and C's, also deaf to interrupts), fork and memory bombs, a flood of
output, a huge file; cancelling a call kills everything it started."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
import time

import pytest

from compat_core.sandbox.base import MNT_DATA, Session
from compat_core.sandbox.kernel import KernelSession

from .conftest import GRACE, SMALL, OpenSession
from .procs import tasks_of_uid, uid_of, wait_until_no_tasks

FAST = dataclasses.replace(SMALL, call_seconds=1.5)
as_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="sessions have host uids of their own only when the server is root"
)


async def _works(session: Session) -> None:
    result = await session.execute("print(6 * 7)")
    assert result.logs == "42\n"
    assert result.stopped is None


async def test_an_endless_loop_is_interrupted_and_the_state_kept(
    open_session: OpenSession,
) -> None:
    session = await open_session(FAST)
    await session.execute("kept = 'yes'")
    started = time.monotonic()
    result = await session.execute("print('looping', flush=True)\nwhile True:\n    pass")
    assert time.monotonic() - started < FAST.call_seconds + GRACE
    assert result.stopped is not None
    assert "1.5 s limit" in result.stopped
    assert result.logs.startswith("looping\n")
    assert result.logs.endswith(result.stopped + "\n")
    assert not result.lost_state
    assert session.alive
    after = await session.execute("print(kept)")
    assert after.logs == "yes\n"


@pytest.mark.parametrize(
    "code",
    [
        "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass",
        # Catastrophic backtracking: one call into C that no interrupt reaches.
        "import re\nre.fullmatch(r'(a+)+$', 'a' * 64 + 'b')",
    ],
    ids=["ignores-sigint", "loop-in-c"],
)
async def test_a_loop_deaf_to_interrupts_ends_the_session(
    open_session: OpenSession, code: str
) -> None:
    session = await open_session(FAST)
    uid = uid_of(session)
    started = time.monotonic()
    result = await session.execute(code)
    assert time.monotonic() - started < FAST.call_seconds + GRACE + 2
    assert result.lost_state
    assert result.stopped is not None
    assert "state is lost" in result.stopped
    assert not session.alive
    if os.geteuid() == 0:
        assert wait_until_no_tasks(uid) == 0
    await _works(await open_session(FAST))


class _PeakTasks:
    """The most tasks the host ran as one uid, sampled while a call runs."""

    def __init__(self, uid: int) -> None:
        self.uid = uid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tasks_of_uid(self.uid))
            self._stop.wait(0.02)

    def __enter__(self) -> _PeakTasks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@as_root
async def test_a_fork_bomb_is_bounded_by_the_process_limit(open_session: OpenSession) -> None:
    session = await open_session(FAST)
    uid = uid_of(session)
    with _PeakTasks(uid) as tasks:
        result = await session.execute(
            "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
        )
    assert result.stopped is not None
    # The limit counts the session's tasks inside its namespace; bubblewrap's own two
    # processes outside it are the session's uid too.
    assert 0 < tasks.peak <= FAST.processes + 2
    await session.close()
    assert wait_until_no_tasks(uid) == 0
    await _works(await open_session(FAST))


async def test_a_memory_bomb_fails_inside_the_session(open_session: OpenSession) -> None:
    session = await open_session(SMALL)
    at_once = await session.execute("x = bytearray(8 * 1024**3)")
    assert at_once.error
    assert "MemoryError" in at_once.logs
    growing = await session.execute(
        "chunks = []\nwhile True:\n    chunks.append(bytearray(64 * 1024**2))"
    )
    assert "MemoryError" in growing.logs
    numpy = await session.execute("import numpy as np\nnp.ones((1 << 34,))")
    assert "Unable to allocate" in numpy.logs
    await session.execute("del chunks")
    await _works(session)


async def test_a_flood_of_output_is_cut_at_the_limit(open_session: OpenSession) -> None:
    session = await open_session(SMALL)
    started = time.monotonic()
    result = await session.execute("for _ in range(10**6):\n    print('x' * 1000)")
    assert time.monotonic() - started < SMALL.call_seconds
    assert result.stopped is not None
    assert f"limit of {SMALL.output_bytes} bytes" in result.stopped
    assert len(result.logs.encode()) <= SMALL.output_bytes + len(result.stopped) + 2
    assert result.logs.startswith("x" * 1000 + "\n")
    await _works(session)


async def test_one_huge_print_is_cut_at_the_limit(open_session: OpenSession) -> None:
    session = await open_session(SMALL)
    result = await session.execute("print('y' * 200_000_000)")
    assert result.stopped is not None or result.error
    assert len(result.logs.encode()) <= SMALL.output_bytes + 400
    await _works(await open_session(SMALL))


async def test_files_stop_at_the_file_size_limit(open_session: OpenSession) -> None:
    session = await open_session(SMALL)
    result = await session.execute(
        f"with open('{MNT_DATA}/big', 'wb') as out:\n    out.write(b'z' * {SMALL.file_bytes * 2})"
    )
    assert result.error
    assert "File too large" in result.logs
    assert (session.data_dir / "big").stat().st_size <= SMALL.file_bytes
    await _works(session)


async def test_cancelling_a_call_kills_everything_it_started(open_session: OpenSession) -> None:
    session = await open_session(SMALL)
    assert isinstance(session, KernelSession)
    uid = uid_of(session)
    call = asyncio.create_task(
        session.execute(
            "import subprocess, time\n"
            "child = subprocess.Popen(['sleep', '1000'])\n"
            "print('started', flush=True)\n"
            "time.sleep(1000)"
        )
    )
    for _ in range(200):  # up to 10 s for the kernel to start its child
        if _runs_sleep(session.process.pid):
            break
        await asyncio.sleep(0.05)
    assert _runs_sleep(session.process.pid)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert not session.alive
    assert session.process.returncode is not None
    assert not _runs_sleep(session.process.pid)
    if os.geteuid() == 0:
        assert wait_until_no_tasks(uid) == 0


def _runs_sleep(root_pid: int) -> bool:
    """Whether a `sleep` process descends from `root_pid`."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read()
        except OSError:
            continue
        name = fields[fields.index("(") + 1 : fields.rindex(")")]
        parent = int(fields[fields.rindex(")") + 2 :].split()[1])
        parents[int(entry)] = parent
        names[int(entry)] = name
    for pid, name in names.items():
        if name != "sleep":
            continue
        while pid in parents and pid != root_pid:
            pid = parents[pid]
        if pid == root_pid:
            return True
    return False


async def test_the_host_cuts_output_the_kernel_does_not(open_session: OpenSession) -> None:
    """The kernel's own cap is a courtesy: code can take it off, and the host still stops
    the call at the limit."""
    session = await open_session(SMALL)
    started = time.monotonic()
    result = await session.execute(
        "import sys\nwrite = type(sys.stdout).__mro__[1].write\n"
        "for _ in range(10**6):\n    write(sys.stdout, 'x' * 1000 + '\\n')"
    )
    assert time.monotonic() - started < SMALL.call_seconds
    assert result.stopped is not None
    # Cut when the output passed the limit, or, when the kernel sent it in one message over
    # the size cap (which the host drops unread), with the session.
    assert "output" in result.stopped
    assert len(result.logs.encode()) <= SMALL.output_bytes + len(result.stopped) + 2
    follow_up = await (session if session.alive else await open_session(SMALL)).execute("1")
    assert follow_up.logs == "1\n"


async def test_a_kernel_dying_mid_call_is_reported_and_replaced(
    open_session: OpenSession,
) -> None:
    session = await open_session(SMALL)
    started = time.monotonic()
    result = await session.execute(
        "print('going', flush=True)\nimport os, signal, time\ntime.sleep(0.2)\n"
        "os.kill(os.getpid(), signal.SIGKILL)"
    )
    assert time.monotonic() - started < SMALL.call_seconds
    assert result.lost_state
    assert result.stopped is not None
    assert "ended unexpectedly" in result.stopped
    assert result.logs.startswith("going\n")
    assert not session.alive
    after = await session.execute("1")
    assert after.lost_state
    await _works(await open_session(SMALL))
