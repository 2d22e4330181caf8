"""The server under test, as a child process: `python -m bench.ours --database-url URL`.

It is the embedded all-in-one server (`compat_core.embedded`, the same object that
`assistants-compat run` serves), on uvloop, with both ports chosen by the kernel and announced
to the parent. Logging stays at WARNING so that no log line costs anything per request.
"""

from __future__ import annotations

import argparse
import logging

from bench.procs import announce, run_with_uvloop, until_signalled


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
        await server.start()
        try:
            announce({"http": server.get_url(), "grpc": server.get_grpc_target()})
            await until_signalled()
        finally:
            await server.stop()

    run_with_uvloop(serve)


if __name__ == "__main__":
    main()
