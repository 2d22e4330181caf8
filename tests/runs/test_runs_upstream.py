"""Runs on an OpenAI-compatible upstream (the scripted one): what the model sees, how its
stream reaches the client, usage, limits and failures."""

from __future__ import annotations

import json
from typing import Any, Literal

import aiohttp
import httpx2
import openai
import pytest
from openai import AssistantEventHandler
from openai.types.beta import Assistant, AssistantStreamEvent
from openai.types.beta.threads import Run
from openai.types.beta.threads.runs import ToolCall
from typing_extensions import override

from compat_core.config import ProviderConfig
from compat_core.providers.base import ChatRequest
from compat_core.providers.upstream import UpstreamProvider, _timed_out
from runs.support import (
    POLL_MS,
    SseEvent,
    assert_nothing_left_open,
    assert_one_open_at_a_time,
    assert_openai_payloads,
    assert_usage_adds_up,
    collapse,
    function_calls,
    message_text,
    parse_sse,
    run_messages,
    run_steps,
    sse_text,
    thread_texts,
    validate_sse_event,
)
from runs.upstream import (
    Call,
    Reply,
    ScriptedModel,
    ScriptedUpstream,
    Usage,
    _Pause,
    _Raw,
    cut,
    http_error,
    malformed,
    text,
    tool_calls,
)

WAIT = 10.0


def _assistant(client: openai.OpenAI, model: ScriptedModel, **kwargs: Any) -> Assistant:
    return client.beta.assistants.create(model=model.model, **kwargs)


def _run(client: openai.OpenAI, thread_id: str, assistant_id: str, **kwargs: Any) -> Run:
    return client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant_id, poll_interval_ms=POLL_MS, **kwargs
    )


def _chat(messages: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(m["role"], m.get("content")) for m in messages]


def _event(payload: object) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-raw",
        "object": "chat.completion.chunk",
        "created": 1767225600,
        "model": "raw",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }


def _raw(*writes: bytes | float, usage: Usage | None = None) -> Reply:
    """A streamed reply written byte for byte (a float pauses between two writes): for the
    SSE framing the scripted builders never produce but upstreams and proxies do."""
    actions = [_Pause(w) if isinstance(w, float) else _Raw(w) for w in writes]
    return Reply(actions, usage=usage)


# What the model sees


def test_the_model_sees_instructions_and_the_whole_thread_in_order(
    client: openai.OpenAI, scripted: ScriptedModel
) -> None:
    scripted.push(text("first ", "reply"), text("second reply"))
    assistant = _assistant(client, scripted, instructions="You are terse.")
    thread = client.beta.threads.create(
        messages=[
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "two"},
            {"role": "user", "content": "three"},
        ]
    )
    first = _run(client, thread.id, assistant.id)
    assert first.status == "completed", first.last_error
    request = scripted.requests[0]
    assert request["model"] == scripted.name
    assert request["stream"] is True
    assert request["stream_options"] == {"include_usage": True}
    assert _chat(request["messages"]) == [
        ("system", "You are terse."),
        ("user", "one"),
        ("assistant", "two"),
        ("user", "three"),
    ]

    second = _run(
        client,
        thread.id,
        assistant.id,
        instructions="Answer in French.",
        additional_instructions="Sign with your name.",
        additional_messages=[{"role": "user", "content": "four"}],
    )
    assert second.status == "completed", second.last_error
    system, *rest = scripted.requests[1]["messages"]
    assert system["role"] == "system"
    assert system["content"].startswith("Answer in French.")
    assert system["content"].endswith("Sign with your name.")
    assert "You are terse." not in system["content"]
    assert second.instructions == system["content"]
    assert _chat(rest) == [
        ("user", "one"),
        ("assistant", "two"),
        ("user", "three"),
        ("assistant", "first reply"),
        ("user", "four"),
    ]
    assert thread_texts(client, thread.id) == [
        ("user", "one"),
        ("assistant", "two"),
        ("user", "three"),
        ("assistant", "first reply"),
        ("user", "four"),
        ("assistant", "second reply"),
    ]


def test_truncation_last_messages(client: openai.OpenAI, scripted: ScriptedModel) -> None:
    scripted.push(text("ok"))
    assistant = _assistant(client, scripted, instructions="Be brief.")
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": f"message {i}"} for i in range(5)]
    )
    run = _run(
        client,
        thread.id,
        assistant.id,
        truncation_strategy={"type": "last_messages", "last_messages": 2},
    )
    assert run.status == "completed", run.last_error
    assert run.truncation_strategy is not None
    assert (run.truncation_strategy.type, run.truncation_strategy.last_messages) == (
        "last_messages",
        2,
    )
    assert _chat(scripted.requests[0]["messages"]) == [
        ("system", "Be brief."),
        ("user", "message 3"),
        ("user", "message 4"),
    ]


def test_max_prompt_tokens_drops_the_oldest_turns(
    client: openai.OpenAI, scripted: ScriptedModel
) -> None:
    # Each 400-character message is about 105 estimated tokens: two of them and the system
    # message fit in 256, three do not.
    scripted.push(text("ok"))
    assistant = _assistant(client, scripted, instructions="Be brief.")
    contents = [f"{i}" * 400 for i in range(5)]
    thread = client.beta.threads.create(messages=[{"role": "user", "content": c} for c in contents])
    run = _run(client, thread.id, assistant.id, max_prompt_tokens=256)
    assert run.status == "completed", run.last_error
    assert run.max_prompt_tokens == 256
    assert _chat(scripted.requests[0]["messages"]) == [
        ("system", "Be brief."),
        ("user", contents[3]),
        ("user", contents[4]),
    ]


def test_a_newest_message_over_max_prompt_tokens_ends_the_run_incomplete(
    client: openai.OpenAI, scripted: ScriptedModel
) -> None:
    assistant = _assistant(client, scripted)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "x" * 4000}])
    run = _run(client, thread.id, assistant.id, max_prompt_tokens=256)
    assert run.status == "incomplete"
    assert run.incomplete_details is not None
    assert run.incomplete_details.reason == "max_prompt_tokens"
    assert scripted.requests == [], "a prompt over budget must not reach the model"
    assert_nothing_left_open(client, thread.id, run)


def test_sampling_format_and_tool_settings_reach_the_request(
    client: openai.OpenAI, scripted: ScriptedModel
) -> None:
    scripted.push(text('{"answer": 42}'))
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "integer"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    weather = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    assistant = _assistant(client, scripted, tools=[weather])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "go"}])
    run = _run(
        client,
        thread.id,
        assistant.id,
        temperature=0.3,
        top_p=0.7,
        max_completion_tokens=300,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": schema, "strict": True},
        },
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
    )
    assert run.status == "completed", run.last_error
    assert (run.temperature, run.top_p) == (0.3, 0.7)
    request = scripted.requests[0]
    assert request["temperature"] == 0.3
    assert request["top_p"] == 0.7
    assert request["max_completion_tokens"] == 300
    assert request["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema, "strict": True},
    }
    assert request["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert request["parallel_tool_calls"] is False
    assert request["tools"] == [weather]


@pytest.mark.parametrize("mode", ["none", "auto", "required"])
def test_tool_choice_modes_reach_the_request(
    client: openai.OpenAI, scripted: ScriptedModel, mode: Literal["none", "auto", "required"]
) -> None:
    scripted.push(text("ok"))
    assistant = _assistant(
        client, scripted, tools=[{"type": "function", "function": {"name": "calculator"}}]
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = _run(client, thread.id, assistant.id, tool_choice=mode)
    assert run.status == "completed", run.last_error
    assert run.tool_choice == mode
    assert scripted.requests[0]["tool_choice"] == mode


def test_a_registered_tool_named_alone_reaches_the_model_in_full(
    client: openai.OpenAI, scripted: ScriptedModel
) -> None:
    scripted.push(
        tool_calls(Call("calculator", '{"expression": "6*7"}', piece=3), usage=Usage(11, 7)),
        text("The answer ", "is 42.", usage=Usage(20, 3)),
    )
    assistant = _assistant(
        client, scripted, tools=[{"type": "function", "function": {"name": "calculator"}}]
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "6 times 7?"}])
    run = _run(client, thread.id, assistant.id)
    assert run.status == "completed", run.last_error

    first, second = scripted.wait_requests(2)
    [definition] = first["tools"]
    assert definition["type"] == "function"
    assert definition["function"]["name"] == "calculator"
    assert definition["function"]["description"] == "Perform calculations"
    parameters = definition["function"]["parameters"]
    assert parameters["type"] == "object"
    assert parameters["required"] == ["expression"]
    assert parameters["properties"]["expression"]["type"] == "string"

    *_, call_turn, result = second["messages"]
    assert call_turn["role"] == "assistant"
    [call] = call_turn["tool_calls"]
    assert call["type"] == "function"
    assert call["function"] == {"name": "calculator", "arguments": '{"expression": "6*7"}'}
    assert result == {"role": "tool", "tool_call_id": call["id"], "content": "42"}

    # Usage: each step carries its own call's, the run their sum.
    tool_step, message_step = run_steps(client, thread.id, run.id)
    assert tool_step.usage is not None
    assert message_step.usage is not None
    assert tool_step.usage.model_dump() == {
        "prompt_tokens": 11,
        "completion_tokens": 7,
        "total_tokens": 18,
    }
    assert message_step.usage.model_dump() == {
        "prompt_tokens": 20,
        "completion_tokens": 3,
        "total_tokens": 23,
    }
    assert run.usage is not None
    assert run.usage.model_dump() == {
        "prompt_tokens": 31,
        "completion_tokens": 10,
        "total_tokens": 41,
    }
    [reply] = run_messages(client, thread.id, run.id)
    assert message_text(reply) == "The answer is 42."


# How the stream reaches the client


def test_text_deltas_reach_the_client_while_the_upstream_still_writes(
    client: openai.OpenAI, scripted: ScriptedModel
) -> None:
    reply = scripted.push(text("Once ", "upon ", "a ", "time", hold_after=1))
    assistant = _assistant(client, scripted)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "a story"}])
    deltas: list[str] = []
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        for event in stream:
            if event.event == "thread.message.delta":
                content = event.data.delta.content or []
                deltas.extend(p.text.value or "" for p in content if p.type == "text" and p.text)
                if len(deltas) == 1:
                    assert reply.held.wait(WAIT)
                    assert not reply.finished.is_set(), (
                        "the first delta reached the client only after the upstream finished"
                    )
                    assert deltas == ["Once "]
                    reply.release()
        run = stream.get_final_run()
    assert not reply.hold_timed_out
    assert reply.finished.is_set()
    assert run.status == "completed", run.last_error
    assert "".join(deltas) == "Once upon a time"
    [stored] = run_messages(client, thread.id, run.id)
    assert message_text(stored) == "Once upon a time"


class CallRecorder(AssistantEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []
        self.calls: list[ToolCall] = []

    @override
    def on_event(self, event: AssistantStreamEvent) -> None:
        self.events.append(event.event)

    @override
    def on_tool_call_done(self, tool_call: ToolCall) -> None:
        self.calls.append(tool_call)


@pytest.mark.parametrize("interleave", [False, True], ids=["one-after-another", "interleaved"])
def test_tool_call_deltas_assemble_into_the_calls(
    client: openai.OpenAI, scripted: ScriptedModel, interleave: bool
) -> None:
    weather = Call("get_weather", '{"city": "Paris", "unit": "celsius"}', piece=3)
    clock = Call("get_time", '{"tz": "Europe/Paris"}', piece=5)
    scripted.push(tool_calls(weather, clock, interleave=interleave), text("Sunny at noon."))
    assistant = _assistant(
        client,
        scripted,
        tools=[
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "function", "function": {"name": "get_time"}},
        ],
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "weather?"}])
    recorder = CallRecorder()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=recorder
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
        [snapshot] = stream.get_final_run_steps()
    assert run.status == "requires_action", run.last_error
    assert run.required_action is not None
    required = [
        (c.id, c.function.name, c.function.arguments)
        for c in run.required_action.submit_tool_outputs.tool_calls
    ]
    assert [(name, arguments) for _, name, arguments in required] == [
        ("get_weather", weather.arguments),
        ("get_time", clock.arguments),
    ]
    # The SDK merges the step deltas by index into its snapshot of the step.
    assert "thread.run.step.delta" in recorder.events
    streamed = [(c.id, c.function.name, c.function.arguments) for c in function_calls(snapshot)]
    assert streamed == required
    if not interleave:
        # One call after another: the helper reports each call once, whole.
        done_calls = [
            (c.id, c.function.name, c.function.arguments)
            for c in recorder.calls
            if c.type == "function"
        ]
        assert done_calls == required
    [step] = run_steps(client, thread.id, run.id)
    assert [(c.id, c.function.name, c.function.arguments) for c in function_calls(step)] == (
        required
    )

    (weather_id, _, _), (clock_id, _, _) = required
    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[
            {"tool_call_id": weather_id, "output": "sunny"},
            {"tool_call_id": clock_id, "output": "12:00"},
        ],
        poll_interval_ms=POLL_MS,
    )
    assert done.status == "completed", done.last_error
    assert_usage_adds_up(client, thread.id, done)
    messages = scripted.wait_requests(2)[1]["messages"]
    call_turn = messages[-3]
    assert call_turn["role"] == "assistant"
    assert [
        (c["id"], c["function"]["name"], c["function"]["arguments"])
        for c in call_turn["tool_calls"]
    ] == required
    assert messages[-2:] == [
        {"role": "tool", "tool_call_id": weather_id, "content": "sunny"},
        {"role": "tool", "tool_call_id": clock_id, "content": "12:00"},
    ]
    [reply] = run_messages(client, thread.id, run.id)
    assert message_text(reply) == "Sunny at noon."


def test_raw_tool_call_stream_sends_id_and_name_once(
    http: httpx2.Client, client: openai.OpenAI, scripted: ScriptedModel
) -> None:
    weather = Call("get_weather", '{"city": "Paris"}', piece=4)
    clock = Call("get_time", '{"tz": "UTC"}', piece=4)
    scripted.push(tool_calls(weather, clock, interleave=True))
    assistant = _assistant(
        client,
        scripted,
        tools=[
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "function", "function": {"name": "get_time"}},
        ],
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "both"}])
    with http.stream(
        "POST",
        f"/v1/threads/{thread.id}/runs",
        json={"assistant_id": assistant.id, "stream": True},
    ) as response:
        events = list(parse_sse(response.iter_lines()))
    for event in events:
        validate_sse_event(event)
    assert_one_open_at_a_time(events)
    assert_openai_payloads(events)
    assert collapse(e.event for e in events)[-2:] == ["thread.run.requires_action", "done"]

    pieces = [
        call
        for e in events
        if e.event == "thread.run.step.delta"
        for call in e.json()["delta"]["step_details"]["tool_calls"]
    ]
    assembled: dict[int, dict[str, str]] = {}
    for piece in pieces:
        index = piece["index"]
        first = index not in assembled
        if first:
            assert "id" in piece, f"the first piece of call {index} has no id: {piece}"
            assert "name" in piece["function"], f"the first piece of call {index}: {piece}"
            assembled[index] = {"id": piece["id"], "name": piece["function"]["name"], "args": ""}
        else:
            assert "id" not in piece, f"a later piece of call {index} repeats the id: {piece}"
            assert "name" not in piece["function"], f"a later piece repeats the name: {piece}"
        assert piece["type"] == "function"
        assembled[index]["args"] += piece["function"].get("arguments", "")
    waiting = events[-2].json()
    required = waiting["required_action"]["submit_tool_outputs"]["tool_calls"]
    assert [
        (assembled[i]["id"], assembled[i]["name"], assembled[i]["args"]) for i in sorted(assembled)
    ] == [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in required]
    assert [c["function"]["arguments"] for c in required] == [weather.arguments, clock.arguments]
    client.beta.threads.runs.cancel(waiting["id"], thread_id=thread.id)


def _streamed_calculator_run(
    http: httpx2.Client, client: openai.OpenAI, scripted: ScriptedModel
) -> tuple[list[SseEvent], Run]:
    """A streamed run of an assistant with the `calculator` tool on "2+3?": its events, each
    checked against OpenAI's schema, and the run as stored once the stream ended."""
    assistant = _assistant(
        client, scripted, tools=[{"type": "function", "function": {"name": "calculator"}}]
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "2+3?"}])
    with http.stream(
        "POST",
        f"/v1/threads/{thread.id}/runs",
        json={"assistant_id": assistant.id, "stream": True},
    ) as response:
        events = list(parse_sse(response.iter_lines()))
    for event in events:
        validate_sse_event(event)
    assert_one_open_at_a_time(events)
    assert_openai_payloads(events)
    run = client.beta.threads.runs.retrieve(events[0].json()["id"], thread_id=thread.id)
    return events, run


def test_text_then_tool_call_in_one_turn(
    http: httpx2.Client, client: openai.OpenAI, scripted: ScriptedModel
) -> None:
    scripted.push(
        tool_calls(Call("calculator", '{"expression": "2+3"}'), text_before="Let me compute."),
        text("It is 5."),
    )
    events, run = _streamed_calculator_run(http, client, scripted)
    assert sse_text(events) == "Let me compute.It is 5."
    assert run.status == "completed", run.last_error
    texts = [message_text(m) for m in run_messages(client, run.thread_id, run.id)]
    assert texts == ["Let me compute.", "It is 5."]
    kinds = [s.type for s in run_steps(client, run.thread_id, run.id)]
    assert sorted(kinds) == ["message_creation", "message_creation", "tool_calls"]
    assert_nothing_left_open(client, run.thread_id, run)


def test_every_sse_framing_an_upstream_may_use_reaches_the_run(
    client: openai.OpenAI, scripted: ScriptedModel
) -> None:
    split = _event(_chunk({"content": "four "}))
    scripted.push(
        _raw(
            _event(_chunk({"role": "assistant", "content": ""})),
            b": keep-alive comment\n\n",
            b"event: message\ndata:" + json.dumps(_chunk({"content": "one "})).encode() + b"\n\n",
            _event(_chunk({"content": "two "})).replace(b"\n", b"\r\n"),
            b"id: 7\nretry: 1000\n\n",
            # One event in two data lines, which SSE joins with a line feed.
            b'data: {"choices": [{"index": 0,\ndata: "delta": {"content": "three "}}]}\n\n',
            split[:25],
            0.02,
            split[25:],
            _event(_chunk({}, "stop")),
            usage=Usage(9, 4),
        )
    )
    assistant = _assistant(client, scripted)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "count"}])
    run = _run(client, thread.id, assistant.id)
    assert run.status == "completed", run.last_error
    [reply] = run_messages(client, thread.id, run.id)
    assert message_text(reply) == "one two three four "
    assert run.usage is not None
    assert (run.usage.prompt_tokens, run.usage.completion_tokens) == (9, 4)


def _together(*chunks: dict[str, Any]) -> bytes:
    """Chunks in one write, so that the server reads them together as a fast model's are."""
    return b"".join(_event(chunk) for chunk in chunks)


def test_chunks_read_together_keep_their_text_calls_and_order(
    http: httpx2.Client, client: openai.OpenAI, scripted: ScriptedModel
) -> None:
    call = {"index": 0, "id": "call_together", "type": "function"}
    scripted.push(
        _raw(
            _together(
                _chunk({"role": "assistant", "content": ""}),
                _chunk({"content": "Let me "}),
                _chunk({"content": "com"}),
                _chunk({"content": "pute."}),
                _chunk({"tool_calls": [{**call, "function": {"name": "calculator"}}]}),
                _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"expression"'}}]}),
                _chunk({"tool_calls": [{"index": 0, "function": {"arguments": ': "2+3"}'}}]}),
                _chunk({}, "tool_calls"),
            )
        ),
        _raw(
            _together(
                _chunk({"role": "assistant", "content": "It "}),
                _chunk({"content": "is "}),
                # Text and the reason to stop in one chunk.
                _chunk({"content": "5."}, "length"),
            ),
            usage=Usage(12, 3),
        ),
    )
    events, run = _streamed_calculator_run(http, client, scripted)
    assert sse_text(events) == "Let me compute.It is 5."
    assert run.status == "incomplete", run.last_error
    assert run.incomplete_details is not None
    assert run.incomplete_details.reason == "max_completion_tokens"
    texts = [message_text(m) for m in run_messages(client, run.thread_id, run.id)]
    assert texts == ["Let me compute.", "It is 5."]
    [step] = [s for s in run_steps(client, run.thread_id, run.id) if s.type == "tool_calls"]
    [made] = function_calls(step)
    assert (made.id, made.function.name) == ("call_together", "calculator")
    assert json.loads(made.function.arguments) == {"expression": "2+3"}
    assert made.function.output == "5"
    assert_nothing_left_open(client, run.thread_id, run)


async def test_the_first_text_piece_goes_on_alone(
    upstream: ScriptedUpstream, scripted: ScriptedModel
) -> None:
    """The reply's first piece is not held back for the pieces read with it."""
    scripted.push(
        _raw(
            _together(
                _chunk({"role": "assistant", "content": ""}),
                _chunk({"content": "one "}),
                _chunk({"content": "two "}),
                _chunk({"content": "three"}),
                _chunk({}, "stop"),
            )
        )
    )
    provider = UpstreamProvider(ProviderConfig(name="scripted", base_url=upstream.base_url))
    try:
        request = ChatRequest(
            model=scripted.model.partition("/")[2], messages=[{"role": "user", "content": "go"}]
        )
        deltas = [delta async for delta in provider.stream(request)]
    finally:
        await provider.close()
    texts = [delta.text for delta in deltas if delta.text]
    assert texts[0] == "one "
    assert "".join(texts) == "one two three"
    assert [d.finish_reason for d in deltas if d.finish_reason] == ["stop"]


def test_text_read_together_with_a_failure_stays_in_the_reply(
    client: openai.OpenAI, scripted: ScriptedModel
) -> None:
    scripted.push(
        _raw(
            _together(
                _chunk({"role": "assistant", "content": "Half "}),
                _chunk({"content": "an "}),
                _chunk({"content": "answer"}),
            )
            + _event({"error": {"message": "The model is overloaded", "type": "server_error"}})
        )
    )
    assistant = _assistant(client, scripted)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hello"}])
    run = _run(client, thread.id, assistant.id)
    assert run.status == "failed"
    assert run.last_error is not None
    assert "The model is overloaded" in run.last_error.message
    [reply] = run_messages(client, thread.id, run.id)
    assert message_text(reply) == "Half an answer"
    assert_nothing_left_open(client, thread.id, run)


# Limits and failures


def test_max_completion_tokens_reached_ends_the_run_incomplete(
    client: openai.OpenAI, scripted: ScriptedModel
) -> None:
    scripted.push(text("A long ", "answer that ", "stops", finish_reason="length"))
    assistant = _assistant(client, scripted)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "go on"}])
    run = _run(client, thread.id, assistant.id, max_completion_tokens=256)
    assert scripted.requests[0]["max_completion_tokens"] == 256
    assert run.status == "incomplete", run.last_error
    assert run.incomplete_details is not None
    assert run.incomplete_details.reason == "max_completion_tokens"
    [message] = run_messages(client, thread.id, run.id)
    assert message.status == "incomplete"
    assert message.incomplete_details is not None
    assert message.incomplete_details.reason == "max_tokens"
    assert message_text(message) == "A long answer that stops"
    assert_nothing_left_open(client, thread.id, run)


UPSTREAM_FAILURES = [
    pytest.param(
        http_error(429, "Rate limit reached", type="requests", code="rate_limit_exceeded"),
        "rate_limit_exceeded",
        "429",
        id="429",
    ),
    pytest.param(http_error(500, "The server had an error"), "server_error", "500", id="500"),
    pytest.param(
        http_error(503, "Overloaded", type="server_error"), "server_error", "503", id="503"
    ),
    pytest.param(
        http_error(400, "Bad messages", type="invalid_request_error"),
        "invalid_prompt",
        "400",
        id="400",
    ),
    pytest.param(malformed("half an ans"), "server_error", "malformed", id="malformed-stream"),
    pytest.param(
        _raw(_event(_chunk({"content": "half"})), b"data: [1, 2]\n\n"),
        "server_error",
        "malformed",
        id="chunk-not-an-object",
    ),
    pytest.param(
        # How an upstream reports a failure after it already answered 200.
        _raw(
            _event(_chunk({"role": "assistant", "content": "Half an "})),
            _event({"error": {"message": "The model is overloaded", "type": "server_error"}}),
        ),
        "server_error",
        "The model is overloaded",
        id="error-in-stream",
    ),
    pytest.param(
        cut("half a ", "repl"), "server_error", "lost the connection mid-reply", id="connection-cut"
    ),
]


@pytest.mark.parametrize(("reply", "code", "mentioned"), UPSTREAM_FAILURES)
def test_upstream_failures_fail_the_run(
    client: openai.OpenAI,
    scripted: ScriptedModel,
    reply: Reply,
    code: str,
    mentioned: str,
) -> None:
    scripted.push(reply)
    assistant = _assistant(client, scripted)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hello"}])
    run = _run(client, thread.id, assistant.id)
    assert run.status == "failed"
    assert run.failed_at is not None
    assert run.last_error is not None
    assert run.last_error.code == code
    assert f"Provider '{scripted.provider}'" in run.last_error.message
    assert mentioned in run.last_error.message
    assert len(scripted.requests) == 1, "the server must not retry a failed upstream call"
    assert_nothing_left_open(client, thread.id, run)
    # The thread is free again.
    scripted.push(text("recovered"))
    again = _run(client, thread.id, assistant.id)
    assert again.status == "completed", again.last_error


def test_a_refused_connection_fails_the_run_naming_the_provider(
    client: openai.OpenAI,
) -> None:
    assistant = client.beta.assistants.create(model="dead/some-model")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hello"}])
    run = _run(client, thread.id, assistant.id)
    assert run.status == "failed"
    assert run.last_error is not None
    assert run.last_error.code == "server_error"
    assert "dead" in run.last_error.message
    assert "could not be reached" in run.last_error.message
    assert_nothing_left_open(client, thread.id, run)


def _wrapped(outer: BaseException, cause: BaseException) -> BaseException:
    outer.__cause__ = cause
    return outer


@pytest.mark.parametrize(
    ("error", "timed_out"),
    [
        # What the SDK's aiohttp transport raises: every connection error as a connect timeout.
        (_wrapped(httpx2.ConnectTimeout("x"), aiohttp.ServerDisconnectedError()), False),
        (_wrapped(httpx2.ConnectTimeout("x"), aiohttp.ClientOSError(111, "refused")), False),
        (_wrapped(httpx2.ReadTimeout("x"), aiohttp.SocketTimeoutError()), True),
        (_wrapped(httpx2.ConnectTimeout("x"), aiohttp.ConnectionTimeoutError()), True),
        (_wrapped(httpx2.ConnectTimeout("x"), TimeoutError()), True),
        (httpx2.ReadTimeout("x"), True),
        (httpx2.ReadError("x"), False),
    ],
)
def test_only_a_timeout_is_reported_as_one(error: BaseException, timed_out: bool) -> None:
    assert _timed_out(error) is timed_out


def test_a_failed_stream_ends_with_the_failed_run_and_done(
    http: httpx2.Client, client: openai.OpenAI, scripted: ScriptedModel
) -> None:
    scripted.push(http_error(500, "boom"))
    assistant = _assistant(client, scripted)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hello"}])
    with http.stream(
        "POST",
        f"/v1/threads/{thread.id}/runs",
        json={"assistant_id": assistant.id, "stream": True},
    ) as response:
        assert response.status_code == 200
        events = list(parse_sse(response.iter_lines()))
    for event in events:
        validate_sse_event(event)
    names = collapse(e.event for e in events)
    assert names[:3] == ["thread.run.created", "thread.run.queued", "thread.run.in_progress"]
    assert names[-2:] == ["thread.run.failed", "done"]
    failed = events[-2].json()
    assert failed["last_error"]["code"] == "server_error"
    assert sse_text(events) == ""
    # Nothing was announced of a reply, and nothing of one is stored either.
    assert run_messages(client, thread.id, failed["id"]) == []
    assert run_steps(client, thread.id, failed["id"]) == []


def test_models_list_includes_the_upstream_models(
    client: openai.OpenAI, scripted: ScriptedModel
) -> None:
    ids = {m.id for m in client.models.list()}
    assert scripted.model in ids
    assert "builtin/echo" in ids


def test_the_stored_reply_is_what_the_upstream_sent_as_json(
    client: openai.OpenAI, scripted: ScriptedModel
) -> None:
    payload = json.dumps({"a": [1, 2, 3], "b": "ünïcødé ✓"}, ensure_ascii=False)
    pieces = [payload[i : i + 5] for i in range(0, len(payload), 5)]
    scripted.push(text(*pieces))
    assistant = _assistant(client, scripted, response_format={"type": "json_object"})
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "json please"}])
    run = _run(client, thread.id, assistant.id)
    assert run.status == "completed", run.last_error
    assert scripted.requests[0]["response_format"] == {"type": "json_object"}
    [reply] = run_messages(client, thread.id, run.id)
    assert message_text(reply) == payload
