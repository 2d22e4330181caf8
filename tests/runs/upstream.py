"""A scripted OpenAI-compatible upstream: the Chat Completions wire protocol, reply by reply.

`ScriptedUpstream` is an aiohttp server on 127.0.0.1 (port 0) running on its own event loop
thread, so that it outlives any server a test stops or restarts. It answers
`POST /v1/chat/completions` (JSON, or SSE `data: {chunk}` … `data: [DONE]` when `stream` is
true, with a final usage chunk whose `choices` is empty when `stream_options.include_usage`)
and `GET /v1/models`.

Tests never share a queue: each scripts a model of its own (`upstream.model()`), whose name the
server passes upstream verbatim (`scripted/<name>` → `<name>`). A model holds a queue of
replies, one per request, and records every request body it received:

    model = upstream.model()
    reply = model.push(text("Hello", " world", hold_after=1))
    ... start a run with model.model ...
    reply.held.wait(5)      # the upstream sent "Hello" and now waits
    reply.release()         # ... until the test lets it go on
    assert model.requests[0]["messages"][-1]["content"] == "hi"

A reply is a list of actions (chunks, pauses, a hold, a stall, a cut) or an HTTP error, built
by `text(...)`, `tool_calls(...)`, `http_error(...)`, `malformed(...)`, `stall(...)` and
`cut(...)`; a refused connection is a provider at `closed_port_url()`. Its `threading.Event`s
tell the test where the upstream is: `started`, `held` (everything before the hold or stall is
written), `finished` (`[DONE]` written) and `disconnected` (the client went away before the
end). Delays between chunks are the upstream's own pacing; tests synchronise on these events,
never on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiohttp import web

# How long a hold waits for `release()` before it lets the reply go on anyway, and how long a
# stall lasts before it drops the connection: bounds that keep a broken server from hanging
# the suite. Both are far above anything a passing test waits.
HOLD_TIMEOUT = 15.0
STALL_LIMIT = 60.0
WAIT = 10.0

Json = dict[str, Any]


@dataclass(frozen=True)
class Usage:
    """Token counts of a reply's usage chunk."""

    prompt_tokens: int
    completion_tokens: int

    def as_json(self) -> Json:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }


@dataclass(frozen=True)
class Call:
    """A tool call the scripted model makes; `arguments` is streamed in `piece`-sized parts."""

    name: str
    arguments: str
    id: str = field(default_factory=lambda: "call_" + uuid.uuid4().hex[:24])
    piece: int = 4

    def pieces(self) -> list[str]:
        size = max(1, self.piece)
        return [self.arguments[i : i + size] for i in range(0, len(self.arguments), size)] or [""]


# Actions of a streamed reply.


@dataclass(frozen=True)
class _Chunk:
    delta: Json
    finish_reason: str | None = None


@dataclass(frozen=True)
class _Raw:
    data: bytes


@dataclass(frozen=True)
class _Pause:
    seconds: float


class _Hold:
    """Wait for `Reply.release()` (bounded by HOLD_TIMEOUT)."""


class _Stall:
    """Send nothing more until the client goes away (bounded by STALL_LIMIT)."""


class _Cut:
    """Drop the connection in the middle of the response body."""


_Action = _Chunk | _Raw | _Pause | _Hold | _Stall | _Cut


class Reply:
    """One scripted answer to one request, and where the upstream is in sending it."""

    def __init__(
        self,
        actions: Sequence[_Action] = (),
        *,
        usage: Usage | None = None,
        status: int = 200,
        error: Json | None = None,
    ) -> None:
        self.actions = list(actions)
        self.usage = usage
        self.status = status
        self.error = error
        self.request: Json | None = None
        self.started = threading.Event()
        self.held = threading.Event()
        self.finished = threading.Event()
        self.disconnected = threading.Event()
        self.hold_timed_out = False
        self._lock = threading.Lock()
        self._released = False
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    @property
    def text(self) -> str:
        """The text the reply streams, all pieces together."""
        return "".join(
            a.delta.get("content") or ""
            for a in self.actions
            if isinstance(a, _Chunk) and isinstance(a.delta.get("content"), str)
        )

    def release(self) -> None:
        """Let a held reply go on (from any thread)."""
        with self._lock:
            self._released = True
            waiters, self._waiters = self._waiters, []
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # the upstream already stopped
                loop.call_soon_threadsafe(event.set)

    async def _wait_released(self) -> None:
        event = asyncio.Event()
        with self._lock:
            if self._released:
                return
            self._waiters.append((asyncio.get_running_loop(), event))
        try:
            async with asyncio.timeout(HOLD_TIMEOUT):
                await event.wait()
        except TimeoutError:
            self.hold_timed_out = True


# Building replies.


def _with_pauses(actions: list[_Action], delay: float) -> list[_Action]:
    """A pause between two consecutive chunks (none next to a hold or a stall)."""
    if delay <= 0:
        return actions
    paced: list[_Action] = []
    for action in actions:
        if paced and isinstance(action, _Chunk) and isinstance(paced[-1], _Chunk):
            paced.append(_Pause(delay))
        paced.append(action)
    return paced


def text(
    *pieces: str,
    finish_reason: str = "stop",
    usage: Usage | None = None,
    delay: float = 0.0,
    hold_after: int | None = None,
    stall_after: int | None = None,
) -> Reply:
    """A text reply streamed as `pieces`, one chunk each.

    `delay` paces the chunks; `hold_after=n` waits for `release()` after the n-th piece;
    `stall_after=n` sends nothing after the n-th piece until the client goes away.
    """
    content: list[_Action] = [_Chunk({"content": piece}) for piece in pieces]
    content = _insert(content, hold_after, _Hold())
    content = _insert(content, stall_after, _Stall())
    actions: list[_Action] = [_Chunk({"role": "assistant", "content": "", "refusal": None})]
    actions += _with_pauses(content, delay)
    actions.append(_Chunk({}, finish_reason))
    return Reply(actions, usage=usage)


def tool_calls(
    *calls: Call,
    text_before: str = "",
    usage: Usage | None = None,
    interleave: bool = False,
    delay: float = 0.0,
) -> Reply:
    """Tool calls as OpenAI streams them: `id`, `type` and `name` in a call's first chunk only,
    then its arguments piece by piece (all of one call, then the next; or round-robin when
    `interleave`)."""
    per_call: list[list[_Action]] = []
    for index, call in enumerate(calls):
        pieces = call.pieces()
        first = {
            "index": index,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": pieces[0]},
        }
        chunks: list[_Action] = [_Chunk({"tool_calls": [first]})]
        chunks += [
            _Chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            for piece in pieces[1:]
        ]
        per_call.append(chunks)
    if interleave:
        ordered = [a for group in itertools.zip_longest(*per_call) for a in group if a is not None]
    else:
        ordered = [a for chunks in per_call for a in chunks]
    actions: list[_Action] = [_Chunk({"role": "assistant", "content": None, "refusal": None})]
    if text_before:
        actions.append(_Chunk({"content": text_before}))
    actions += _with_pauses(ordered, delay)
    actions.append(_Chunk({}, "tool_calls"))
    return Reply(actions, usage=usage)


def http_error(
    status: int,
    message: str = "scripted failure",
    *,
    type: str = "server_error",
    code: str | None = None,
) -> Reply:
    """An HTTP error with OpenAI's error JSON."""
    error = {"message": message, "type": type, "param": None, "code": code}
    return Reply(status=status, error={"error": error})


def malformed(*pieces: str) -> Reply:
    """Some text pieces, then a `data:` line that is not JSON."""
    actions: list[_Action] = [_Chunk({"role": "assistant", "content": ""})]
    actions += [_Chunk({"content": piece}) for piece in pieces]
    actions.append(_Raw(b'data: {"id": "chatcmpl-broken", "choices": [\n\n'))
    return Reply(actions)


def stall(*pieces: str) -> Reply:
    """Some text pieces (maybe none), then nothing until the client goes away."""
    actions: list[_Action] = [_Chunk({"role": "assistant", "content": ""})]
    actions += [_Chunk({"content": piece}) for piece in pieces]
    actions.append(_Stall())
    return Reply(actions)


def cut(*pieces: str) -> Reply:
    """Some text pieces, then the connection drops: no finish reason, no `[DONE]`."""
    actions: list[_Action] = [_Chunk({"role": "assistant", "content": ""})]
    actions += [_Chunk({"content": piece}) for piece in pieces]
    actions.append(_Cut())
    return Reply(actions)


def _insert(actions: list[_Action], after: int | None, action: _Action) -> list[_Action]:
    if after is None:
        return actions
    return [*actions[:after], action, *actions[after:]]


# Models and the server.


class ScriptedModel:
    """One model name on the upstream: its queue of replies and the requests it received."""

    def __init__(self, name: str, provider: str) -> None:
        self.name = name
        self.provider = provider
        self._replies: deque[Reply] = deque()
        self._requests: list[Json] = []
        self._changed = threading.Condition()

    @property
    def model(self) -> str:
        """The model string a run or an assistant uses: `provider/name`."""
        return f"{self.provider}/{self.name}"

    def push(self, *replies: Reply) -> Reply:
        """Queue replies for the next requests; returns the last one."""
        if not replies:
            raise ValueError("push at least one reply")
        with self._changed:
            self._replies.extend(replies)
        return replies[-1]

    @property
    def requests(self) -> list[Json]:
        """Bodies of the chat completion requests received so far, in order."""
        with self._changed:
            return list(self._requests)

    @property
    def pending(self) -> int:
        """Replies scripted but not yet asked for."""
        with self._changed:
            return len(self._replies)

    def wait_requests(self, count: int, timeout: float = WAIT) -> list[Json]:
        """Wait until `count` requests arrived; return them."""
        with self._changed:
            arrived = self._changed.wait_for(lambda: len(self._requests) >= count, timeout)
            requests = list(self._requests)
        assert arrived, f"{self.name}: expected {count} request(s), got {len(requests)}"
        return requests

    def _take(self, body: Json) -> Reply | None:
        with self._changed:
            self._requests.append(body)
            reply = self._replies.popleft() if self._replies else None
            self._changed.notify_all()
        return reply


class ScriptedUpstream:
    """The upstream server on its own loop thread; a context manager."""

    def __init__(self, provider: str = "scripted") -> None:
        self.provider = provider
        self._models: dict[str, ScriptedModel] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._port = 0
        self.unscripted: list[Json] = []
        # `GET /v1/models` requests served, and the status they get (an error fails them).
        self.model_lists = 0
        self.model_list_status = 200

    # Lifecycle

    def start(self) -> Self:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        thread = threading.Thread(target=run, name="scripted-upstream", daemon=True)
        thread.start()
        ready.wait()
        self._loop, self._thread = loop, thread
        asyncio.run_coroutine_threadsafe(self._start(), loop).result(WAIT)
        return self

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_get("/v1/models", self._list_models)
        # Cancel a handler whose client went away: that is how a stall learns of it.
        runner = web.AppRunner(
            app, handle_signals=False, handler_cancellation=True, shutdown_timeout=1.0
        )
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
            with contextlib.suppress(Exception):
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

    # What tests use

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/v1`, the provider's base URL."""
        return f"http://127.0.0.1:{self._port}/v1"

    def model(self, name: str | None = None) -> ScriptedModel:
        """A model of the test's own (a fresh unique name unless given)."""
        name = name or f"m-{uuid.uuid4().hex[:12]}"
        with self._lock:
            if name in self._models:
                raise ValueError(f"model {name!r} already exists")
            model = self._models[name] = ScriptedModel(name, self.provider)
        return model

    # Handlers

    async def _list_models(self, request: web.Request) -> web.Response:
        with self._lock:
            self.model_lists += 1
            names = list(self._models)
            status = self.model_list_status
        if status != 200:
            return _error_response(status, "the model list is not available")
        data = [
            {"id": name, "object": "model", "created": 1767225600, "owned_by": "scripted"}
            for name in names
        ]
        return web.json_response({"object": "list", "data": data})

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            return _error_response(400, "the body is not JSON", "invalid_request_error")
        if not isinstance(body, dict):
            return _error_response(400, "the body is not an object", "invalid_request_error")
        name = body.get("model")
        with self._lock:
            model = self._models.get(name) if isinstance(name, str) else None
        if model is None:
            self.unscripted.append(body)
            return _error_response(404, f"no scripted model {name!r}", "invalid_request_error")
        reply = model._take(body)
        if reply is None:
            return _error_response(
                400, f"nothing scripted for request {len(model.requests)} of {name!r}"
            )
        reply.request = body
        reply.started.set()
        if reply.error is not None:
            return web.json_response(reply.error, status=reply.status)
        if body.get("stream") is True:
            return await self._stream(request, body, reply)
        return web.json_response(_completion(body, reply))

    async def _stream(self, request: web.Request, body: Json, reply: Reply) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        meta = _meta(body)
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        try:
            for action in reply.actions:
                if isinstance(action, _Chunk):
                    chunk = _chunk(meta, action, include_usage)
                    await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                elif isinstance(action, _Raw):
                    await response.write(action.data)
                elif isinstance(action, _Pause):
                    await asyncio.sleep(action.seconds)
                elif isinstance(action, _Hold):
                    reply.held.set()
                    await reply._wait_released()
                elif isinstance(action, _Cut):
                    if request.transport is not None:
                        request.transport.abort()
                    return response
                else:
                    reply.held.set()
                    await asyncio.sleep(STALL_LIMIT)
                    # Nobody came to cancel: end the response without its end.
                    if request.transport is not None:
                        request.transport.abort()
                    return response
            if include_usage:
                usage = reply.usage or _default_usage(body, reply)
                final = {**meta, "choices": [], "usage": usage.as_json()}
                await response.write(b"data: " + json.dumps(final).encode() + b"\n\n")
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except (asyncio.CancelledError, ConnectionError):
            reply.disconnected.set()
            raise
        reply.finished.set()
        return response


def _error_response(status: int, message: str, kind: str = "server_error") -> web.Response:
    error = {"message": message, "type": kind, "param": None, "code": None}
    return web.json_response({"error": error}, status=status)


def _meta(body: Json) -> Json:
    return {
        "id": "chatcmpl-" + uuid.uuid4().hex[:24],
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model"),
        "system_fingerprint": "fp_scripted",
        "service_tier": "default",
    }


def _chunk(meta: Json, action: _Chunk, include_usage: bool) -> Json:
    chunk: Json = {
        **meta,
        "choices": [
            {
                "index": 0,
                "delta": action.delta,
                "logprobs": None,
                "finish_reason": action.finish_reason,
            }
        ],
    }
    if include_usage:
        chunk["usage"] = None
    return chunk


def _prompt_size(body: Json) -> int:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return 0
    return sum(len(str(m.get("content") or "").split()) for m in messages if isinstance(m, dict))


def _default_usage(body: Json, reply: Reply) -> Usage:
    pieces = sum(1 for a in reply.actions if isinstance(a, _Chunk) and a.delta.get("content"))
    return Usage(_prompt_size(body), pieces)


def _assembled_calls(actions: Iterable[_Action]) -> list[Json]:
    calls: dict[int, Json] = {}
    for action in actions:
        if not isinstance(action, _Chunk):
            continue
        for piece in action.delta.get("tool_calls") or ():
            call = calls.setdefault(
                piece["index"],
                {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
            )
            call["id"] = piece.get("id") or call["id"]
            function = piece.get("function") or {}
            call["function"]["name"] += function.get("name") or ""
            call["function"]["arguments"] += function.get("arguments") or ""
    return [calls[index] for index in sorted(calls)]


def _completion(body: Json, reply: Reply) -> Json:
    """The same reply as one `chat.completion` object (for `stream: false`)."""
    finish = next(
        (a.finish_reason for a in reply.actions if isinstance(a, _Chunk) and a.finish_reason),
        "stop",
    )
    calls = _assembled_calls(reply.actions)
    message: Json = {"role": "assistant", "content": reply.text or None, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    usage = reply.usage or _default_usage(body, reply)
    return {
        "id": "chatcmpl-" + uuid.uuid4().hex[:24],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model"),
        "system_fingerprint": "fp_scripted",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": usage.as_json(),
    }


def closed_port_url() -> str:
    """A base URL on a loopback port nothing listens on: connections to it are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
