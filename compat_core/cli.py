"""`assistants-compat run | core | edge | migrate | keys`: the server's command line.

`run` is the embedded default (core and edge in one process); `core` and `edge` start one
half alone for deployments with many edges and core replicas; `migrate` applies the store's
migrations and exits, for operators who migrate before rolling out; `keys create` makes a
project's API key (`cli_keys`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from compat_core import cli_keys
from compat_core.config import ConfigError, Settings, load_settings, mask_password
from compat_core.embedded import CompatServer
from compat_core.heap import freeze_startup_heap
from compat_core.logs import configure_logging
from compat_core.models import ModelRegistry
from compat_core.server import CoreServer
from compat_core.signals import until_signalled
from compat_core.startup import (
    check_files_dir,
    check_listenable,
    database_errors,
    listen_errors,
)
from compat_core.store import DatabaseInUse, create_store
from compat_core.summary import Listening, startup_summary
from compat_core.tools import load_tools, registry

log = logging.getLogger("assistants_compat")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="assistants-compat", description=__doc__)
    parser.add_argument(
        "command",
        choices=("run", "core", "edge", "migrate", "keys"),
        help="run: core and edge in one process; core / edge: one half; migrate: and exit; "
        "keys create --project NAME_OR_ID [--name NAME]: a project's API key",
    )
    args, rest = parser.parse_known_args(argv)
    keys_args = cli_keys.parser().parse_args(rest) if args.command == "keys" else None
    if keys_args is None and rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        settings = load_settings()
    except ConfigError as exc:
        # Logging is not set up yet: its own settings may be the bad ones.
        for line in exc.lines:
            print(f"assistants-compat: {line}", file=sys.stderr)
        sys.exit(2)
    configure_logging(settings.log_level, settings.log_format)
    try:
        _preflight(args.command, settings)
        if args.command == "edge":
            from http_edge.app import run_edge

            run_edge(settings, functools.partial(_announce_edge, settings))
            return
        if keys_args is not None:
            asyncio.run(cli_keys.run(settings, keys_args))
            return
        commands: dict[str, Callable[[Settings], Coroutine[Any, Any, None]]] = {
            "run": _run_all,
            "core": _run_core,
            "migrate": _migrate,
        }
        _install_uvloop()
        asyncio.run(commands[args.command](settings))
    except ConfigError as exc:
        # A setting the server could not start with (a port in use, an unreachable
        # database, a tool that does not import): one line each, no traceback.
        for line in exc.lines:
            log.error("%s", line)
        sys.exit(2)
    except DatabaseInUse as exc:
        log.error("assistants-compat %s: %s", args.command, exc)
        sys.exit(1)


def _preflight(command: str, settings: Settings) -> None:
    """Every start-up check that needs no database, all reported together: the models, the
    tools, the files directory and the ports. The servers check these again as they start
    (they are embedded too, and a port may be taken meanwhile); this is for the person at
    the terminal, who fixes everything in one go."""
    checks: list[Callable[[], object]] = []
    if command in ("run", "core"):
        checks += [
            lambda: ModelRegistry(settings),
            lambda: registry(load_tools(settings.tools)),
            lambda: check_files_dir(settings.resolved_files_dir()),
            lambda: check_listenable("GRPC", settings.grpc_host, settings.grpc_port),
        ]
    if command == "core":
        checks.append(
            lambda: check_listenable("METRICS", settings.metrics_host, settings.metrics_port)
        )
    if command in ("run", "edge"):
        checks.append(lambda: check_listenable("HTTP", settings.http_host, settings.http_port))
    problems: list[str] = []
    for check in checks:
        try:
            check()
        except ConfigError as exc:
            problems += exc.lines
    if problems:
        raise ConfigError(*problems)


async def _run_all(settings: Settings) -> None:
    server = CompatServer(settings)
    await server.start()
    freeze_startup_heap()
    listening = Listening(http_port=server.http_port, grpc_port=server.grpc_port)
    log.info("%s", startup_summary("run", settings, listening, server.tools))
    await until_signalled()
    log.info("shutting down: finishing in-flight requests")
    await server.stop()


async def _run_core(settings: Settings) -> None:
    core = CoreServer(settings)
    try:
        await core.start()
    except BaseException:
        await core.stop()  # what it opened before it failed (the store)
        raise
    try:
        with listen_errors("METRICS", settings.metrics_host, settings.metrics_port):
            metrics_port = core.metrics.serve(settings.metrics_host, settings.metrics_port)
        freeze_startup_heap()
        listening = Listening(grpc_port=core.port, metrics_port=metrics_port)
        log.info("%s", startup_summary("core", settings, listening, core.tools))
        await until_signalled()
        log.info("shutting down: finishing in-flight calls")
    finally:
        await core.stop()
        core.metrics.close()


async def _migrate(settings: Settings) -> None:
    with database_errors(settings.database_url):
        # Exclusive: a server running on a SQLite file would find its schema changed under it.
        store = create_store(settings.database_url, exclusive=True)
        await store.open()
    await store.close()
    log.info("migrations applied to %s", mask_password(settings.database_url))


def _announce_edge(settings: Settings, port: int) -> None:
    listening = Listening(http_port=port, core_target=settings.resolved_core_target())
    log.info("%s", startup_summary("edge", settings, listening))


def _install_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


if __name__ == "__main__":
    main()
