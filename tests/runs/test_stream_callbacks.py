"""Every callback of both SDKs' stream helpers, counted, against OpenAI's event sequence (issue 15).

OpenAI's quick starts print "assistant >" from `on_text_created` / `.on('textCreated')` and a
tool call's arguments from the tool-call deltas: the helpers derive those from the payloads
(see `runs.callbacks`), so a payload shaped differently from OpenAI's loses or adds
callbacks. Four runs, each streamed by Python's `AssistantEventHandler` and by Node's
`AssistantStream`: a text reply, client tool calls answered through
`submit_tool_outputs_stream`, a server-side tool, and a run cancelled while it streams.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import openai
import pytest
from harness.server import ServerThread
from openai import AssistantEventHandler
from openai.types.beta import AssistantStreamEvent
from openai.types.beta.threads import (
    ImageFile,
    Message,
    MessageDelta,
    Text,
    TextDelta,
)
from openai.types.beta.threads.runs import RunStep, RunStepDelta, ToolCall, ToolCallDelta
from typing_extensions import override

from runs.callbacks import Observed, Sdk, assert_counts, openai_counts
from runs.nodejs import run_script
from runs.support import function_calls, message_text, run_messages, run_steps
from runs.tools import GET_TIME, GET_WEATHER
from runs.upstream import ScriptedModel, stall

TEXT = "Streams that the helpers fully understand"
CLIENT_CALLS = (
    '/call get_weather {"city": "Paris", "unit": "celsius"}\n/call get_time {"tz": "UTC"}'
)
SERVER_CALL = '/call calculator {"expression": "6 * 7"}'
PARTIAL = ("Partial ", "answer")


class Counting(AssistantEventHandler):
    """Counts every callback of the Python helper and keeps what each was given."""

    def __init__(self, on_text: Callable[[Counting, str], None] | None = None) -> None:
        super().__init__()
        self.seen = Observed()
        self._on_text = on_text

    def _count(self, name: str) -> None:
        self.seen.counts[name] += 1

    @override
    def on_event(self, event: AssistantStreamEvent) -> None:
        self.seen.events[event.event] += 1

    @override
    def on_end(self) -> None:
        self._count("end")
        run = self.current_run
        if run is not None:
            self.seen.run = (run.id, run.status)

    @override
    def on_exception(self, exception: Exception) -> None:
        self._count("exception")

    @override
    def on_timeout(self) -> None:
        self._count("timeout")

    @override
    def on_text_created(self, text: Text) -> None:
        self._count("text_created")
        self.seen.created_texts.append(text.value)

    @override
    def on_text_delta(self, delta: TextDelta, snapshot: Text) -> None:
        self._count("text_delta")
        self.seen.text += delta.value or ""
        if self._on_text is not None:
            self._on_text(self, snapshot.value)

    @override
    def on_text_done(self, text: Text) -> None:
        self._count("text_done")
        self.seen.done_texts.append(text.value)

    @override
    def on_image_file_done(self, image_file: ImageFile) -> None:
        self._count("image_file_done")

    @override
    def on_message_created(self, message: Message) -> None:
        self._count("message_created")

    @override
    def on_message_delta(self, delta: MessageDelta, snapshot: Message) -> None:
        self._count("message_delta")

    @override
    def on_message_done(self, message: Message) -> None:
        self._count("message_done")
        self.seen.done_messages.append((message.id, message.status, message_text(message)))

    @override
    def on_run_step_created(self, run_step: RunStep) -> None:
        self._count("run_step_created")

    @override
    def on_run_step_delta(self, delta: RunStepDelta, snapshot: RunStep) -> None:
        self._count("run_step_delta")

    @override
    def on_run_step_done(self, run_step: RunStep) -> None:
        self._count("run_step_done")
        self.seen.done_steps.append((run_step.type, run_step.status))

    @override
    def on_tool_call_created(self, tool_call: ToolCall) -> None:
        self._count("tool_call_created")
        assert tool_call.type == "function"
        self.seen.created_arguments[tool_call.id] = tool_call.function.arguments
        self.seen.delta_arguments[tool_call.id] = ""

    @override
    def on_tool_call_delta(self, delta: ToolCallDelta, snapshot: ToolCall) -> None:
        self._count("tool_call_delta")
        if delta.type == "function" and delta.function is not None:
            self.seen.delta_arguments[snapshot.id] += delta.function.arguments or ""

    @override
    def on_tool_call_done(self, tool_call: ToolCall) -> None:
        self._count("tool_call_done")
        assert tool_call.type == "function"
        function = tool_call.function
        self.seen.done_calls.append((tool_call.id, function.name, function.arguments))


# The four runs: how each is set up, and what its streams must report.


@dataclass
class Case:
    """A thread and assistant ready to stream one of the runs."""

    thread_id: str
    assistant_id: str


def text_case(client: openai.OpenAI) -> Case:
    # No tools: the reply is stored with the run's start and announced with its first piece.
    assistant = client.beta.assistants.create(model="builtin/echo")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": TEXT}])
    return Case(thread.id, assistant.id)


def client_tool_case(client: openai.OpenAI) -> Case:
    assistant = client.beta.assistants.create(model="builtin/echo", tools=[GET_WEATHER, GET_TIME])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": CLIENT_CALLS}])
    return Case(thread.id, assistant.id)


def server_tool_case(client: openai.OpenAI) -> Case:
    assistant = client.beta.assistants.create(
        model="builtin/echo", tools=[{"type": "function", "function": {"name": "calculator"}}]
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": SERVER_CALL}])
    return Case(thread.id, assistant.id)


def cancel_case(client: openai.OpenAI, scripted: ScriptedModel) -> Case:
    # The upstream sends the pieces, then nothing until the run lets it go: the cancel comes
    # while the reply is open.
    scripted.push(stall(*PARTIAL))
    assistant = client.beta.assistants.create(model=scripted.model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "talk"}])
    return Case(thread.id, assistant.id)


def _check_text_deltas(seen: Observed) -> int:
    """The number of text deltas; the text part was created with the first one's text."""
    deltas = seen.events["thread.message.delta"]
    assert deltas >= 1, f"no text deltas: {dict(seen.events)}"
    created = seen.created_texts
    assert len(created) == 1, f"text created {len(created)} times: {created}"
    assert created[0], "the text part was created without the first piece of text"
    assert seen.text.startswith(created[0])
    return deltas


def check_text_run(client: openai.OpenAI, case: Case, seen: Observed, sdk: Sdk) -> None:
    deltas = _check_text_deltas(seen)
    expected = openai_counts(sdk, messages=1, text_deltas=deltas, steps_created=1, steps_done=1)
    assert_counts(seen, expected)
    run_id, status = seen.run
    assert status == "completed"
    [stored] = run_messages(client, case.thread_id, run_id)
    assert seen.text == TEXT
    assert seen.done_texts == [message_text(stored)] == [TEXT]
    assert seen.done_messages == [(stored.id, "completed", TEXT)]
    assert seen.done_steps == [("message_creation", "completed")]


def check_client_tool_stream(client: openai.OpenAI, case: Case, seen: Observed, sdk: Sdk) -> None:
    """The first stream, up to requires_action. The calls are read from the stored step: by
    the time Node's report is checked, their outputs are submitted and the run has ended."""
    run_id, status = seen.run
    assert status == "requires_action"
    tool_step = run_steps(client, case.thread_id, run_id)[0]
    calls = function_calls(tool_step)
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    # Each call's first delta names it; its arguments come in the deltas after it.
    pieces = seen.events["thread.run.step.delta"] - len(calls)
    assert pieces >= len(calls), f"arguments not streamed: {dict(seen.events)}"
    expected = openai_counts(sdk, steps_created=1, calls=len(calls), argument_deltas=pieces)
    assert_counts(seen, expected)
    assert seen.delta_arguments == {c.id: c.function.arguments for c in calls}
    assert seen.created_arguments == {c.id: "" for c in calls}
    assert seen.done_calls == [(c.id, c.function.name, c.function.arguments) for c in calls]
    assert json.loads(calls[0].function.arguments) == {"city": "Paris", "unit": "celsius"}


def check_submitted_stream(client: openai.OpenAI, case: Case, seen: Observed, sdk: Sdk) -> None:
    """The stream of `submit_tool_outputs_stream`: the tool step ends, the reply follows."""
    deltas = _check_text_deltas(seen)
    expected = openai_counts(sdk, messages=1, text_deltas=deltas, steps_created=1, steps_done=2)
    assert_counts(seen, expected)
    run_id, status = seen.run
    assert status == "completed"
    answer = "get_weather returned: out:get_weather\nget_time returned: out:get_time"
    [stored] = run_messages(client, case.thread_id, run_id)
    assert seen.text == message_text(stored) == answer
    assert seen.done_texts == [answer]
    assert seen.done_messages == [(stored.id, "completed", answer)]
    assert seen.done_steps == [("tool_calls", "completed"), ("message_creation", "completed")]


def check_server_tool_run(client: openai.OpenAI, case: Case, seen: Observed, sdk: Sdk) -> None:
    deltas = _check_text_deltas(seen)
    pieces = seen.events["thread.run.step.delta"] - 1
    assert pieces >= 1, f"arguments not streamed: {dict(seen.events)}"
    expected = openai_counts(
        sdk,
        messages=1,
        text_deltas=deltas,
        steps_created=2,
        steps_done=2,
        calls=1,
        argument_deltas=pieces,
        tool_step_done_in_stream=True,
    )
    assert_counts(seen, expected)
    run_id, status = seen.run
    assert status == "completed"
    tool_step, _ = run_steps(client, case.thread_id, run_id)
    assert tool_step.step_details.type == "tool_calls"
    [call] = tool_step.step_details.tool_calls
    assert call.type == "function"
    assert call.function.output == "42"
    assert seen.created_arguments == {call.id: ""}
    assert seen.delta_arguments == {call.id: call.function.arguments}
    assert set(seen.done_calls) == {(call.id, "calculator", call.function.arguments)}
    [stored] = run_messages(client, case.thread_id, run_id)
    assert seen.text == message_text(stored) == "calculator returned: 42"
    assert seen.done_texts == ["calculator returned: 42"]
    assert seen.done_steps == [("tool_calls", "completed"), ("message_creation", "completed")]


def check_cancelled_run(client: openai.OpenAI, case: Case, seen: Observed, sdk: Sdk) -> None:
    deltas = _check_text_deltas(seen)
    expected = openai_counts(sdk, messages=1, text_deltas=deltas, steps_created=1, steps_done=1)
    assert_counts(seen, expected)
    run_id, status = seen.run
    assert status == "cancelled"
    assert seen.events["thread.run.cancelled"] == 1
    partial = "".join(PARTIAL)
    [stored] = run_messages(client, case.thread_id, run_id)
    assert stored.status == "incomplete"
    assert seen.text == message_text(stored) == partial
    assert seen.done_texts == [partial]
    assert seen.done_messages == [(stored.id, "incomplete", partial)]
    assert seen.done_steps == [("message_creation", "cancelled")]


# Python


def _stream(
    client: openai.OpenAI, case: Case, on_text: Callable[[Counting, str], None] | None = None
) -> Observed:
    handler = Counting(on_text)
    with client.beta.threads.runs.stream(
        thread_id=case.thread_id, assistant_id=case.assistant_id, event_handler=handler
    ) as stream:
        stream.until_done()
    return handler.seen


def test_python_text_run(client: openai.OpenAI) -> None:
    case = text_case(client)
    check_text_run(client, case, _stream(client, case), "python")


def test_python_client_tool_run_and_submit_stream(client: openai.OpenAI) -> None:
    case = client_tool_case(client)
    seen = _stream(client, case)
    check_client_tool_stream(client, case, seen, "python")
    run_id = seen.run[0]
    outputs = [
        {"tool_call_id": call_id, "output": f"out:{name}"} for call_id, name, _ in seen.done_calls
    ]
    handler = Counting()
    with client.beta.threads.runs.submit_tool_outputs_stream(
        run_id=run_id,
        thread_id=case.thread_id,
        tool_outputs=outputs,  # type: ignore[arg-type]
        event_handler=handler,
    ) as stream:
        stream.until_done()
    check_submitted_stream(client, case, handler.seen, "python")


def test_python_server_tool_run(client: openai.OpenAI) -> None:
    case = server_tool_case(client)
    check_server_tool_run(client, case, _stream(client, case), "python")


def test_python_cancelled_run(client: openai.OpenAI, scripted: ScriptedModel) -> None:
    case = cancel_case(client, scripted)
    answers: list[str] = []

    def cancel_once_all_is_there(handler: Counting, text: str) -> None:
        run = handler.current_run
        if text == "".join(PARTIAL) and not answers and run is not None:
            answers.append(client.beta.threads.runs.cancel(run.id, thread_id=case.thread_id).status)

    seen = _stream(client, case, cancel_once_all_is_there)
    assert answers == ["cancelling"]
    check_cancelled_run(client, case, seen, "python")


# Node


@pytest.mark.slow
def test_node_counts_every_callback(
    node: str, runs_server: ServerThread, client: openai.OpenAI, scripted: ScriptedModel
) -> None:
    cases = {
        "text": text_case(client),
        "client_tool": client_tool_case(client),
        "server_tool": server_tool_case(client),
        "cancel": cancel_case(client, scripted),
    }
    plan: list[dict[str, Any]] = [
        {"name": name, "threadId": case.thread_id, "assistantId": case.assistant_id}
        for name, case in cases.items()
    ]
    plan[1]["submitOutputs"] = True
    plan[3]["cancelAtText"] = "".join(PARTIAL)

    output = run_script(
        node,
        "callbacks.mjs",
        runs_server.base_url,
        json.dumps(plan),
        env={"OPENAI_API_KEY": "test"},
    ).ok()

    def seen(name: str, stream: str = "stream") -> Observed:
        return Observed.from_node(output[name][stream])

    check_text_run(client, cases["text"], seen("text"), "node")
    check_client_tool_stream(client, cases["client_tool"], seen("client_tool"), "node")
    check_submitted_stream(client, cases["client_tool"], seen("client_tool", "submitted"), "node")
    check_server_tool_run(client, cases["server_tool"], seen("server_tool"), "node")
    assert output["cancel"]["cancelAnswer"] == "cancelling"
    check_cancelled_run(client, cases["cancel"], seen("cancel"), "node")
