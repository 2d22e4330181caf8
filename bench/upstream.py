"""A minimal, fast OpenAI-compatible Chat Completions upstream: `python -m bench.upstream`.

It exists to be cheaper than anything it is compared with, so that what the benchmark sees is
the server under test and not the upstream. It streams a fixed reply whose shape is named by
the model, so one process serves every section:

    model "t1000-p0"  → 1,000 tokens as fast as the connection takes them
    model "t200-p20"  → 200 tokens, 20 ms apart

Every chunk is encoded once per shape and then only written. A token is `TOKEN` (4 characters),
so a reader counts tokens as characters of text / 4, whatever the relay merged or split.
"""

from __future__ import annotations

import asyncio
import functools
import re

import orjson
from aiohttp import web

from bench.procs import announce, run_with_uvloop, until_signalled

TOKEN = "tok "
TOKEN_CHARS = len(TOKEN)
# More than the 1,000 connections the concurrency section opens at once.
BACKLOG = 4096
_MODEL = re.compile(r"^t(\d{1,6})-p(\d{1,5})$")
_DONE = b"data: [DONE]\n\n"


def model_name(tokens: int, pace_ms: int) -> str:
    """The model that streams `tokens` tokens `pace_ms` apart (0: no pause)."""
    return f"t{tokens}-p{pace_ms}"


def _event(payload: dict[str, object]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _chunk(model: str, delta: dict[str, object], finish: str | None) -> bytes:
    return _event(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1767225600,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    )


@functools.cache
def _reply(model: str, tokens: int) -> tuple[bytes, bytes, bytes, bytes]:
    """(role chunk, token chunk, finish chunk, usage chunk + [DONE]) for a shape."""
    usage = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1767225600,
        "model": model,
        "choices": [],
        "usage": {"prompt_tokens": 10, "completion_tokens": tokens, "total_tokens": tokens + 10},
    }
    return (
        _chunk(model, {"role": "assistant", "content": ""}, None),
        _chunk(model, {"content": TOKEN}, None),
        _chunk(model, {}, "stop"),
        _event(usage) + _DONE,
    )


async def chat_completions(request: web.Request) -> web.StreamResponse:
    try:
        body = orjson.loads(await request.read())
        model = str(body["model"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return web.json_response({"error": {"message": "bad request"}}, status=400)
    shape = _MODEL.match(model)
    if shape is None or body.get("stream") is not True:
        return web.json_response(
            {"error": {"message": f"stream a model named like t1000-p0, not {model!r}"}},
            status=404,
        )
    tokens, pace = int(shape.group(1)), int(shape.group(2)) / 1000.0
    role, token, finish, tail = _reply(model, tokens)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    await response.write(role)
    for index in range(tokens):
        if pace and index:
            await asyncio.sleep(pace)
        await response.write(token)
    await response.write(finish + tail)
    await response.write_eof()
    return response


async def list_models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": []})


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", list_models)
    return app


def main() -> None:
    async def serve() -> None:
        runner = web.AppRunner(create_app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=BACKLOG)
        await site.start()
        port = int(runner.addresses[0][1])
        try:
            announce({"base_url": f"http://127.0.0.1:{port}/v1"})
            await until_signalled()
        finally:
            await runner.cleanup()

    run_with_uvloop(serve)


if __name__ == "__main__":
    main()
