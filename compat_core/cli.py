"""`assistants-compat run | core | edge | migrate`: the server's command line.

`run` is the embedded default (core and edge in one process); `core` and `edge` start one
half alone for deployments with many edges and core replicas; `migrate` applies the store's
migrations and exits, for operators who migrate before rolling out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from compat_core.config import Settings
from compat_core.embedded import CompatServer
from compat_core.heap import freeze_startup_heap
from compat_core.server import CoreServer
from compat_core.store import DatabaseInUse, create_store

log = logging.getLogger("assistants_compat")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="assistants-compat", description=__doc__)
    parser.add_argument(
        "command",
        choices=("run", "core", "edge", "migrate"),
        help="run: core and edge in one process; core / edge: one half; migrate: and exit",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = Settings()
        settings.providers()
    except ValueError as exc:
        sys.exit(f"configuration error: {exc}")

    if args.command == "edge":
        from http_edge.app import run_edge

        run_edge(settings)
        return
    commands: dict[str, Callable[[Settings], Coroutine[Any, Any, None]]] = {
        "run": _run_all,
        "core": _run_core,
        "migrate": _migrate,
    }
    _install_uvloop()
    try:
        asyncio.run(commands[args.command](settings))
    except DatabaseInUse as exc:
        sys.exit(f"assistants-compat {args.command}: {exc}")


async def _run_all(settings: Settings) -> None:
    server = CompatServer(settings)
    await server.start()
    freeze_startup_heap()
    log.info(
        "assistants-compat listening: HTTP %s (OpenAI base URL %s), gRPC %s",
        server.get_url(),
        server.get_base_url(),
        server.get_grpc_target(),
    )
    await _until_signalled()
    log.info("shutting down: finishing in-flight requests")
    await server.stop()


async def _run_core(settings: Settings) -> None:
    core = CoreServer(settings)
    await core.start()
    freeze_startup_heap()
    await _until_signalled()
    log.info("shutting down: finishing in-flight calls")
    await core.stop()


async def _migrate(settings: Settings) -> None:
    # Exclusive: a server running on a SQLite file would find its schema changed under it.
    store = create_store(settings.database_url, exclusive=True)
    await store.open()
    await store.close()
    log.info("migrations applied to %s", settings.database_url.split("@")[-1])


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def _install_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


if __name__ == "__main__":
    main()
