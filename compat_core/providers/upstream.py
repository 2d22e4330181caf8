"""OpenAI-compatible upstreams (OpenAI, Ollama, vLLM, llama.cpp…) through the `openai` SDK.

Failures become `ProviderError`s with the run's `last_error` codes and a message that says
what the upstream did, so a run never hangs and the user can tell a typo from an outage.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai

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


class UpstreamProvider(ChatProvider):
    """One configured provider; one pooled SDK client for all its runs."""

    def __init__(self, config: ProviderConfig) -> None:
        self._name = config.name
        self._client = openai.AsyncOpenAI(
            base_url=config.base_url,
            api_key=config.api_key or "unused",
            max_retries=0,
            timeout=openai.Timeout(READ_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS),
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
        arguments = _arguments(request)
        replying = False
        try:
            stream = await self._client.chat.completions.create(**arguments)
            async with stream:
                async for chunk in stream:
                    replying = True
                    usage = None
                    if chunk.usage is not None:
                        usage = TokenUsage(
                            chunk.usage.prompt_tokens or 0, chunk.usage.completion_tokens or 0
                        )
                    if not chunk.choices:
                        if usage is not None:
                            yield ChatDelta(usage=usage)
                        continue
                    choice = chunk.choices[0]
                    delta = choice.delta
                    calls = tuple(
                        ToolCallDelta(
                            index=call.index,
                            id=call.id or None,
                            name=(call.function.name or None) if call.function else None,
                            arguments=(call.function.arguments or "") if call.function else "",
                        )
                        for call in delta.tool_calls or ()
                    )
                    yield ChatDelta(
                        text=delta.content or "",
                        tool_calls=calls,
                        finish_reason=choice.finish_reason,
                        usage=usage,
                    )
        except openai.RateLimitError as exc:
            raise ProviderError("rate_limit_exceeded", self._status_message(exc)) from exc
        except openai.APIStatusError as exc:
            code = "invalid_prompt" if exc.status_code in (400, 404, 422) else "server_error"
            raise ProviderError(code, self._status_message(exc)) from exc
        except openai.APITimeoutError as exc:
            raise ProviderError(
                "server_error", f"Provider '{self._name}' timed out: no reply in time."
            ) from exc
        except openai.APIConnectionError as exc:
            what = "lost the connection mid-reply" if replying else "could not be reached"
            raise ProviderError(
                "server_error", f"Provider '{self._name}' {what}: {exc.__cause__ or exc}"
            ) from exc
        except (openai.OpenAIError, ValueError, KeyError, TypeError) as exc:
            raise ProviderError(
                "server_error", f"Provider '{self._name}' sent a malformed reply: {exc}"
            ) from exc

    async def close(self) -> None:
        await self._client.close()

    def _status_message(self, exc: openai.APIStatusError) -> str:
        return f"Provider '{self._name}' answered HTTP {exc.status_code}: {exc.message}"


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
