"""Child processes of the benchmark, and what /proc says about them.

The server under test, the floor servers and the upstream each run in a process of their own
(with uvloop), so that the load generator in the parent never shares an event loop or a GIL
with what it measures. A child announces itself with one JSON line on stdout (its ports), and
logs to a file of its own so that its output never mixes with the table. Every child is
stopped at the end (SIGTERM, then SIGKILL after a bound), even when a section fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

REPO_ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
PROFILE_RATE = 100
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Every process the benchmark started and has not seen exit: the last line of defence,
# `kill_leftovers`, needs them even when the event loop that owned them is gone.
_LIVE: set[int] = set()


def track(process: asyncio.subprocess.Process) -> None:
    _LIVE.add(process.pid)


def untrack(process: asyncio.subprocess.Process) -> None:
    _LIVE.discard(process.pid)


def kill_leftovers() -> None:
    """SIGKILL any process this benchmark started that is still there (synchronous).

    For the end of `main`, after the orderly stops have had their chance: an interrupted
    run must not leave servers listening.
    """
    pids = sorted(_LIVE)
    _LIVE.clear()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + STOP_TIMEOUT
    for pid in pids:
        # Reap, bounded: the loop's child watcher may have reaped it already.
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(pid, os.WNOHANG) == (0, 0) and time.monotonic() < deadline:
                time.sleep(0.01)


def raise_if_cancelled() -> None:
    """Re-raise a cancellation that a library turned into an ordinary error.

    aiohttp can surface a cancelled read as a `ClientError`, which the readers count as a
    failed request; without this, Ctrl-C would be taken for one more failure and the run
    would go on.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The parent's environment, with the repository importable and `extra` on top."""
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = f"{REPO_ROOT}{os.pathsep}{path}" if path else str(REPO_ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


@dataclass
class Child:
    """A started child process and the JSON it announced when ready."""

    name: str
    process: asyncio.subprocess.Process
    ready: dict[str, Any]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    async def stop(self) -> None:
        """SIGTERM (a graceful stop), then SIGKILL if it is still there after STOP_TIMEOUT."""
        await stop_process(self.process, signal.SIGTERM)

    def log_tail(self, lines: int = 30) -> str:
        """The end of the child's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class Children:
    """Owns every child a section starts; leaving the block stops them all.

    With a `profile_dir`, a child spawned with `profile=True` is sampled by py-spy for as
    long as it runs (`--nonblocking`: the child is never paused, so the figures stay close
    to an unprofiled run); the raw stacks go to `<profile_dir>/<label>-<name>-<pid>.txt`,
    which `python -m bench.profile` summarises.
    """

    def __init__(self, log_dir: Path, profile_dir: Path | None = None, label: str = "") -> None:
        self.log_dir = log_dir
        self.profile_dir = profile_dir
        self.label = label
        self._children: list[Child] = []
        self._profilers: list[asyncio.subprocess.Process] = []

    async def spawn(
        self,
        name: str,
        args: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        ready_within: float = READY_TIMEOUT,
        profile: bool = False,
    ) -> Child:
        """Start `python <args>` and wait (bounded) for its ready line."""
        log_path = self.log_dir / f"{name}-{len(self._children)}.log"
        log_file = log_path.open("wb")
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=log_file,
                cwd=REPO_ROOT,
                env=child_env(env),
            )
        finally:
            log_file.close()
        track(process)
        child = Child(name, process, {}, log_path)
        self._children.append(child)
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), ready_within)
        except TimeoutError:
            raise RuntimeError(
                f"{name} did not start within {ready_within:.0f} s:\n{child.log_tail()}"
            ) from None
        if not line:
            await process.wait()
            raise RuntimeError(
                f"{name} exited with {process.returncode} before it was ready:\n{child.log_tail()}"
            )
        child.ready = json.loads(line)
        if profile and self.profile_dir is not None:
            await self._attach_profiler(child, self.profile_dir)
        return child

    async def _attach_profiler(self, child: Child, profile_dir: Path) -> None:
        spy = _py_spy()
        if spy is None:
            print("bench: py-spy not found; not profiling", file=sys.stderr)
            return
        output = _prepared(profile_dir) / f"{self.label or 'section'}-{child.name}-{child.pid}.txt"
        with (self.log_dir / f"py-spy-{child.pid}.log").open("wb") as log_file:
            process = await asyncio.create_subprocess_exec(
                spy,
                "record",
                "--pid",
                str(child.pid),
                "--rate",
                str(PROFILE_RATE),
                "--format",
                "raw",
                "--threads",
                "--nonblocking",
                "--output",
                str(output),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
            )
        track(process)
        self._profilers.append(process)

    async def stop_all(self) -> None:
        # Profilers first: SIGINT makes py-spy write what it sampled.
        profilers, self._profilers = self._profilers, []
        await asyncio.gather(*(stop_process(process, signal.SIGINT) for process in profilers))
        children, self._children = self._children, []
        await asyncio.gather(*(child.stop() for child in reversed(children)))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Shielded: a cancelled section must still not leave servers behind.
        await asyncio.shield(self.stop_all())


def _py_spy() -> str | None:
    """py-spy on PATH, else beside this interpreter (installed into the venv), else None."""
    found = shutil.which("py-spy")
    if found:
        return found
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else None


def _prepared(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return directory


async def stop_process(
    process: asyncio.subprocess.Process, sig: signal.Signals = signal.SIGTERM
) -> None:
    """Send `sig`, wait up to STOP_TIMEOUT for the exit, then SIGKILL."""
    try:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    finally:
        # Still tracked if the wait was cut short: `kill_leftovers` then finishes the job.
        if process.returncode is not None:
            untrack(process)


# What /proc says about a process.


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (all its threads)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    # utime and stime are fields 14 and 15; `fields` starts at field 3.
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident set (VmHWM) since it started."""
    return _status_kib(pid, "VmHWM") * 1024


def rss_bytes(pid: int) -> int:
    """The process's resident set (VmRSS) now."""
    return _status_kib(pid, "VmRSS") * 1024


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago (for servers that need one up front)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The child's side.


def announce(payload: dict[str, Any]) -> None:
    """Tell the parent the child is ready: one JSON line on stdout."""
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


async def until_signalled() -> None:
    """Wait for SIGTERM or SIGINT (the parent's stop, or Ctrl-C in the terminal)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def run_with_uvloop(main: Callable[[], Awaitable[None]]) -> None:
    """Run `main` on uvloop, as the server runs in production."""
    import uvloop

    async def wrapped() -> None:
        await main()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(wrapped())
