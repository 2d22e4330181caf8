"""What the run tests share: SSE parsing and spec validation, bounded polling, event names."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import openai
from harness.schema import SPEC_URI, load_spec
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from openai.types.beta.threads import Message, Run
from openai.types.beta.threads.runs import RunStep
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from compat_core.v1 import runs_pb2

TERMINAL = frozenset({"completed", "failed", "cancelled", "expired", "incomplete"})
STOPPED = TERMINAL | {"requires_action"}
POLL_MS = 25

# What a plain text reply streams, in OpenAI's order (consecutive message deltas collapsed).
TEXT_RUN_EVENTS = [
    "thread.run.created",
    "thread.run.queued",
    "thread.run.in_progress",
    "thread.run.step.created",
    "thread.run.step.in_progress",
    "thread.message.created",
    "thread.message.in_progress",
    "thread.message.delta",
    "thread.message.completed",
    "thread.run.step.completed",
    "thread.run.completed",
    "done",
]


# Server-sent events


@dataclass(frozen=True)
class SseEvent:
    event: str
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


def parse_sse(lines: Iterable[str]) -> Iterator[SseEvent]:
    """Events of an SSE body given line by line; comments (`: ping`) are skipped."""
    event = ""
    data: list[str] = []
    for line in lines:
        if line == "":
            if event or data:
                yield SseEvent(event or "message", "\n".join(data))
            event, data = "", []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
    if event or data:
        yield SseEvent(event or "message", "\n".join(data))


_FAMILIES = (
    "ThreadStreamEvent",
    "RunStreamEvent",
    "RunStepStreamEvent",
    "MessageStreamEvent",
    "ErrorEvent",
    "DoneEvent",
)


@functools.cache
def _registry() -> Registry[Any]:
    resource: Resource[Any] = Resource.from_contents(load_spec(), default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
    return registry


def _validator(pointer: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"{SPEC_URI}#{pointer}"}, registry=_registry())


@functools.cache
def event_schema_pointer(name: str) -> str:
    """The pointer of the spec's sub-schema of one stream event, found by its event name."""
    schemas = load_spec()["components"]["schemas"]
    for family in _FAMILIES:
        schema = schemas[family]
        branches = schema.get("oneOf", [schema])
        for index, branch in enumerate(branches):
            enum = branch.get("properties", {}).get("event", {}).get("enum", [])
            if name in enum:
                suffix = f"/oneOf/{index}" if "oneOf" in schema else ""
                return f"/components/schemas/{family}{suffix}"
    raise AssertionError(f"the spec has no stream event named {name!r}")


def validate_sse_event(event: SseEvent) -> None:
    """Fail unless the event is one of the spec's `AssistantStreamEvent`s, data and all."""
    data: Any = event.data if event.event == "done" else event.json()
    document = {"event": event.event, "data": data}
    for pointer in (event_schema_pointer(event.event), "/components/schemas/AssistantStreamEvent"):
        error = best_match(_validator(pointer).iter_errors(document))
        if error is not None:
            where = "".join(f"[{part!r}]" for part in error.absolute_path) or "(the event)"
            raise AssertionError(
                f"SSE event {event.event!r} does not match {pointer} at {where}: "
                f"{error.message}\ndata: {event.data[:2000]}"
            )


def collapse(names: Iterable[str]) -> list[str]:
    """Event names with runs of the same delta event merged into one (the server may batch)."""
    collapsed: list[str] = []
    for name in names:
        if collapsed and name == collapsed[-1] and name.endswith(".delta"):
            continue
        collapsed.append(name)
    return collapsed


def assert_one_open_at_a_time(events: Iterable[SseEvent]) -> None:
    """At most one message and one run step are open at any point of a stream (the Node SDK
    refuses more), and a step delta never carries a step `id` inside its details."""
    open_steps: set[str] = set()
    open_messages: set[str] = set()
    for event in events:
        name = event.event
        if name in ("done", "error") or not name.startswith("thread."):
            continue
        data = event.json()
        if name == "thread.run.step.created":
            open_steps.add(data["id"])
            assert len(open_steps) == 1, f"two steps open at once: {sorted(open_steps)}"
        elif name.startswith("thread.run.step.") and name not in (
            "thread.run.step.in_progress",
            "thread.run.step.delta",
        ):
            open_steps.discard(data["id"])
        elif name == "thread.run.step.delta":
            assert data["id"] in open_steps, f"a delta for step {data['id']} that is not open"
        elif name == "thread.message.created":
            open_messages.add(data["id"])
            assert len(open_messages) == 1, f"two messages open at once: {sorted(open_messages)}"
        elif name in ("thread.message.completed", "thread.message.incomplete"):
            open_messages.discard(data["id"])
        elif name == "thread.message.delta":
            assert data["id"] in open_messages, f"a delta for message {data['id']} not open"


def assert_openai_payloads(events: Iterable[SseEvent]) -> None:
    """Messages and tool calls come about as in OpenAI's streams, which the SDKs' helpers turn
    into their created/delta/done callbacks (see `runs.callbacks`):

    - a message is announced with no content; the first delta of each part creates it, parts
      in order from index 0; the message's end carries the text of all its deltas;
    - a tool step is announced with no calls; a call's first delta has its `id`, `type`,
      `name`, empty `arguments` and `output: null`, the deltas after it neither `id` nor `name`.
    """
    parts: dict[str, list[str]] = {}
    calls: dict[str, set[int]] = {}
    for event in events:
        name = event.event
        if name in ("thread.message.created", "thread.message.in_progress"):
            data = event.json()
            assert data["content"] == [], f"{name} announces content: {data['content']}"
            parts.setdefault(data["id"], [])
        elif name == "thread.message.delta":
            data = event.json()
            texts = parts[data["id"]]
            for piece in data["delta"]["content"]:
                index = piece["index"]
                assert index <= len(texts), f"part {index} before part {len(texts)}: {data}"
                if index == len(texts):
                    texts.append("")
                if piece["type"] == "text":
                    texts[index] += piece["text"]["value"]
        elif name in ("thread.message.completed", "thread.message.incomplete"):
            data = event.json()
            streamed = parts.get(data["id"])
            if streamed is not None:
                ended = [p["text"]["value"] for p in data["content"] if p["type"] == "text"]
                assert ended == streamed, f"{name} says {ended}, the deltas said {streamed}"
        elif name == "thread.run.step.created":
            data = event.json()
            if data["type"] == "tool_calls":
                assert data["step_details"]["tool_calls"] == [], f"{name} announces calls: {data}"
            calls[data["id"]] = set()
        elif name == "thread.run.step.delta":
            data = event.json()
            details = data["delta"]["step_details"]
            for call in details.get("tool_calls") or []:
                function = call.get("function")
                if call["index"] in calls[data["id"]]:
                    assert "id" not in call, f"a later piece of a call repeats its id: {call}"
                    assert function is None or "name" not in function, f"name again: {call}"
                    continue
                calls[data["id"]].add(call["index"])
                assert call["id"].startswith("call_"), f"a call's first piece has no id: {call}"
                assert call["type"] == "function", call
                assert function is not None, call
                first = (function.get("arguments"), function.get("output", "(absent)"))
                assert first == ("", None), f"a call's first piece has arguments: {call}"
                assert function["name"], f"a call's first piece has no name: {call}"


def sse_text(events: Iterable[SseEvent]) -> str:
    """The concatenated text of the `thread.message.delta` events."""
    pieces: list[str] = []
    for event in events:
        if event.event == "thread.message.delta":
            for part in event.json()["delta"]["content"]:
                if part["type"] == "text":
                    pieces.append(part["text"]["value"])
    return "".join(pieces)


# gRPC events


def grpc_name(event: runs_pb2.RunEvent) -> str:
    """The SSE name of a gRPC `RunEvent` (`thread_run_step_in_progress` →
    `thread.run.step.in_progress`)."""
    field = event.WhichOneof("event")
    assert field is not None, f"an event with nothing set: {event}"
    for prefix in ("thread_run_step_", "thread_message_", "thread_run_", "thread_"):
        if field.startswith(prefix):
            return prefix.replace("_", ".") + field[len(prefix) :]
    return field


def grpc_text(events: Iterable[runs_pb2.RunEvent]) -> str:
    pieces: list[str] = []
    for event in events:
        if event.WhichOneof("event") == "thread_message_delta":
            for piece in event.thread_message_delta.content:
                if piece.part.WhichOneof("part") == "text":
                    pieces.append(piece.part.text.value)
    return "".join(pieces)


# Runs and messages over the SDK


def wait_run(
    client: openai.OpenAI,
    thread_id: str,
    run_id: str,
    statuses: Iterable[str] = TERMINAL,
    timeout: float = 10.0,
) -> Run:
    """Poll the run until its status is one of `statuses`; fail after `timeout` seconds."""
    wanted = frozenset(statuses)
    deadline = time.monotonic() + timeout
    while True:
        run = client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)
        if run.status in wanted:
            return run
        if time.monotonic() > deadline:
            raise AssertionError(
                f"run {run_id} is still {run.status!r} after {timeout}s; waited for "
                f"{sorted(wanted)}"
            )
        time.sleep(POLL_MS / 1000)


def message_text(message: Message) -> str:
    """The text of a message (all its text parts)."""
    return "".join(part.text.value for part in message.content if part.type == "text")


def run_messages(client: openai.OpenAI, thread_id: str, run_id: str) -> list[Message]:
    """The messages a run wrote, oldest first."""
    page = client.beta.threads.messages.list(thread_id, order="asc", run_id=run_id, limit=100)
    return [m for m in page.data if m.run_id == run_id]


def thread_texts(client: openai.OpenAI, thread_id: str) -> list[tuple[str, str]]:
    """(role, text) of every message of a thread, oldest first."""
    page = client.beta.threads.messages.list(thread_id, order="asc", limit=100)
    return [(m.role, message_text(m)) for m in page.data]


def run_steps(client: openai.OpenAI, thread_id: str, run_id: str) -> list[RunStep]:
    """A run's steps, oldest first."""
    page = client.beta.threads.runs.steps.list(run_id, thread_id=thread_id, order="asc")
    return list(page.data)


def assert_nothing_left_open(client: openai.OpenAI, thread_id: str, run: Run) -> None:
    """A run that ended leaves no message or step in progress."""
    assert run.status in TERMINAL, f"the run is {run.status}"
    for message in run_messages(client, thread_id, run.id):
        assert message.status != "in_progress", f"message {message.id} is left in_progress"
    for step in run_steps(client, thread_id, run.id):
        assert step.status != "in_progress", f"step {step.id} is left in_progress"


def assert_usage_adds_up(client: openai.OpenAI, thread_id: str, run: Run) -> None:
    """Every step of a finished run has usage, and the run's is their sum."""
    assert run.usage is not None, f"run {run.id} ({run.status}) has no usage"
    totals = [0, 0, 0]
    for step in run_steps(client, thread_id, run.id):
        assert step.usage is not None, f"step {step.id} ({step.type}) has no usage"
        totals[0] += step.usage.prompt_tokens
        totals[1] += step.usage.completion_tokens
        totals[2] += step.usage.total_tokens
    usage = run.usage
    assert [usage.prompt_tokens, usage.completion_tokens, usage.total_tokens] == totals


def function_calls(step: RunStep) -> Sequence[Any]:
    """The function tool calls of a `tool_calls` step."""
    details = step.step_details
    assert details.type == "tool_calls", f"step {step.id} is a {details.type} step"
    return [call for call in details.tool_calls if call.type == "function"]
