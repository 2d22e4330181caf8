"""An OpenAI-compatible embeddings upstream: `python -m bench.embeddings_upstream`.

The model boundary of the retrieval section's dense and hybrid figures, as `bench.upstream`
is for chat: the server under test embeds chunks and queries through `POST /v1/embeddings`,
OpenAI's wire protocol, as it would with Ollama, vLLM or OpenAI, and this process answers
with the bench's offline model (`bench.embedding_model`). It serves that one model, inputs
as a string or a list of strings (token arrays are another tokenizer's IDs: refused), floats
or base64 (little-endian float32, what the SDKs decode), and `usage` in the model's tokens.

Embedding is CPU work of up to a second for a large batch, so it runs in a worker thread:
the event loop keeps answering (a query's embedding is not queued behind a file's).
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import orjson
from aiohttp import web

from bench import embedding_model
from bench.procs import announce, run_with_uvloop, until_signalled


def _error(status: int, message: str, param: str | None, code: str | None = None) -> web.Response:
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    return web.Response(
        body=orjson.dumps({"error": error}), status=status, content_type="application/json"
    )


def _inputs(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return value
    return None


async def embeddings(request: web.Request) -> web.Response:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return _error(400, "The body is not JSON.", None)
    if not isinstance(body, dict):
        return _error(400, "The body must be a JSON object.", None)
    if body.get("model") != embedding_model.MODEL:
        return _error(
            404,
            f"The model {body.get('model')!r} does not exist; "
            f"this upstream serves {embedding_model.MODEL!r}.",
            "model",
            "model_not_found",
        )
    texts = _inputs(body.get("input"))
    if texts is None:
        return _error(400, "'input' must be a string or a non-empty list of strings.", "input")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        return _error(400, "'encoding_format' must be 'float' or 'base64'.", "encoding_format")
    dimensions = body.get("dimensions", embedding_model.DIMENSIONS)
    if dimensions != embedding_model.DIMENSIONS:
        return _error(
            400,
            f"This model has {embedding_model.DIMENSIONS} dimensions only.",
            "dimensions",
        )
    vectors, tokens = await asyncio.to_thread(
        lambda: (embedding_model.embed(texts), embedding_model.token_counts(texts))
    )
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": (
                base64.b64encode(row.astype("<f4").tobytes()).decode()
                if encoding == "base64"
                else row
            ),
        }
        for index, row in enumerate(vectors)
    ]
    used = sum(tokens)
    reply = {
        "object": "list",
        "data": data,
        "model": embedding_model.MODEL,
        "usage": {"prompt_tokens": used, "total_tokens": used},
    }
    return web.Response(
        body=orjson.dumps(reply, option=orjson.OPT_SERIALIZE_NUMPY),
        content_type="application/json",
    )


def create_app() -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/embeddings", embeddings)
    return app


def main() -> None:
    async def serve() -> None:
        # Loaded before the port is announced, so the first request does not pay for it.
        await asyncio.to_thread(embedding_model.embed, ["warm"])
        runner = web.AppRunner(create_app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
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
