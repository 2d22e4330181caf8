"""The server under test, as a child process: `python -m bench.ours --database-url URL`.

It is the embedded all-in-one server (`compat_core.embedded`, the same object that
`assistants-compat run` serves), on uvloop, with both ports chosen by the kernel and announced
to the parent. Logging stays at WARNING so that no log line costs anything per request. Once
started, each role freezes its start-up heap, as `assistants-compat` does.

`--role core` and `--role edge --core-target HOST:PORT` run the two halves as separate
processes instead, as `assistants-compat core` and `edge` are deployed: one process each, so
that the server can use more than one CPU.
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from bench.procs import announce, run_with_uvloop, until_signalled
from compat_core.heap import freeze_startup_heap

if TYPE_CHECKING:
    from compat_core.config import Settings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ours")
    parser.add_argument("--database-url", required=True)
    parser.add_argument(
        "--provider",
        action="append",
        default=[],
        metavar="NAME=BASE_URL",
        help="an OpenAI-compatible provider (repeatable)",
    )
    parser.add_argument("--role", choices=("all", "core", "edge"), default="all")
    parser.add_argument("--core-target", default="", help="the core's host:port (--role edge)")
    args = parser.parse_args()
    providers: dict[str, str] = {}
    for entry in args.provider:
        name, _, url = str(entry).partition("=")
        providers[name] = url
    logging.basicConfig(level=logging.WARNING)

    async def serve() -> None:
        from compat_core.embedded import create_server

        server = create_server(
            database_url=args.database_url,
            providers=providers,
            host="127.0.0.1",
            http_port=0,
            grpc_port=0,
        )
        if args.role == "core":
            await _serve_core(server.settings)
            return
        if args.role == "edge":
            await _serve_edge(server.settings, args.core_target)
            return
        await server.start()
        freeze_startup_heap()
        try:
            announce({"http": server.get_url(), "grpc": server.get_grpc_target()})
            await until_signalled()
        finally:
            await server.stop()

    run_with_uvloop(serve)


async def _serve_core(settings: Settings) -> None:
    from compat_core.server import CoreServer

    core = CoreServer(settings)
    port = await core.start()
    freeze_startup_heap()
    try:
        announce({"grpc": f"127.0.0.1:{port}"})
        await until_signalled()
    finally:
        await core.stop()


async def _serve_edge(settings: Settings, core_target: str) -> None:
    from http_edge.app import create_app
    from http_edge.connections import HttpListener

    listener = HttpListener(create_app(settings, core_target), settings)
    port = await listener.start("127.0.0.1", 0)
    try:
        freeze_startup_heap()
        announce({"http": f"http://127.0.0.1:{port}"})
        await until_signalled()
    finally:
        await listener.stop()


if __name__ == "__main__":
    main()
