"""Function tools: the client's (requires_action and tool outputs) and the server's own."""

from __future__ import annotations

import json

import openai
import pytest
from harness import assert_api_error
from openai import AssistantEventHandler
from openai.types.beta import Assistant, AssistantStreamEvent
from openai.types.beta.threads import Run, Text, TextDelta
from openai.types.beta.threads.runs import ToolCall
from typing_extensions import override

from runs.support import (
    POLL_MS,
    assert_usage_adds_up,
    collapse,
    function_calls,
    message_text,
    run_messages,
    run_steps,
)

WEATHER_CALL = '/call get_weather {"city": "Paris", "unit": "celsius"}'
TIME_CALL = '/call get_time {"tz": "Europe/Rome"}'


class ToolRecorder(AssistantEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []
        self.deltas: list[str] = []
        self.tool_calls_done: list[ToolCall] = []

    @override
    def on_event(self, event: AssistantStreamEvent) -> None:
        self.events.append(event.event)

    @override
    def on_text_delta(self, delta: TextDelta, snapshot: Text) -> None:
        self.deltas.append(delta.value or "")

    @override
    def on_tool_call_done(self, tool_call: ToolCall) -> None:
        self.tool_calls_done.append(tool_call)


def _requires_action(
    client: openai.OpenAI, assistant: Assistant, text: str, **kwargs: object
) -> tuple[str, Run]:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": text}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        poll_interval_ms=POLL_MS,
        **kwargs,  # type: ignore[arg-type]
    )
    assert run.status == "requires_action", (run.status, run.last_error)
    return thread.id, run


def _pending(run: Run) -> list[tuple[str, str, dict[str, object]]]:
    """(id, name, arguments) of the calls a run waits for."""
    assert run.required_action is not None
    assert run.required_action.type == "submit_tool_outputs"
    return [
        (call.id, call.function.name, json.loads(call.function.arguments))
        for call in run.required_action.submit_tool_outputs.tool_calls
    ]


# The client's tools


def test_client_tool_call_then_submit_and_poll(
    client: openai.OpenAI, echo_assistant: Assistant
) -> None:
    thread_id, run = _requires_action(client, echo_assistant, WEATHER_CALL)
    [(call_id, name, arguments)] = _pending(run)
    assert call_id.startswith("call_")
    assert name == "get_weather"
    assert arguments == {"city": "Paris", "unit": "celsius"}
    assert run_messages(client, thread_id, run.id) == []  # a call is not a message
    [step] = run_steps(client, thread_id, run.id)
    assert step.type == "tool_calls"
    assert step.status == "in_progress"
    [call] = function_calls(step)
    assert call.id == call_id
    assert call.function.output is None

    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread_id,
        tool_outputs=[{"tool_call_id": call_id, "output": "22C and sunny"}],
        poll_interval_ms=POLL_MS,
    )
    assert done.status == "completed", done.last_error
    assert done.required_action is None
    assert_usage_adds_up(client, thread_id, done)
    [reply] = run_messages(client, thread_id, run.id)
    assert message_text(reply) == "get_weather returned: 22C and sunny"

    tool_step, message_step = run_steps(client, thread_id, run.id)
    assert tool_step.id == step.id
    assert tool_step.status == "completed"
    [answered] = function_calls(tool_step)
    assert (answered.id, answered.function.output) == (call_id, "22C and sunny")
    assert message_step.type == "message_creation"
    assert message_step.step_details.type == "message_creation"
    assert message_step.step_details.message_creation.message_id == reply.id


def test_submit_tool_outputs_stream(client: openai.OpenAI, echo_assistant: Assistant) -> None:
    thread_id, run = _requires_action(client, echo_assistant, WEATHER_CALL)
    [(call_id, _, _)] = _pending(run)
    recorder = ToolRecorder()
    with client.beta.threads.runs.submit_tool_outputs_stream(
        run_id=run.id,
        thread_id=thread_id,
        tool_outputs=[{"tool_call_id": call_id, "output": "rainy"}],
        event_handler=recorder,
    ) as stream:
        stream.until_done()
        final = stream.get_final_run()
    assert final.status == "completed"
    assert "".join(recorder.deltas) == "get_weather returned: rainy"
    events = collapse(recorder.events)
    assert events[-1] == "thread.run.completed"
    for name in ("thread.run.in_progress", "thread.message.created", "thread.message.completed"):
        assert name in events
    [reply] = run_messages(client, thread_id, run.id)
    assert message_text(reply) == "get_weather returned: rainy"


def test_stream_stops_at_requires_action_with_assembled_calls(
    client: openai.OpenAI, echo_assistant: Assistant
) -> None:
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": f"{WEATHER_CALL}\n{TIME_CALL}"}]
    )
    recorder = ToolRecorder()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=echo_assistant.id, event_handler=recorder
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
    assert run.status == "requires_action"
    assert collapse(recorder.events)[-1] == "thread.run.requires_action"
    assembled = [
        (c.id, c.function.name, json.loads(c.function.arguments))
        for c in recorder.tool_calls_done
        if c.type == "function"
    ]
    assert assembled == _pending(run)
    client.beta.threads.runs.cancel(run.id, thread_id=thread.id)


def test_parallel_calls_must_each_be_answered_exactly_once(
    client: openai.OpenAI, echo_assistant: Assistant
) -> None:
    thread_id, run = _requires_action(client, echo_assistant, f"{WEATHER_CALL}\n{TIME_CALL}")
    pending = _pending(run)
    assert [(name, arguments) for _, name, arguments in pending] == [
        ("get_weather", {"city": "Paris", "unit": "celsius"}),
        ("get_time", {"tz": "Europe/Rome"}),
    ]
    (weather_id, _, _), (time_id, _, _) = pending
    assert weather_id != time_id
    runs = client.beta.threads.runs

    wrong: list[list[tuple[str, str]]] = [
        [(weather_id, "sunny")],  # one of two
        [(weather_id, "sunny"), (weather_id, "sunny"), (time_id, "noon")],  # a duplicate
        [(weather_id, "sunny"), (time_id, "noon"), ("call_unknown000000000000000", "?")],
        [(weather_id, "sunny"), ("call_unknown000000000000000", "noon")],
        [],
    ]
    for outputs in wrong:
        with pytest.raises(openai.BadRequestError) as info:
            runs.submit_tool_outputs(
                run.id,
                thread_id=thread_id,
                tool_outputs=[{"tool_call_id": i, "output": o} for i, o in outputs],
            )
        assert_api_error(info.value, 400, "invalid_request_error")
        still = runs.retrieve(run.id, thread_id=thread_id)
        assert still.status == "requires_action", f"{outputs} moved the run to {still.status}"
        assert _pending(still) == pending

    # Answers are matched by ID, not by position.
    done = runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread_id,
        tool_outputs=[
            {"tool_call_id": time_id, "output": "noon"},
            {"tool_call_id": weather_id, "output": "sunny"},
        ],
        poll_interval_ms=POLL_MS,
    )
    assert done.status == "completed", done.last_error
    [reply] = run_messages(client, thread_id, run.id)
    assert message_text(reply) == "get_weather returned: sunny\nget_time returned: noon"
    [tool_step, _] = run_steps(client, thread_id, run.id)
    answered = {c.id: c.function.output for c in function_calls(tool_step)}
    assert answered == {weather_id: "sunny", time_id: "noon"}

    with pytest.raises(openai.BadRequestError) as info:
        runs.submit_tool_outputs(
            run.id,
            thread_id=thread_id,
            tool_outputs=[{"tool_call_id": weather_id, "output": "again"}],
        )
    assert_api_error(info.value, 400, "invalid_request_error")


def test_parallel_tool_calls_false_makes_one_call(
    client: openai.OpenAI, echo_assistant: Assistant
) -> None:
    thread_id, run = _requires_action(
        client, echo_assistant, f"{WEATHER_CALL}\n{TIME_CALL}", parallel_tool_calls=False
    )
    assert run.parallel_tool_calls is False
    assert [name for _, name, _ in _pending(run)] == ["get_weather"]
    client.beta.threads.runs.cancel(run.id, thread_id=thread_id)


# The server's tools


@pytest.fixture
def server_tool_assistant(client: openai.OpenAI) -> Assistant:
    return client.beta.assistants.create(
        model="builtin/echo",
        tools=[
            {"type": "function", "function": {"name": "calculator"}},
            {"type": "function", "function": {"name": "explode"}},
            {"type": "function", "function": {"name": "shout"}},
        ],
    )


def test_server_tool_runs_without_requires_action(
    client: openai.OpenAI, server_tool_assistant: Assistant
) -> None:
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": '/call calculator {"expression": "6 * 7"}'}]
    )
    statuses: list[str] = []

    class Statuses(AssistantEventHandler):
        @override
        def on_event(self, event: AssistantStreamEvent) -> None:
            if event.event.startswith("thread.run.") and ".step." not in event.event:
                statuses.append(event.event)

    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=server_tool_assistant.id, event_handler=Statuses()
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
    assert run.status == "completed", run.last_error
    assert "thread.run.requires_action" not in statuses
    tool_step, message_step = run_steps(client, thread.id, run.id)
    assert tool_step.status == "completed"
    [call] = function_calls(tool_step)
    assert call.function.name == "calculator"
    assert json.loads(call.function.arguments) == {"expression": "6 * 7"}
    assert call.function.output == "42"
    [reply] = run_messages(client, thread.id, run.id)
    assert message_step.step_details.type == "message_creation"
    assert message_step.step_details.message_creation.message_id == reply.id
    assert message_text(reply) == "calculator returned: 42"


def test_server_tools_in_parallel_sync_and_async(
    client: openai.OpenAI, server_tool_assistant: Assistant
) -> None:
    thread = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": '/call shout {"text": "hey"}\n/call calculator {"expression": "1+2"}',
            }
        ]
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=server_tool_assistant.id, poll_interval_ms=POLL_MS
    )
    assert run.status == "completed", run.last_error
    [reply] = run_messages(client, thread.id, run.id)
    assert message_text(reply) == "shout returned: HEY\ncalculator returned: 3"


def test_a_failing_server_tool_reports_its_error_as_output(
    client: openai.OpenAI, server_tool_assistant: Assistant
) -> None:
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": '/call explode {"reason": "testing"}'}]
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=server_tool_assistant.id, poll_interval_ms=POLL_MS
    )
    assert run.status == "completed", run.last_error
    tool_step, _ = run_steps(client, thread.id, run.id)
    [call] = function_calls(tool_step)
    assert call.function.output is not None
    assert "exploded because testing" in call.function.output
    [reply] = run_messages(client, thread.id, run.id)
    assert message_text(reply) == f"explode returned: {call.function.output}"
