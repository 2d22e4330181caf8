"""Section 5, start-up: `python -m compat_core run` until `/health` answers 200.

Timed from spawning the process to the first 200 from `/health`, polled every few
milliseconds on fresh connections. Ours starts as an operator starts it (the real command,
configured by environment, in a scratch working directory so that no `.env` is read), once on
a fresh SQLite file (migrations included) and once more on that same file (a restart).
Baselines, timed the same way in the same repetitions: `python -c pass` (the interpreter
alone, to exit) and a bare aiohttp app on uvloop answering `/health`. Medians of the
repetitions; stopping (SIGTERM to exit) is reported too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import aiohttp

from bench.config import Context
from bench.procs import free_port, raise_if_cancelled, stop_process, track
from bench.report import Row, ms, ratio

SECTION: Final = "5 start-up"
START_TIMEOUT: Final = 60.0
POLL_SECONDS: Final = 0.003

BARE_APP: Final = """
import sys
import uvloop
from aiohttp import web

async def health(request):
    return web.json_response({"status": "ok"})

app = web.Application()
app.router.add_get("/health", health)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None,
            loop=uvloop.new_event_loop())
"""


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment without inherited `COMPAT_*` settings, plus `extra`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("COMPAT_")}
    env.update(extra)
    return env


async def _stop(process: asyncio.subprocess.Process) -> float:
    """SIGTERM and wait for the exit (SIGKILL past the bound); seconds it took."""
    started = time.perf_counter()
    await stop_process(process, signal.SIGTERM)
    return time.perf_counter() - started


async def _until_healthy(
    args: Sequence[str], env: dict[str, str], cwd: Path, port: int, log: Path
) -> tuple[float, float]:
    """(seconds from spawn to the first /health 200, seconds to stop)."""
    url = f"http://127.0.0.1:{port}/health"
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=2.0)
    ) as session:
        with log.open("ab") as log_file:
            started = time.perf_counter()
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                cwd=cwd,
                env=env,
            )
        track(process)
        try:
            async with asyncio.timeout(START_TIMEOUT):
                while True:
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                        async with session.get(url) as response:
                            if response.status == 200:
                                elapsed = time.perf_counter() - started
                                break
                    if process.returncode is not None:
                        raise RuntimeError(
                            f"{args[:2]} exited with {process.returncode}; see {log}"
                        )
                    await asyncio.sleep(POLL_SECONDS)
        finally:
            stopped = await _stop(process)
    return elapsed, stopped


async def _python_pass(env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "pass", cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL
    )
    track(process)
    try:
        await asyncio.wait_for(process.wait(), START_TIMEOUT)
    finally:
        await stop_process(process)
    return time.perf_counter() - started


def _ours_env(directory: Path) -> dict[str, str]:
    return _clean_env(
        {
            "COMPAT_HTTP_HOST": "127.0.0.1",
            "COMPAT_HTTP_PORT": str(free_port()),
            "COMPAT_GRPC_HOST": "127.0.0.1",
            "COMPAT_GRPC_PORT": str(free_port()),
            "COMPAT_DATABASE_URL": f"sqlite:///{directory / 'compat.db'}",
        }
    )


async def run(ctx: Context) -> list[Row]:
    reps = ctx.config.startup_reps
    base = ctx.work_dir / "startup"
    base.mkdir(parents=True, exist_ok=True)
    log = base / "startup.log"
    plain = _clean_env({})
    passes: list[float] = []
    bare: list[float] = []
    bare_stop: list[float] = []
    fresh: list[float] = []
    restart: list[float] = []
    ours_stop: list[float] = []
    for rep in range(reps):
        raise_if_cancelled()
        directory = base / f"rep{rep}"
        directory.mkdir()
        passes.append(await _python_pass(plain, directory))
        port = free_port()
        started, stopped = await _until_healthy(
            ["-c", BARE_APP, str(port)], plain, directory, port, log
        )
        bare.append(started)
        bare_stop.append(stopped)
        env = _ours_env(directory)
        port = int(env["COMPAT_HTTP_PORT"])
        command = ["-m", "compat_core", "run"]
        started, stopped = await _until_healthy(command, env, directory, port, log)
        fresh.append(started)
        ours_stop.append(stopped)
        started, stopped = await _until_healthy(command, env, directory, port, log)
        restart.append(started)
        ours_stop.append(stopped)
    med = statistics.median
    note = f"median of {reps}"
    return [
        Row(
            SECTION,
            f"start to /health 200, fresh database ({note})",
            ms(med(fresh)),
            ms(med(bare)) + " (bare aiohttp)",
            ratio(med(fresh), med(bare)),
        ),
        Row(
            SECTION,
            f"start to /health 200, fresh database ({note})",
            ms(med(fresh)),
            ms(med(passes)) + " (python -c pass)",
            ratio(med(fresh), med(passes)),
        ),
        Row(
            SECTION,
            f"start to /health 200, existing database ({note})",
            ms(med(restart)),
            ms(med(bare)) + " (bare aiohttp)",
            ratio(med(restart), med(bare)),
        ),
        Row(
            SECTION,
            f"stop, SIGTERM to exit, idle ({note})",
            ms(med(ours_stop)),
            ms(med(bare_stop)) + " (bare aiohttp)",
            ratio(med(ours_stop), med(bare_stop)),
        ),
    ]
