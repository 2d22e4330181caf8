"""Client-side readers of event streams, raw over aiohttp, timing the first and last token.

Parsing is kept to what the measure needs (split on blank lines, JSON-decode only the events
that carry text), because in the concurrency section this client reads a thousand streams on
the same two cores as the server it measures.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import orjson

from bench.procs import raise_if_cancelled
from bench.upstream import TOKEN_CHARS

DELTA_EVENT: Final = b"thread.message.delta"
COMPLETED_EVENT: Final = b"thread.run.completed"
# A run that ends any other way, or an `error` event (the stream broke after it started).
FAILED_EVENTS: Final = frozenset(
    {
        b"thread.run.failed",
        b"thread.run.cancelled",
        b"thread.run.expired",
        b"thread.run.incomplete",
        b"thread.run.requires_action",
        b"error",
    }
)


@dataclass
class StreamTiming:
    """One stream as the client saw it; times are `perf_counter` seconds."""

    sent: float
    first_token: float = math.nan
    last_token: float = math.nan
    characters: int = 0
    # Events (or chunks) that carried text: how finely the stream arrived.
    pieces: int = 0
    completed: bool = False
    error: str = ""
    # When the stream ended, whether it completed or failed.
    ended: float = math.nan

    @property
    def tokens(self) -> int:
        return self.characters // TOKEN_CHARS

    @property
    def ttft(self) -> float:
        """Time to first token, from the request being sent."""
        return self.first_token - self.sent

    @property
    def tokens_per_second(self) -> float:
        """Tokens over the whole stream, from the request to the last token.

        Not from the first token: a relay that holds tokens back and sends them in one burst
        would otherwise look infinitely fast.
        """
        span = self.last_token - self.sent
        return self.tokens / span if span > 0 else math.nan

    def text_arrived(self, characters: int) -> None:
        if not characters:
            return
        now = time.perf_counter()
        if math.isnan(self.first_token):
            self.first_token = now
        self.last_token = now
        self.characters += characters
        self.pieces += 1


async def events(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[bytes, bytes]]:
    """(event name, data) of each server-sent event; a comment (`: ping`) has no data."""
    rest = b""
    async for chunk in response.content.iter_any():
        blocks = (rest + chunk).split(b"\n\n")
        rest = blocks.pop()
        for block in blocks:
            name = data = b""
            for line in block.split(b"\n"):
                if line.startswith(b"data: "):
                    data = line[6:]
                elif line.startswith(b"event: "):
                    name = line[7:]
            if data:
                yield name, data


def _delta_characters(data: bytes) -> int:
    delta: dict[str, Any] = orjson.loads(data)["delta"]
    return sum(
        len(part["text"]["value"])
        for part in delta.get("content", ())
        if part.get("type") == "text"
    )


async def read_run_stream(session: aiohttp.ClientSession, url: str, body: bytes) -> StreamTiming:
    """POST a streaming run and read it to `done`; text comes from `thread.message.delta`."""
    timing = StreamTiming(sent=time.perf_counter())
    try:
        async with session.post(
            url, data=body, headers={"Content-Type": "application/json"}
        ) as response:
            if response.status != 200:
                timing.error = f"HTTP {response.status}: {(await response.read())[:200]!r}"
            else:
                await _read_run_events(response, timing)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise_if_cancelled()
        timing.error = f"{type(exc).__name__}: {exc}"
    timing.ended = time.perf_counter()
    if not timing.completed and not timing.error:
        timing.error = "the stream ended before thread.run.completed"
    return timing


async def _read_run_events(response: aiohttp.ClientResponse, timing: StreamTiming) -> None:
    async for name, data in events(response):
        if name == DELTA_EVENT:
            timing.text_arrived(_delta_characters(data))
        elif name == COMPLETED_EVENT:
            timing.completed = True
        elif name in FAILED_EVENTS:
            timing.error = f"{name.decode()}: {data[:300]!r}"
        elif name == b"done":
            return


async def read_upstream_stream(
    session: aiohttp.ClientSession, base_url: str, model: str
) -> StreamTiming:
    """Read a Chat Completions stream straight from the upstream, the same raw way."""
    body = orjson.dumps(
        {"model": model, "stream": True, "messages": [{"role": "user", "content": "hello"}]}
    )
    timing = StreamTiming(sent=time.perf_counter())
    try:
        async with session.post(
            f"{base_url}/chat/completions",
            data=body,
            headers={"Content-Type": "application/json"},
        ) as response:
            if response.status != 200:
                timing.error = f"HTTP {response.status}: {(await response.read())[:200]!r}"
            else:
                await _read_chunks(response, timing)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise_if_cancelled()
        timing.error = f"{type(exc).__name__}: {exc}"
    timing.ended = time.perf_counter()
    if not timing.completed and not timing.error:
        timing.error = "the stream ended before [DONE]"
    return timing


async def _read_chunks(response: aiohttp.ClientResponse, timing: StreamTiming) -> None:
    async for _, data in events(response):
        if data == b"[DONE]":
            timing.completed = True
            return
        choices = orjson.loads(data)["choices"]
        if choices:
            timing.text_arrived(len(choices[0]["delta"].get("content") or ""))
