"""The floor of our shape: `python -m bench.floor --sizes JSON`.

A bare aiohttp JSON handler that makes one bare grpc.aio unary call to a bare grpc.aio server,
both on one uvloop loop in one process, exactly as the embedded server runs its edge and core.
DESIGN.md's "Hot path" names this the floor (~5.9k req/s on 2 cores): whatever our server does
on top of it is what we spend.

To be comparable call by call, the floor answers every call we measure on the same path and
method, with a gRPC reply and a JSON body of the same sizes as ours (measured first, passed in
`--sizes`). The handler parses the request body as ours does, sends it over gRPC as raw bytes
(no protobuf: nothing beyond the hop itself), and renders a padded JSON object with orjson.
The gRPC methods (`/bench.Floor/<call>`) serve the direct-gRPC comparison too.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from typing import Any, Final

import grpc
import orjson
from aiohttp import web

from bench.procs import announce, run_with_uvloop, until_signalled

SERVICE: Final = "bench.Floor"
# The calls we measure: (HTTP method, aiohttp path) on the floor, same shapes as ours.
ROUTES: Final = {
    "create_assistant": ("POST", "/v1/assistants"),
    "create_message": ("POST", "/v1/threads/{thread_id}/messages"),
    "list_messages": ("GET", "/v1/threads/{thread_id}/messages"),
    "get_run": ("GET", "/v1/threads/{thread_id}/runs/{run_id}"),
}
_ENVELOPE: Final = {"object": "bench.floor", "pad": ""}


def grpc_method(call: str) -> str:
    """The floor's gRPC method path for a call."""
    return f"/{SERVICE}/{call}"


def padded_json(size: int) -> dict[str, str]:
    """An object whose orjson rendering is exactly `size` bytes (or the smallest possible)."""
    overhead = len(orjson.dumps(_ENVELOPE))
    return {**_ENVELOPE, "pad": "x" * max(0, size - overhead)}


def _grpc_handler(payload: bytes) -> Callable[[bytes, Any], Awaitable[bytes]]:
    async def unary(request: bytes, context: Any) -> bytes:
        return payload

    return unary


def _http_handler(
    channel: grpc.aio.Channel, call: str, reply: dict[str, str]
) -> Callable[[web.Request], Awaitable[web.Response]]:
    rpc = channel.unary_unary(grpc_method(call))

    async def handle(request: web.Request) -> web.Response:
        raw = await request.read()
        if raw:
            orjson.loads(raw)
        # The path's IDs stand in for a request message when there is no body.
        await rpc(raw or request.path.encode())
        return web.Response(body=orjson.dumps(reply), content_type="application/json")

    return handle


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor")
    parser.add_argument(
        "--sizes",
        required=True,
        help='JSON: {"call": {"json": HTTP body bytes, "proto": gRPC reply bytes}, …}',
    )
    args = parser.parse_args()
    sizes: dict[str, dict[str, int]] = json.loads(args.sizes)

    async def serve() -> None:
        server = grpc.aio.server()
        handlers = {
            call: grpc.unary_unary_rpc_method_handler(_grpc_handler(b"x" * size["proto"]))
            for call, size in sizes.items()
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        grpc_port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}")
        app = web.Application()
        for call, size in sizes.items():
            method, path = ROUTES[call]
            app.router.add_route(
                method, path, _http_handler(channel, call, padded_json(size["json"]))
            )
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        http_port = int(runner.addresses[0][1])
        try:
            announce({"http": f"http://127.0.0.1:{http_port}", "grpc": f"127.0.0.1:{grpc_port}"})
            await until_signalled()
        finally:
            await runner.cleanup()
            await channel.close()
            await server.stop(1.0)

    run_with_uvloop(serve)


if __name__ == "__main__":
    main()
