"""What the run engine asks of a model, whichever provider serves it.

Requests and replies use OpenAI's Chat Completions vocabulary (messages, tools, tool calls),
because every provider we serve speaks it; the engine never sees a provider's wire format.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ChatRequest:
    """One model call: the prompt and the sampling settings of the run."""

    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    response_format: dict[str, Any] | None = None
    max_completion_tokens: int | None = None
    reasoning_effort: str | None = None


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of one tool call: `id` and `name` come in its first piece only."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True)
class TokenUsage:
    """Tokens of one model call."""

    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class ChatDelta:
    """A piece of the reply as it arrives."""

    text: str = ""
    tool_calls: tuple[ToolCallDelta, ...] = ()
    finish_reason: str | None = None
    usage: TokenUsage | None = None


class ProviderError(Exception):
    """A model call that failed; `code` is the run's `last_error.code`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ChatProvider(ABC):
    """Streams a chat completion. Closing the generator (or cancelling its reader) aborts the
    upstream request."""

    @abstractmethod
    def stream(self, request: ChatRequest) -> AsyncGenerator[ChatDelta, None]:
        """The reply's pieces in order; raises ProviderError when the call fails."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections."""
