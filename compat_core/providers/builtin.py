"""`builtin/echo`: an offline, deterministic model, so the server is useful with no network.

What it answers, given the conversation it receives:

- The newest message is a tool result: it reports every result of that round, one line each,
  `name returned: output`. A file_search result is cited instead, as a model is asked to:
  each file found gives a line with the first line of its text, a space and its citation
  marker (`Zebracorns eat clover. 【0:0†care.md】`), which the run turns into a
  `file_citation` annotation; a search that found nothing is reported like any other result.
- The newest user message has lines `/call NAME {json arguments}` naming tools the run offers:
  it calls those tools (several lines make parallel calls) with those arguments. A run with
  the file_search tool offers it as a function named `file_search`, so
  `/call file_search {"query": "zebracorn diet"}` searches the assistant's and the thread's
  vector stores. With the code_interpreter tool,
  `/call code_interpreter {"code": "print(6 * 7)"}` runs that code (JSON-escaped, on one line)
  in the thread's sandboxed session, and `/call code_interpreter print(6 * 7)` runs the rest of
  the line as it is. The reply reports what the code printed, the images it showed and the
  files it wrote as `sandbox:/mnt/data/…` links, which become `file_path` annotations.
- Otherwise it repeats the newest user message's text verbatim (`(no text)` for a message
  with none).

Replies stream a word at a time; usage counts whitespace-separated words as tokens. It honours
`max_completion_tokens` (stopping with `finish_reason="length"`) and `tool_choice="none"`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from typing import Any

import orjson

from compat_core import ids
from compat_core.providers.base import (
    ChatDelta,
    ChatProvider,
    ChatRequest,
    ProviderError,
    TokenUsage,
    ToolCallDelta,
)
from compat_core.retrieval.citations import labelled_results

_PIECE = re.compile(r"\s*\S+\s*|\s+")
_CALL = re.compile(r"^/call\s+(\S+)\s*(.*)$")
ARGUMENT_PIECE = 8


class EchoProvider(ChatProvider):
    """Serves `builtin/echo`."""

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ChatDelta, None]:
        if request.model != "echo":
            raise ProviderError("invalid_prompt", f"builtin has no model '{request.model}'")
        prompt_tokens = sum(_count(_text_of(m)) for m in request.messages)
        calls = _requested_calls(request)
        if calls:
            for index, (name, arguments) in enumerate(calls):
                call_id = ids.new_id(ids.CALL)
                pieces = [
                    arguments[i : i + ARGUMENT_PIECE]
                    for i in range(0, len(arguments), ARGUMENT_PIECE)
                ] or [""]
                yield ChatDelta(tool_calls=(ToolCallDelta(index, call_id, name, pieces[0]),))
                for piece in pieces[1:]:
                    yield ChatDelta(tool_calls=(ToolCallDelta(index, arguments=piece),))
            yield ChatDelta(
                finish_reason="tool_calls",
                usage=TokenUsage(prompt_tokens, sum(_count(a) for _, a in calls)),
            )
            return
        reply = _reply(request.messages)
        limit = request.max_completion_tokens
        produced = 0
        for piece in _PIECE.findall(reply):
            if limit is not None and produced >= limit:
                yield ChatDelta(finish_reason="length", usage=TokenUsage(prompt_tokens, produced))
                return
            produced += 1
            yield ChatDelta(text=piece)
        yield ChatDelta(finish_reason="stop", usage=TokenUsage(prompt_tokens, produced))

    async def close(self) -> None:
        """Nothing to release: the model lives in this process."""


def _requested_calls(request: ChatRequest) -> list[tuple[str, str]]:
    if request.tool_choice == "none" or not request.messages:
        return []
    last = request.messages[-1]
    if last.get("role") != "user":
        return []
    offered = {t["function"]["name"] for t in request.tools if t.get("type") == "function"}
    calls: list[tuple[str, str]] = []
    for line in _text_of(last).splitlines():
        match = _CALL.match(line.strip())
        if match and match.group(1) in offered:
            arguments = match.group(2).strip() or "{}"
            try:
                orjson.loads(arguments)
            except orjson.JSONDecodeError:
                arguments = orjson.dumps({"input": arguments}).decode()
            calls.append((match.group(1), arguments))
    if request.parallel_tool_calls is False:
        calls = calls[:1]
    return calls


def _reply(messages: list[dict[str, Any]]) -> str:
    if messages and messages[-1].get("role") == "tool":
        names = {
            call["id"]: call["function"]["name"]
            for m in messages
            if m.get("role") == "assistant"
            for call in m.get("tool_calls") or ()
        }
        results: list[str] = []
        for message in reversed(messages):
            if message.get("role") != "tool":
                break
            name = names.get(message.get("tool_call_id", ""), "tool")
            output = _text_of(message)
            cited = labelled_results(output)
            if cited:
                results.append("\n".join(f"{_first_line(text)} {marker}" for marker, text in cited))
            else:
                results.append(f"{name} returned: {output}")
        return "\n".join(reversed(results))
    for message in reversed(messages):
        if message.get("role") == "user":
            return _text_of(message) or "(no text)"
    return "(no text)"


def _text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if part.get("type") == "text")
    return ""


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _count(text: str) -> int:
    return len(text.split())
