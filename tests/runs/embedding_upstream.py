"""A deterministic OpenAI-compatible `/v1/embeddings` upstream: the model boundary of dense search.

`EmbeddingUpstream` is an aiohttp server on 127.0.0.1 on its own loop thread (it outlives the
servers a test restarts). Any model name of the form `<space>-<dimensions>` exists: `alpha-64`
and `beta-96` are two unrelated vector spaces of those lengths, as two real models would be.

A text's vector is a hashed bag of words: each word is mapped to a concept (`SYNONYMS`, the
stand-in for meaning: "automobile" and "car" are one concept, which no stemmer relates), and
each concept adds a signed unit to one coordinate chosen by hashing it with the space's name.
Texts sharing concepts are near; unrelated texts are near-orthogonal. Vectors are not
normalised (the server must do that itself).

An input containing `REFUSE` is refused with a 400 (as a provider refuses a request it cannot
serve), for the failure paths. Every request is recorded (`requests`) with its model and inputs.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from aiohttp import web

REFUSE = "REFUSE"
WAIT = 10.0
SYNONYMS = {
    "automobile": "car",
    "vehicle": "car",
    "cars": "car",
    "motor": "engine",
    "engines": "engine",
    "physician": "doctor",
    "medic": "doctor",
    "feline": "cat",
    "kitten": "cat",
    "ocean": "sea",
    "maritime": "sea",
}
_MODEL = re.compile(r"^(?P<space>[a-z]+)-(?P<dimensions>[0-9]+)$")
_WORD = re.compile(r"[a-z0-9]+")


def concepts(text: str) -> list[str]:
    return [SYNONYMS.get(word, word) for word in _WORD.findall(text.lower())]


def embed(space: str, dimensions: int, text: str) -> list[float]:
    vector = [0.0] * dimensions
    for concept in concepts(text):
        digest = hashlib.sha256(f"{space}:{concept}".encode()).digest()
        index = int.from_bytes(digest[:4], "big") % dimensions
        vector[index] += 1.0 if digest[4] % 2 else -1.0
    # An empty or wordless text still gets a vector (a real model always answers one).
    if not any(vector):
        vector[0] = 1.0
    return [value * 3.0 for value in vector]


@dataclass(frozen=True)
class EmbeddingRequest:
    model: str
    inputs: list[str]


class EmbeddingUpstream:
    """The upstream on its own loop thread; a context manager."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[EmbeddingRequest] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    @property
    def requests(self) -> list[EmbeddingRequest]:
        with self._lock:
            return list(self._requests)

    def inputs_for(self, model: str) -> list[str]:
        """Every text embedded with `model` so far, in order."""
        return [text for r in self.requests if r.model == model for text in r.inputs]

    def start(self) -> Self:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()
            loop.close()

        thread = threading.Thread(target=run, name="embedding-upstream", daemon=True)
        thread.start()
        ready.wait()
        self._loop, self._thread = loop, thread
        asyncio.run_coroutine_threadsafe(self._start(), loop).result(WAIT)
        return self

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/embeddings", self._embeddings)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    def stop(self) -> None:
        loop, thread, runner = self._loop, self._thread, self._runner
        self._loop = self._thread = self._runner = None
        if loop is None or thread is None:
            return
        if runner is not None:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(WAIT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(WAIT)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    async def _embeddings(self, request: web.Request) -> web.Response:
        body: Any = await request.json()
        model, inputs = body.get("model"), body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        found = _MODEL.match(model) if isinstance(model, str) else None
        if found is None or not isinstance(inputs, list):
            return _error(404, f"no such embedding model {model!r}")
        with self._lock:
            self._requests.append(EmbeddingRequest(model, list(inputs)))
        if any(REFUSE in text for text in inputs):
            return _error(400, "this input is refused")
        space, dimensions = found["space"], int(found["dimensions"])
        data = [
            {"object": "embedding", "index": i, "embedding": embed(space, dimensions, text)}
            for i, text in enumerate(inputs)
        ]
        usage = {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}
        return web.json_response({"object": "list", "data": data, "model": model, "usage": usage})


def _error(status: int, message: str) -> web.Response:
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": None}
    return web.json_response({"error": error}, status=status)
