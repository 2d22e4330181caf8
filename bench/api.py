"""Setting up what a section measures, through our HTTP API (unmeasured).

Small helpers over aiohttp rather than the `openai` SDK: setup happens in the load generator's
process, and the SDK's per-call cost would only make setup slower.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import aiohttp
import orjson

from bench.load import JSON_HEADERS, StatusError

T = TypeVar("T")
Json = dict[str, Any]
RUN_WAIT_SECONDS = 30.0


async def request_json(
    session: aiohttp.ClientSession, method: str, url: str, body: Json | None = None
) -> Json:
    data = None if body is None else orjson.dumps(body)
    headers = JSON_HEADERS if body is not None else None
    async with session.request(method, url, data=data, headers=headers) as response:
        payload = await response.read()
        if response.status != 200:
            raise StatusError(response.status, payload)
    parsed: Json = orjson.loads(payload)
    return parsed


async def create_assistant(session: aiohttp.ClientSession, base_url: str, model: str) -> str:
    created = await request_json(
        session, "POST", f"{base_url}/assistants", {"model": model, "name": "bench"}
    )
    return str(created["id"])


async def create_thread(
    session: aiohttp.ClientSession, base_url: str, messages: Sequence[str] = ()
) -> str:
    """A thread holding `messages` (user turns), created in one request."""
    body: Json = {"messages": [{"role": "user", "content": text} for text in messages]}
    created = await request_json(session, "POST", f"{base_url}/threads", body)
    return str(created["id"])


async def add_message(
    session: aiohttp.ClientSession, base_url: str, thread_id: str, text: str
) -> str:
    created = await request_json(
        session,
        "POST",
        f"{base_url}/threads/{thread_id}/messages",
        {"role": "user", "content": text},
    )
    return str(created["id"])


async def completed_run(
    session: aiohttp.ClientSession, base_url: str, thread_id: str, assistant_id: str
) -> str:
    """Create a run and wait (bounded) until it completes; its ID."""
    run = await request_json(
        session, "POST", f"{base_url}/threads/{thread_id}/runs", {"assistant_id": assistant_id}
    )
    run_url = f"{base_url}/threads/{thread_id}/runs/{run['id']}"
    async with asyncio.timeout(RUN_WAIT_SECONDS):
        while run["status"] in ("queued", "in_progress"):
            await asyncio.sleep(0.02)
            run = await request_json(session, "GET", run_url)
    if run["status"] != "completed":
        raise RuntimeError(f"setup run ended {run['status']}: {run.get('last_error')}")
    return str(run["id"])


async def bounded_gather(
    count: int, make: Callable[[int], Awaitable[T]], concurrency: int = 16
) -> list[T]:
    """`make(0) … make(count - 1)`, at most `concurrency` at a time, results in order."""
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> T:
        async with gate:
            return await make(index)

    return list(await asyncio.gather(*(one(index) for index in range(count))))
