"""What the model reads: instructions, the whole thread in order, then this run's own turns.

The seed this project replaces sent only the last message. Here the model gets the system
instructions, every earlier message of the thread (trimmed by the run's truncation strategy
and prompt budget), and the tool calls and replies this run has made so far, so a resumed or
tool-using run continues exactly where it stopped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from compat_core.engine.hosted import HostedTools
from compat_core.tools import Tool
from compat_core.v1 import common_pb2, messages_pb2, runs_pb2

# Tokens are estimated, not counted: a tokenizer per upstream model is not ours to know. Four
# characters a token is the usual rule of thumb for English and code; per message we add the
# few tokens chat formats spend on roles and separators.
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4


@dataclass(frozen=True)
class Prompt:
    """The chat messages for one model call and their estimated size."""

    messages: list[dict[str, Any]]
    estimated_tokens: int


class PromptTooLong(Exception):
    """Even the newest message alone exceeds `max_prompt_tokens`."""


def estimate_tokens(message: dict[str, Any]) -> int:
    text = orjson.dumps(message.get("content") or "").decode()
    extra = orjson.dumps(message.get("tool_calls")).decode() if message.get("tool_calls") else ""
    return TOKENS_PER_MESSAGE + math.ceil((len(text) + len(extra)) / CHARS_PER_TOKEN)


def build_prompt(
    run: runs_pb2.Run,
    thread_messages: Sequence[messages_pb2.Message],
    steps: Sequence[runs_pb2.RunStep],
    hosted: HostedTools,
) -> Prompt:
    """Assemble the prompt for the next model call of `run`."""
    own = {m.id: m for m in thread_messages if m.run_id == run.id}
    history = [chat_message(m) for m in thread_messages if m.run_id != run.id]
    turns = _run_turns(steps, own, hosted)
    system = [{"role": "system", "content": run.instructions}] if run.instructions else []

    strategy = run.truncation_strategy
    if strategy.type == runs_pb2.TRUNCATION_TYPE_LAST_MESSAGES and strategy.HasField(
        "last_messages"
    ):
        history = history[-strategy.last_messages :] if strategy.last_messages else []

    fixed = sum(estimate_tokens(m) for m in (*system, *turns))
    sizes = [estimate_tokens(m) for m in history]
    if run.HasField("max_prompt_tokens"):
        budget = run.max_prompt_tokens - fixed
        # Drop the oldest turns first; the newest message is what the run answers.
        while len(history) > 1 and sum(sizes) > budget:
            history.pop(0)
            sizes.pop(0)
        if sum(sizes) > budget:
            raise PromptTooLong
    messages = [*system, *history, *turns]
    return Prompt(messages=messages, estimated_tokens=fixed + sum(sizes))


def chat_message(message: messages_pb2.Message) -> dict[str, Any]:
    """A thread message in Chat Completions form; text alone stays a plain string."""
    role = "assistant" if message.role == messages_pb2.MESSAGE_ROLE_ASSISTANT else "user"
    parts: list[dict[str, Any]] = []
    for part in message.content:
        kind = part.WhichOneof("part")
        if kind == "text":
            parts.append({"type": "text", "text": part.text.value})
        elif kind == "image_url":
            image: dict[str, Any] = {"url": part.image_url.url}
            if part.image_url.detail:
                image["detail"] = _DETAIL[part.image_url.detail]
            parts.append({"type": "image_url", "image_url": image})
        elif kind == "image_file":
            parts.append({"type": "text", "text": f"[image file {part.image_file.file_id}]"})
        elif kind == "refusal":
            parts.append({"type": "text", "text": part.refusal})
    for attachment in message.attachments:
        # On a line of its own: run into the text, the note would change its last line (a
        # `/call` line of `builtin/echo`'s, say, whose arguments would no longer parse).
        parts.append({"type": "text", "text": f"\n[attached file {attachment.file_id}]"})
    if role == "assistant" or all(p["type"] == "text" for p in parts):
        return {"role": role, "content": "".join(p.get("text", "") for p in parts)}
    return {"role": role, "content": parts}


def _run_turns(
    steps: Sequence[runs_pb2.RunStep], own: dict[str, messages_pb2.Message], hosted: HostedTools
) -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = []
    # Calls of each hosted tool so far: a stored call is shown as the `ordinal`-th of its kind.
    ordinals: dict[str, int] = {}
    for step in steps:
        kind = step.step_details.WhichOneof("kind")
        if kind == "message_creation":
            message = own.get(step.step_details.message_creation.message_id)
            if message is not None:
                turns.append(chat_message(message))
        elif kind == "tool_calls":
            calls: list[dict[str, Any]] = []
            outputs: list[dict[str, Any]] = []
            for call in step.step_details.tool_calls.tool_calls:
                call_kind = call.WhichOneof("kind")
                tool = hosted.get(call_kind)
                if call_kind == "function":
                    name, arguments = call.function.name, call.function.arguments
                    output = call.function.output if call.function.HasField("output") else None
                elif tool is not None:
                    ordinal = ordinals.get(tool.kind, 0)
                    ordinals[tool.kind] = ordinal + 1
                    name = tool.kind
                    arguments, output = tool.replay(call, ordinal)
                else:
                    continue
                calls.append(
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": name, "arguments": arguments},
                    }
                )
                if output is not None:
                    outputs.append({"role": "tool", "tool_call_id": call.id, "content": output})
            if calls:
                turns.append({"role": "assistant", "content": None, "tool_calls": calls})
                turns.extend(outputs)
    return turns


def chat_tools(
    tools: Sequence[common_pb2.Tool], registry: dict[str, Tool], hosted: HostedTools
) -> list[dict[str, Any]]:
    """Function tools for the upstream, in the run's order: a registered tool named alone gets
    its definition, a hosted tool the function it is offered as."""
    result: list[dict[str, Any]] = []
    for entry in tools:
        kind = entry.WhichOneof("kind")
        hosted_tool = hosted.get(kind)
        if hosted_tool is not None:
            result.append({"type": "function", "function": hosted_tool.function(entry)})
            continue
        if kind != "function":
            continue  # a hosted tool this core does not run: nothing to offer
        function = entry.function
        known = registry.get(function.name)
        definition: dict[str, Any] = {"name": function.name}
        if function.HasField("description"):
            definition["description"] = function.description
        elif known is not None and known.description:
            definition["description"] = known.description
        if function.HasField("parameters_json"):
            definition["parameters"] = orjson.loads(function.parameters_json)
        elif known is not None:
            definition["parameters"] = known.parameters
        if function.HasField("strict"):
            definition["strict"] = function.strict
        result.append({"type": "function", "function": definition})
    return result


def chat_tool_choice(
    choice: runs_pb2.ToolChoice, hosted: HostedTools, *, tools_called: bool
) -> str | dict[str, Any] | None:
    """The run's tool choice for the next model call.

    A choice that forces a tool call (`required`, or a named tool) holds until the run has
    called tools: it says what the model must do before it answers, and forcing every later
    call too would keep a model whose tools the server runs calling them until the run's
    turn limit. From then on the model chooses (`auto`).
    """
    forced = (
        choice.WhichOneof("choice") == "tool" or choice.mode == runs_pb2.TOOL_CHOICE_MODE_REQUIRED
    )
    if forced and tools_called:
        return "auto"
    if choice.WhichOneof("choice") == "tool":
        named = choice.tool
        if named.type == "function":
            return {"type": "function", "function": {"name": named.function_name}}
        tool = hosted.get(named.type)
        if tool is not None:
            return {"type": "function", "function": {"name": tool.kind}}
        return None
    return _TOOL_CHOICE.get(choice.mode)


def chat_response_format(value: common_pb2.ResponseFormat) -> dict[str, Any] | None:
    if value.type == common_pb2.RESPONSE_FORMAT_TYPE_TEXT:
        return {"type": "text"}
    if value.type == common_pb2.RESPONSE_FORMAT_TYPE_JSON_OBJECT:
        return {"type": "json_object"}
    if value.type == common_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA:
        schema = value.json_schema
        spec: dict[str, Any] = {"name": schema.name}
        if schema.HasField("description"):
            spec["description"] = schema.description
        if schema.HasField("schema_json"):
            spec["schema"] = orjson.loads(schema.schema_json)
        if schema.HasField("strict"):
            spec["strict"] = schema.strict
        return {"type": "json_schema", "json_schema": spec}
    return None


_DETAIL = {
    messages_pb2.IMAGE_DETAIL_AUTO: "auto",
    messages_pb2.IMAGE_DETAIL_LOW: "low",
    messages_pb2.IMAGE_DETAIL_HIGH: "high",
}
_TOOL_CHOICE = {
    runs_pb2.TOOL_CHOICE_MODE_NONE: "none",
    runs_pb2.TOOL_CHOICE_MODE_AUTO: "auto",
    runs_pb2.TOOL_CHOICE_MODE_REQUIRED: "required",
}
