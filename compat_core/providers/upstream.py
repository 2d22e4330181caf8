"""OpenAI-compatible upstreams (OpenAI, Ollama, vLLM, llama.cpp…) through the `openai` SDK.

Failures become `ProviderError`s with the run's `last_error` codes and a message that says
what the upstream did, so a run never hangs and the user can tell a typo from an outage.

The SDK makes the request (auth, base URL, timeouts, pool, HTTP error classes), but the
streamed body is read here: the SDK would build a pydantic chunk per SSE event, which cost most
of the core's CPU on fast streams, while the run needs a few fields that orjson reads directly.

The request goes through the client's `post` (the SDK's way to send a body as it is) rather
than `chat.completions.create`, whose typed-parameter transform walks the whole request
against its type hints on every call: about 0.7 ms of CPU for a one-message prompt, growing
with the conversation. The body is plain JSON built here (`_arguments`), which is what the
transform would have sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import aiohttp
import anyio
import httpx2
import openai
import orjson
from openai.types.chat import ChatCompletionChunk

from compat_core.config import ProviderConfig
from compat_core.providers.base import (
    ChatDelta,
    ChatProvider,
    ChatRequest,
    ProviderError,
    TokenUsage,
    ToolCallDelta,
)

CONNECT_TIMEOUT_SECONDS = 10.0
# Time allowed between two pieces of a streamed reply: long enough for a slow local model's
# first token, short enough that a stalled upstream fails the run instead of hanging it.
READ_TIMEOUT_SECONDS = 300.0
# How long to wait for the end of the body after `[DONE]`: reading it lets the connection go
# back to the pool; an upstream that keeps the stream open only costs this, as with the SDK.
DRAIN_SECONDS = 0.1

# What reading the body raises when the connection fails: the set the SDK maps to
# APIConnectionError for the streams it reads itself (TLS failures can escape httpx2 raw).
_TRANSPORT_ERRORS = (httpx2.RequestError, ssl.SSLError, anyio.EndOfStream)
_DONE = b"[DONE]"


class UpstreamProvider(ChatProvider):
    """One configured provider; one pooled SDK client for all its runs."""

    def __init__(self, config: ProviderConfig) -> None:
        self._name = config.name
        self._client = openai.AsyncOpenAI(
            base_url=config.base_url,
            api_key=config.api_key or "unused",
            max_retries=0,
            timeout=openai.Timeout(READ_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS),
            # aiohttp under the SDK's httpx2 interface: reading a streamed body costs about a
            # third less CPU per token than httpx2's own transport (anyio cancel scopes and
            # h11 on every read), which is most of a relayed token's cost in the core.
            http_client=openai.DefaultAioHttpClient(),
        )

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ChatDelta, None]:
        arguments = _arguments(request)
        replying = False
        # Whether a text piece went out: the first one goes alone, at once.
        spoken = False
        try:
            # HTTP error statuses raise here, with the body read, as with `create`.
            stream = await self._client.post(
                "/chat/completions",
                body=arguments,
                cast_to=ChatCompletionChunk,
                stream=True,
                stream_cls=openai.AsyncStream[ChatCompletionChunk],
            )
            try:
                events = _EventReader()
                async with contextlib.aclosing(stream.response.aiter_bytes()) as body:
                    async for piece in body:
                        # Plain text of the chunks that came in one read goes on as one
                        # piece: they reach the run together anyway, and each piece costs
                        # the run a stored-text append and an event.
                        texts: list[str] = []
                        done = False
                        # A bad chunk ends the reply after the text read before it, as
                        # when each chunk went on by itself.
                        failure: Exception | None = None
                        for data in events.feed(piece):
                            if data.startswith(_DONE):
                                done = True
                                break
                            replying = True
                            try:
                                delta = self._delta(orjson.loads(data))
                            except Exception as exc:
                                failure = exc
                                break
                            if delta is None:
                                continue
                            if spoken and _plain_text(delta):
                                texts.append(delta.text)
                                continue
                            if texts:
                                yield ChatDelta(text="".join(texts))
                                texts = []
                            spoken = spoken or bool(delta.text)
                            yield delta
                        if texts:
                            yield ChatDelta(text="".join(texts))
                        if failure is not None:
                            raise failure
                        if done:
                            await _drain(body)
                            return
            finally:
                await stream.close()
        except openai.RateLimitError as exc:
            raise ProviderError("rate_limit_exceeded", self._status_message(exc)) from exc
        except openai.APIStatusError as exc:
            code = "invalid_prompt" if exc.status_code in (400, 404, 422) else "server_error"
            raise ProviderError(code, self._status_message(exc)) from exc
        except (openai.APIConnectionError, *_TRANSPORT_ERRORS) as exc:
            if _timed_out(exc):
                raise ProviderError(
                    "server_error", f"Provider '{self._name}' timed out: no reply in time."
                ) from exc
            what = "lost the connection mid-reply" if replying else "could not be reached"
            raise ProviderError(
                "server_error", f"Provider '{self._name}' {what}: {exc.__cause__ or exc}"
            ) from exc
        except (openai.OpenAIError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ProviderError(
                "server_error", f"Provider '{self._name}' sent a malformed reply: {exc}"
            ) from exc

    async def close(self) -> None:
        await self._client.close()

    def _status_message(self, exc: openai.APIStatusError) -> str:
        return f"Provider '{self._name}' answered HTTP {exc.status_code}: {exc.message}"

    def _delta(self, chunk: Any) -> ChatDelta | None:
        """The run's view of one `chat.completion.chunk`; None when it carries nothing."""
        if type(chunk) is not dict:
            raise ValueError(f"a stream event is not a JSON object: {chunk!r:.100}")
        error = chunk.get("error")
        if error:
            # An upstream that fails after the 200 reports it in the stream (the SDK raises
            # APIError for these).
            message = error.get("message") if isinstance(error, dict) else error
            if not message or not isinstance(message, str):
                message = "An error occurred during streaming"
            raise ProviderError(
                "server_error", f"Provider '{self._name}' reported an error: {message}"
            )
        usage = None
        counts = chunk.get("usage")
        if counts is not None:
            usage = TokenUsage(
                counts.get("prompt_tokens") or 0, counts.get("completion_tokens") or 0
            )
        choices = chunk.get("choices")
        if not choices:
            return None if usage is None else ChatDelta(usage=usage)
        choice = choices[0]
        delta = choice.get("delta") or {}
        calls = delta.get("tool_calls")
        return ChatDelta(
            text=delta.get("content") or "",
            tool_calls=_tool_calls(calls) if calls else (),
            finish_reason=choice.get("finish_reason"),
            usage=usage,
        )


def _plain_text(delta: ChatDelta) -> bool:
    """Whether a piece is text alone, which may join the text read with it."""
    return (
        bool(delta.text)
        and not delta.tool_calls
        and delta.finish_reason is None
        and delta.usage is None
    )


def _timed_out(exc: BaseException) -> bool:
    """Whether a failed request timed out, judged by the error that started it.

    The SDK's aiohttp transport reports every aiohttp connection error as a connect timeout
    (a refused connection too), so the class it raises does not tell; what it wraps does.
    """
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, (TimeoutError, aiohttp.ServerTimeoutError)):
            return True
        if isinstance(cause, aiohttp.ClientError):
            return False
        cause = cause.__cause__ or cause.__context__
    return isinstance(exc, (openai.APITimeoutError, httpx2.TimeoutException))


def _tool_calls(calls: list[Any]) -> tuple[ToolCallDelta, ...]:
    pieces = []
    for position, call in enumerate(calls):
        function = call.get("function") or {}
        index = call.get("index")
        pieces.append(
            ToolCallDelta(
                # Some OpenAI-compatible servers leave out the index of calls sent whole.
                index=position if index is None else index,
                id=call.get("id") or None,
                name=function.get("name") or None,
                arguments=function.get("arguments") or "",
            )
        )
    return tuple(pieces)


class _EventReader:
    """Cuts the body into server-sent events as it arrives; keeps only their data, as bytes.

    Follows the SSE rules the SDK's decoder follows: lines end in LF, CRLF or CR (also split
    across reads), a blank line ends an event, several `data` lines join with LF, one space
    after the colon is dropped, comments and other fields are skipped, and an event the body
    ends before finishing is dropped.
    """

    __slots__ = ("_after_cr", "_data", "_partial")

    def __init__(self) -> None:
        self._partial: list[bytes] = []
        self._data: list[bytes] = []
        self._after_cr = False

    def feed(self, piece: bytes) -> list[bytes]:
        """The data of each event this piece of the body completes."""
        if not piece:
            return []
        if self._after_cr:
            self._after_cr = False
            if piece.startswith(b"\n"):  # the end of a CRLF the last piece began
                piece = piece[1:]
                if not piece:
                    return []
        if b"\r" in piece:
            self._after_cr = piece.endswith(b"\r")
            piece = piece.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b"\n" not in piece:
            self._partial.append(piece)
            return []
        if self._partial:
            self._partial.append(piece)
            piece = b"".join(self._partial)
            self._partial.clear()
        lines = piece.split(b"\n")
        rest = lines.pop()
        if rest:
            self._partial.append(rest)
        events: list[bytes] = []
        data = self._data
        for line in lines:
            if line.startswith(b"data: "):
                data.append(line[6:])
            elif not line:
                if data:
                    events.append(data[0] if len(data) == 1 else b"\n".join(data))
                    data = []
            elif line.startswith(b"data:"):
                data.append(line[5:])
            elif line == b"data":
                data.append(b"")
        self._data = data
        return events


async def _drain(body: AsyncIterator[bytes]) -> None:
    with contextlib.suppress(TimeoutError, *_TRANSPORT_ERRORS):
        async with asyncio.timeout(DRAIN_SECONDS):
            async for _ in body:
                pass


def _arguments(request: ChatRequest) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "model": request.model,
        "messages": request.messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if request.tools:
        arguments["tools"] = request.tools
        if request.tool_choice is not None:
            arguments["tool_choice"] = request.tool_choice
        if request.parallel_tool_calls is not None:
            arguments["parallel_tool_calls"] = request.parallel_tool_calls
    optional = {
        "temperature": request.temperature,
        "top_p": request.top_p,
        "response_format": request.response_format,
        "max_completion_tokens": request.max_completion_tokens,
        "reasoning_effort": request.reasoning_effort,
    }
    arguments.update({key: value for key, value in optional.items() if value is not None})
    return arguments
