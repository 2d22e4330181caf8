"""UpstreamEmbedder against a scripted OpenAI-compatible `/v1/embeddings` on loopback.

The server speaks the real wire JSON and derives each vector from its text (a SHA-256), so a
test can tell which vector belongs to which input whatever order the server answers in.
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from runs.upstream import closed_port_url

from compat_core.config import ProviderConfig
from compat_core.retrieval.embeddings import (
    MAX_BATCH_TEXTS,
    MAX_BATCH_TOKENS,
    EmbeddingError,
    UpstreamEmbedder,
    batches,
)

DIMENSIONS = 8
Reply = Callable[[list[str]], web.Response]


def raw_vector(text: str, dimensions: int = DIMENSIONS) -> list[float]:
    """A deterministic, deliberately not unit-length vector for a text."""
    digest = hashlib.sha256(text.encode()).digest()
    return [digest[i] - 127.5 for i in range(dimensions)]


def unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(value * value for value in vector))
    return [value / norm for value in vector]


def assert_vectors(got: list[list[float]], texts: list[str]) -> None:
    """The unit vectors of these texts, in this order."""
    assert len(got) == len(texts)
    for vector, text in zip(got, texts, strict=True):
        assert vector == pytest.approx(unit(raw_vector(text)))


def embeddings_json(inputs: list[str], order: list[int], dimensions: int = DIMENSIONS) -> Any:
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": raw_vector(inputs[i], dimensions)}
            for i in order
        ],
        "model": "scripted-embed",
        "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)},
    }


def in_order(inputs: list[str]) -> web.Response:
    return web.json_response(embeddings_json(inputs, list(range(len(inputs)))))


def reversed_order(inputs: list[str]) -> web.Response:
    return web.json_response(embeddings_json(inputs, list(reversed(range(len(inputs))))))


def error(status: int) -> Reply:
    def reply(inputs: list[str]) -> web.Response:
        body = {"error": {"message": f"scripted {status}", "type": "x", "param": None}}
        # The SDK honours retry-after-ms: its one retry then waits 1 ms, not its backoff.
        return web.json_response(body, status=status, headers={"retry-after-ms": "1"})

    return reply


@dataclass
class EmbeddingsServer:
    """Answers each request with the next scripted reply, then `in_order`; logs every body."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    script: deque[Reply] = field(default_factory=deque)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        reply = self.script.popleft() if self.script else in_order
        return reply(body["input"])


@pytest_asyncio.fixture(loop_scope="function")
async def server() -> AsyncIterator[EmbeddingsServer]:
    scripted = EmbeddingsServer()
    app = web.Application()
    app.router.add_post("/v1/embeddings", scripted.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    scripted.url = f"http://127.0.0.1:{port}/v1"
    yield scripted
    await runner.cleanup()


@pytest_asyncio.fixture(loop_scope="function")
async def embedder(server: EmbeddingsServer) -> AsyncIterator[UpstreamEmbedder]:
    config = ProviderConfig(name="scripted", base_url=server.url, api_key="sk-test")
    client = UpstreamEmbedder(config, "scripted-embed")
    yield client
    await client.close()


async def test_600_texts_go_in_3_requests_in_order_normalised(
    server: EmbeddingsServer, embedder: UpstreamEmbedder
) -> None:
    texts = [f"chunk number {i}" for i in range(600)]
    vectors = await embedder.embed(texts)
    assert [len(body["input"]) for body in server.requests] == [256, 256, 88]
    assert all(body["encoding_format"] == "float" for body in server.requests)
    assert all(body["model"] == "scripted-embed" for body in server.requests)
    assert [text for body in server.requests for text in body["input"]] == texts
    assert_vectors(vectors, texts)
    assert embedder.dimensions == DIMENSIONS
    for vector in vectors:
        assert math.fsum(value * value for value in vector) == pytest.approx(1.0)


async def test_vectors_follow_index_not_reply_order(
    server: EmbeddingsServer, embedder: UpstreamEmbedder
) -> None:
    server.script.append(reversed_order)
    texts = ["alpha", "beta", "gamma"]
    assert_vectors(await embedder.embed(texts), texts)


async def test_no_texts_make_no_request(
    server: EmbeddingsServer, embedder: UpstreamEmbedder
) -> None:
    assert await embedder.embed([]) == []
    assert server.requests == []
    assert embedder.dimensions is None


def test_batches_keep_to_the_token_budget() -> None:
    long = "x" * (MAX_BATCH_TOKENS * 4 // 3)  # a third of the budget each
    cut = batches([long] * 7)
    assert [len(batch) for batch in cut] == [3, 3, 1]
    # A text past the whole budget still goes, alone.
    huge = "y" * (MAX_BATCH_TOKENS * 8)
    assert [list(batch) for batch in batches(["a", huge, "b"])] == [["a"], [huge], ["b"]]
    assert len(batches(["t"] * (MAX_BATCH_TEXTS + 1))) == 2


async def test_a_vector_of_another_dimension_fails(
    server: EmbeddingsServer, embedder: UpstreamEmbedder
) -> None:
    def mixed(inputs: list[str]) -> web.Response:
        body = embeddings_json(inputs, list(range(len(inputs))))
        body["data"][1]["embedding"] = raw_vector(inputs[1], DIMENSIONS + 1)
        return web.json_response(body)

    server.script.append(mixed)
    with pytest.raises(EmbeddingError) as caught:
        await embedder.embed(["one", "two"])
    assert caught.value.code == "server_error"
    assert "Provider 'scripted'" in caught.value.message
    assert "dimensions" in caught.value.message


async def test_a_later_batch_of_another_dimension_fails(
    server: EmbeddingsServer, embedder: UpstreamEmbedder
) -> None:
    await embedder.embed(["first"])
    server.script.append(
        lambda inputs: web.json_response(embeddings_json(inputs, [0], DIMENSIONS * 2))
    )
    with pytest.raises(EmbeddingError, match="16 dimensions, not 8"):
        await embedder.embed(["second"])


async def test_a_short_reply_fails(server: EmbeddingsServer, embedder: UpstreamEmbedder) -> None:
    server.script.append(lambda inputs: web.json_response(embeddings_json(inputs, [0])))
    with pytest.raises(EmbeddingError, match="1 embeddings came back for 2 inputs") as caught:
        await embedder.embed(["one", "two"])
    assert caught.value.code == "server_error"


async def test_a_repeated_index_fails(server: EmbeddingsServer, embedder: UpstreamEmbedder) -> None:
    server.script.append(lambda inputs: web.json_response(embeddings_json(inputs, [0, 0])))
    with pytest.raises(EmbeddingError, match="repeated index") as caught:
        await embedder.embed(["one", "two"])
    assert caught.value.code == "server_error"


@pytest.mark.parametrize(
    ("status", "code"),
    [(429, "rate_limit_exceeded"), (500, "server_error"), (503, "server_error")],
)
async def test_transient_statuses_are_retried_once_then_fail(
    server: EmbeddingsServer, embedder: UpstreamEmbedder, status: int, code: str
) -> None:
    server.script.extend([error(status), error(status)])
    with pytest.raises(EmbeddingError) as caught:
        await embedder.embed(["text"])
    assert caught.value.code == code
    assert caught.value.message.startswith(f"Provider 'scripted' answered HTTP {status}")
    assert len(server.requests) == 2


async def test_one_transient_failure_is_ridden_out(
    server: EmbeddingsServer, embedder: UpstreamEmbedder
) -> None:
    server.script.append(error(429))
    assert_vectors(await embedder.embed(["text"]), ["text"])
    assert len(server.requests) == 2


@pytest.mark.parametrize("status", [400, 404])
async def test_a_refused_request_is_invalid_and_not_retried(
    server: EmbeddingsServer, embedder: UpstreamEmbedder, status: int
) -> None:
    server.script.append(error(status))
    with pytest.raises(EmbeddingError) as caught:
        await embedder.embed(["text"])
    assert caught.value.code == "invalid_request"
    assert f"scripted {status}" in caught.value.message
    assert len(server.requests) == 1


async def test_refused_connection_names_the_provider() -> None:
    config = ProviderConfig(name="offline", base_url=closed_port_url())
    client = UpstreamEmbedder(config, "m")
    try:
        with pytest.raises(EmbeddingError) as caught:
            await client.embed(["text"])
    finally:
        await client.close()
    assert caught.value.code == "server_error"
    assert caught.value.message.startswith("Provider 'offline' could not be reached")
    assert "Traceback" not in caught.value.message


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("{not json", "application/json"),
        ('{"object": "list"}', "application/json"),
        ('{"data": [{"index": 0, "embedding": "abc"}]}', "application/json"),
        ('{"data": [{"index": 0, "embedding": [NaN, 1.0]}]}', "application/json"),
        ('{"data": [7]}', "application/json"),
        ("<html>gateway</html>", "text/html"),
    ],
)
async def test_malformed_replies_are_server_errors(
    server: EmbeddingsServer, embedder: UpstreamEmbedder, body: str, content_type: str
) -> None:
    server.script.append(lambda inputs: web.Response(text=body, content_type=content_type))
    with pytest.raises(EmbeddingError) as caught:
        await embedder.embed(["text"])
    assert caught.value.code == "server_error"
    assert caught.value.message.startswith("Provider 'scripted' sent a malformed")
