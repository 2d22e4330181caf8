"""Runs and run steps as resources: one active run per thread, paging, include, metadata."""

from __future__ import annotations

from typing import Literal

import openai
import pytest
from harness import assert_api_error
from openai.types.beta import Assistant
from openai.types.beta.threads.runs import RunStepInclude

from runs.support import POLL_MS, message_text, run_steps, wait_run
from runs.upstream import Call, ScriptedModel, text, tool_calls

FILE_SEARCH_CONTENT: RunStepInclude = "step_details.tool_calls[*].file_search.results[*].content"


def test_one_active_run_per_thread(client: openai.OpenAI, echo_assistant: Assistant) -> None:
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": '/call get_weather {"city": "Oslo"}'}]
    )
    runs = client.beta.threads.runs
    waiting = runs.create_and_poll(
        thread_id=thread.id, assistant_id=echo_assistant.id, poll_interval_ms=POLL_MS
    )
    assert waiting.status == "requires_action"

    with pytest.raises(openai.BadRequestError) as info:
        runs.create(thread_id=thread.id, assistant_id=echo_assistant.id)
    assert_api_error(info.value, 400, "invalid_request_error")
    with pytest.raises(openai.BadRequestError) as info:
        runs.create(thread_id=thread.id, assistant_id=echo_assistant.id, stream=True).close()
    assert_api_error(info.value, 400, "invalid_request_error")
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.threads.messages.create(thread.id, role="user", content="meanwhile")
    assert_api_error(info.value, 400, "invalid_request_error")

    listed = runs.list(thread.id).data
    assert [r.id for r in listed] == [waiting.id], "a refused run must not be stored"
    assert [message_text(m) for m in client.beta.threads.messages.list(thread.id).data] == [
        '/call get_weather {"city": "Oslo"}'
    ]

    runs.cancel(waiting.id, thread_id=thread.id)
    assert wait_run(client, thread.id, waiting.id).status == "cancelled"
    client.beta.threads.messages.create(thread.id, role="user", content="now it is free")
    after = runs.create_and_poll(
        thread_id=thread.id, assistant_id=echo_assistant.id, poll_interval_ms=POLL_MS
    )
    assert after.status == "completed"


def test_modify_run_metadata(client: openai.OpenAI, echo_assistant: Assistant, tag: str) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    runs = client.beta.threads.runs
    run = runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=echo_assistant.id,
        metadata={"tag": tag},
        poll_interval_ms=POLL_MS,
    )
    assert run.metadata == {"tag": tag}
    updated = runs.update(run.id, thread_id=thread.id, metadata={"tag": tag, "reviewed": "yes"})
    assert updated.metadata == {"tag": tag, "reviewed": "yes"}
    fetched = runs.retrieve(run.id, thread_id=thread.id)
    assert fetched.metadata == {"tag": tag, "reviewed": "yes"}
    before = run.model_dump(exclude={"metadata"})
    assert fetched.model_dump(exclude={"metadata"}) == before
    assert updated.model_dump(exclude={"metadata"}) == before


def test_list_runs_pages_exactly(client: openai.OpenAI, echo_assistant: Assistant) -> None:
    thread = client.beta.threads.create()
    runs = client.beta.threads.runs
    created: list[str] = []
    for index in range(3):
        client.beta.threads.messages.create(thread.id, role="user", content=f"turn {index}")
        run = runs.create_and_poll(
            thread_id=thread.id, assistant_id=echo_assistant.id, poll_interval_ms=POLL_MS
        )
        assert run.status == "completed"
        created.append(run.id)

    newest_first = created[::-1]
    first = runs.list(thread.id, limit=2)
    assert [r.id for r in first.data] == newest_first[:2]
    assert first.has_more is True
    envelope = first.model_dump()
    assert (envelope["first_id"], envelope["last_id"]) == (newest_first[0], newest_first[1])
    rest = runs.list(thread.id, limit=2, after=newest_first[1])
    assert [r.id for r in rest.data] == newest_first[2:]
    assert rest.has_more is False
    assert [r.id for r in runs.list(thread.id, limit=1)] == newest_first  # auto-pagination
    assert [r.id for r in runs.list(thread.id, order="asc", limit=2)] == created
    back = runs.list(thread.id, order="asc", before=created[2], limit=1)
    assert [r.id for r in back.data] == [created[1]]
    assert back.has_more is True


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_run_steps_page_and_accept_include(
    client: openai.OpenAI, scripted: ScriptedModel, order: Literal["asc", "desc"]
) -> None:
    scripted.push(
        tool_calls(Call("calculator", '{"expression": "1+1"}')),
        tool_calls(Call("calculator", '{"expression": "2+2"}')),
        tool_calls(Call("calculator", '{"expression": "3+3"}')),
        text("All done."),
    )
    assistant = client.beta.assistants.create(
        model=scripted.model, tools=[{"type": "function", "function": {"name": "calculator"}}]
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "add up"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=POLL_MS
    )
    assert run.status == "completed", run.last_error
    steps_api = client.beta.threads.runs.steps

    everything = steps_api.list(run.id, thread_id=thread.id, order=order, limit=100)
    assert everything.has_more is False
    ids = [s.id for s in everything.data]
    assert len(ids) == 4
    assert len(set(ids)) == 4
    oldest_first = ids if order == "asc" else ids[::-1]
    kinds = [s.type for s in run_steps(client, thread.id, run.id)]
    assert kinds == ["tool_calls", "tool_calls", "tool_calls", "message_creation"]
    assert [s.id for s in run_steps(client, thread.id, run.id)] == oldest_first

    page = steps_api.list(run.id, thread_id=thread.id, order=order, limit=3)
    assert [s.id for s in page.data] == ids[:3]
    assert page.has_more is True
    rest = steps_api.list(run.id, thread_id=thread.id, order=order, limit=3, after=ids[2])
    assert [s.id for s in rest.data] == ids[3:]
    assert rest.has_more is False
    walked = steps_api.list(run.id, thread_id=thread.id, order=order, limit=1)
    assert [s.id for s in walked] == ids

    included = steps_api.list(
        run.id, thread_id=thread.id, order=order, include=[FILE_SEARCH_CONTENT]
    )
    assert [s.model_dump() for s in included.data] == [s.model_dump() for s in everything.data]
    for listed in everything.data:
        one = steps_api.retrieve(listed.id, thread_id=thread.id, run_id=run.id)
        assert one.model_dump() == listed.model_dump()
        with_include = steps_api.retrieve(
            listed.id, thread_id=thread.id, run_id=run.id, include=[FILE_SEARCH_CONTENT]
        )
        assert with_include.model_dump() == listed.model_dump()
        assert listed.run_id == run.id
        assert listed.thread_id == thread.id
        assert listed.assistant_id == assistant.id
        assert listed.status == "completed"


def test_unknown_run_and_step_are_404(client: openai.OpenAI, echo_assistant: Assistant) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "x"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=echo_assistant.id, poll_interval_ms=POLL_MS
    )
    missing_run = "run_" + "0" * 24
    with pytest.raises(openai.NotFoundError) as info:
        client.beta.threads.runs.retrieve(missing_run, thread_id=thread.id)
    assert_api_error(info.value, 404, "invalid_request_error")
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.steps.retrieve(
            "step_" + "0" * 24, thread_id=thread.id, run_id=run.id
        )
    other = client.beta.threads.create()
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.retrieve(run.id, thread_id=other.id)
