"""Section 8, the code_interpreter sandbox: what bubblewrap, seccomp and the limits cost.

Each figure is the sandboxed one beside the same thing without the sandbox, measured in the
same run: the same interpreter and libraries (the `.sandbox` environment), the same kernel
and client, only started as a bare subprocess of the host instead of inside bubblewrap.

- cold start: from asking for a session to its kernel answering, and closing it (median of a
  few);
- warm calls: `1 + 1` (the round trip through the kernel) and a CPU-bound call (seccomp's
  filter runs on every system call, so this shows what it costs when the code computes);
- one-shot: `python -c` importing numpy and pandas, in a fresh sandbox and in a bare
  subprocess (what the sandbox adds to a process start, without the kernel).

Where the machine cannot run the sandbox, the rows say why.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import os
import secrets
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

from bench.config import Context
from bench.report import Row, ms, ratio
from compat_core.sandbox import seccomp
from compat_core.sandbox.base import Limits, SandboxUnavailable, Session
from compat_core.sandbox.bubblewrap import (
    KERNEL_SIDE,
    BubblewrapSandbox,
    bwrap_args,
    connection_info,
)
from compat_core.sandbox.kernel import KernelSession

SECTION: Final = "8 sandbox"
LIMITS: Final = Limits(call_seconds=120.0)
CPU_BOUND: Final = "sum(i * i for i in range(3_000_000))"
ONE_SHOT: Final = "import numpy, pandas; print(pandas.DataFrame({'a': numpy.arange(3)}).sum().a)"


async def _bare_session(sandbox: BubblewrapSandbox, data_dir: Path) -> Session:
    """The sandbox's kernel, started the same way but as a bare subprocess of the host."""
    environment = sandbox.environment
    runtime = Path(tempfile.mkdtemp(prefix="bare-"))
    key = secrets.token_hex(32)
    (runtime / "kernel.json").write_text(json.dumps(connection_info(key, str(runtime / "k"))))
    python = environment.python_home / "bin" / environment.interpreter
    process = await asyncio.create_subprocess_exec(
        str(python),
        str(KERNEL_SIDE / "launch.py"),
        str(LIMITS.memory_bytes),
        str(LIMITS.processes * 64),
        str(LIMITS.file_bytes),
        str(LIMITS.output_bytes),
        str(runtime / "kernel.json"),
        cwd=data_dir,
        env={
            "HOME": str(runtime),
            "PATH": "/usr/bin:/bin",
            "LD_LIBRARY_PATH": str(environment.python_home / "lib"),
            "PYTHONPATH": f"{environment.site}:{KERNEL_SIDE.parent}",
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "MPLCONFIGDIR": str(runtime / "matplotlib"),
            "IPYTHONDIR": str(runtime / "ipython"),
            "OPENBLAS_NUM_THREADS": "1",
        },
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    session = KernelSession(
        data_dir=data_dir,
        limits=LIMITS,
        process=process,
        connection=connection_info(key, str(runtime / "k")),
        runtime_dir=runtime,
        on_closed=lambda: None,
    )
    await session.start(60.0)
    return session


async def _paired_medians(
    times: int, ours: Callable[[], Awaitable[object]], baseline: Callable[[], Awaitable[object]]
) -> tuple[float, float]:
    """Median seconds of each, run alternately so that the machine's load drifts over both
    alike (it is shared)."""
    taken: tuple[list[float], list[float]] = ([], [])
    for _ in range(times):
        for run, into in ((ours, taken[0]), (baseline, taken[1])):
            started = time.perf_counter()
            await run()
            into.append(time.perf_counter() - started)
    return statistics.median(taken[0]), statistics.median(taken[1])


def _cold_start(
    open_session: Callable[[Path], Awaitable[Session]], data_root: Path
) -> Callable[[], Awaitable[None]]:
    """Opening a session (what is timed) and closing it."""
    count = itertools.count()

    async def once() -> None:
        data_dir = data_root / f"cold-{next(count)}-{secrets.token_hex(4)}"
        data_dir.mkdir()
        session = await open_session(data_dir)
        # Closing is outside what a caller waits for, but timed here too: it is small.
        await session.close()

    return once


async def _one_shot(command: list[str], pass_fds: tuple[int, ...] = ()) -> None:
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        pass_fds=pass_fds,
    )
    out, err = await process.communicate()
    if process.returncode != 0 or out.strip() != b"3":
        raise RuntimeError(f"one-shot run failed: {err.decode()[-300:]}")


async def _one_shot_sandboxed(sandbox: BubblewrapSandbox, data_dir: Path) -> None:
    """The same code in a fresh sandbox, as the server's uid (no kernel)."""
    fds = {
        "seccomp_fd": seccomp.pipe_with_program(),
        "passwd_fd": _pipe(b"sandbox:x:1000:1000::/tmp:/usr/sbin/nologin\n"),
        "group_fd": _pipe(b"sandbox:x:1000:\n"),
    }
    runtime = Path(tempfile.mkdtemp(prefix="oneshot-"))
    try:
        args = bwrap_args(
            sandbox.environment, data_dir, runtime, tmp_bytes=sandbox.tmp_bytes, **fds
        )
        python = f"/opt/python/bin/{sandbox.environment.interpreter}"
        await _one_shot(
            [shutil.which(sandbox.bwrap) or sandbox.bwrap, *args, "--", python, "-c", ONE_SHOT],
            pass_fds=tuple(fds.values()),
        )
    finally:
        for fd in fds.values():
            os.close(fd)
        shutil.rmtree(runtime, ignore_errors=True)


def _pipe(data: bytes) -> int:
    read_end, write_end = os.pipe()
    os.write(write_end, data)
    os.close(write_end)
    return read_end


async def run(ctx: Context) -> list[Row]:
    sandbox = BubblewrapSandbox()
    try:
        sandbox.check()
    except SandboxUnavailable as exc:
        return [Row(SECTION, "sandbox", "n/a", str(exc)[:200])]
    quick = ctx.config.quick
    starts, calls = (3, 20) if quick else (10, 200)
    # Sessions run as other uids when this runs as root: their data must be reachable.
    data_root = Path(tempfile.mkdtemp(prefix="bench-sandbox-"))
    os.chmod(data_root, 0o711)
    try:
        return await _measure(sandbox, data_root, starts, calls)
    finally:
        shutil.rmtree(data_root, ignore_errors=True)


async def _measure(
    sandbox: BubblewrapSandbox, data_root: Path, starts: int, calls: int
) -> list[Row]:
    async def sandboxed(data_dir: Path) -> Session:
        return await sandbox.open(data_dir, LIMITS)

    async def bare(data_dir: Path) -> Session:
        return await _bare_session(sandbox, data_dir)

    cold, cold_bare = await _paired_medians(
        starts, _cold_start(sandboxed, data_root), _cold_start(bare, data_root)
    )
    rows = [
        Row(
            SECTION,
            "session cold start (to the kernel's first answer) and close, median",
            ms(cold),
            ms(cold_bare) + " bare subprocess",
            ratio(cold, cold_bare),
        )
    ]
    (data_root / "warm").mkdir()
    (data_root / "warm-bare").mkdir()
    inside = await sandbox.open(data_root / "warm", LIMITS)
    outside = await _bare_session(sandbox, data_root / "warm-bare")
    try:
        for label, code, times in (
            ("warm call `1 + 1`, median", "1 + 1", calls),
            (f"warm call CPU-bound `{CPU_BOUND}`, median", CPU_BOUND, max(3, calls // 20)),
        ):
            await inside.execute(code)
            await outside.execute(code)
            ours, base = await _paired_medians(
                times,
                functools.partial(inside.execute, code),
                functools.partial(outside.execute, code),
            )
            rows.append(Row(SECTION, label, ms(ours), ms(base) + " bare", ratio(ours, base)))
    finally:
        await inside.close()
        await outside.close()
    environment = sandbox.environment
    bare_command = [
        "env",
        f"PYTHONPATH={environment.site}",
        f"LD_LIBRARY_PATH={environment.python_home / 'lib'}",
        str(environment.python_home / "bin" / environment.interpreter),
        "-c",
        ONE_SHOT,
    ]
    one_dir = data_root / "one-shot"
    one_dir.mkdir()
    shot, shot_bare = await _paired_medians(
        max(3, starts),
        functools.partial(_one_shot_sandboxed, sandbox, one_dir),
        functools.partial(_one_shot, bare_command),
    )
    rows.append(
        Row(
            SECTION,
            "one-shot `python -c` (numpy + pandas), median",
            ms(shot),
            ms(shot_bare) + " bare subprocess",
            ratio(shot, shot_bare),
        )
    )
    return rows
