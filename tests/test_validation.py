"""OpenAI's limits, each just over (HTTP 400 naming the `param`) and exactly at (accepted),
unknown IDs (404), and numbers that come back exactly as sent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest
from harness import assert_api_error

MODEL = "builtin/echo"

Metadata = dict[str, str]


def pairs(count: int) -> Metadata:
    return {f"k{i}": f"v{i}" for i in range(count)}


TOO_MANY_PAIRS = pairs(17)
LONG_KEY = {"k" * 65: "v"}
LONG_VALUE = {"k": "v" * 513}
# Lengths count characters, not bytes: two-byte and four-byte characters at the limit pass.
EDGE_METADATA = [
    pairs(16),
    {"k" * 64: "v"},
    {"k": "v" * 512},
    {"ü" * 64: "é" * 512},
    {"k": "🔑" * 512},
]


# Metadata, wherever it can be written


def _assistant_create(client: openai.OpenAI, metadata: Metadata) -> Metadata | None:
    return client.beta.assistants.create(model=MODEL, metadata=metadata).metadata


def _assistant_update(client: openai.OpenAI, metadata: Metadata) -> Metadata | None:
    assistant = client.beta.assistants.create(model=MODEL)
    return client.beta.assistants.update(assistant.id, metadata=metadata).metadata


def _thread_create(client: openai.OpenAI, metadata: Metadata) -> Metadata | None:
    return client.beta.threads.create(metadata=metadata).metadata


def _thread_update(client: openai.OpenAI, metadata: Metadata) -> Metadata | None:
    thread = client.beta.threads.create()
    return client.beta.threads.update(thread.id, metadata=metadata).metadata


def _message_create(client: openai.OpenAI, metadata: Metadata) -> Metadata | None:
    thread = client.beta.threads.create()
    return client.beta.threads.messages.create(
        thread.id, role="user", content="hi", metadata=metadata
    ).metadata


def _message_update(client: openai.OpenAI, metadata: Metadata) -> Metadata | None:
    thread = client.beta.threads.create()
    message = client.beta.threads.messages.create(thread.id, role="user", content="hi")
    return client.beta.threads.messages.update(
        message.id, thread_id=thread.id, metadata=metadata
    ).metadata


WRITERS: dict[str, Callable[[openai.OpenAI, Metadata], Metadata | None]] = {
    "assistant-create": _assistant_create,
    "assistant-update": _assistant_update,
    "thread-create": _thread_create,
    "thread-update": _thread_update,
    "message-create": _message_create,
    "message-update": _message_update,
}


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize(
    "metadata",
    [TOO_MANY_PAIRS, LONG_KEY, LONG_VALUE],
    ids=["17-pairs", "key-65", "value-513"],
)
def test_metadata_over_the_limits(client: openai.OpenAI, writer: str, metadata: Metadata) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        WRITERS[writer](client, metadata)
    if metadata is TOO_MANY_PAIRS:
        assert_api_error(info.value, 400, "invalid_request_error", param="metadata")
    else:
        assert_api_error(info.value, 400, "invalid_request_error", param_prefix="metadata")


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize(
    "metadata", EDGE_METADATA, ids=["16-pairs", "key-64", "value-512", "non-ascii", "emoji"]
)
def test_metadata_at_the_limits(client: openai.OpenAI, writer: str, metadata: Metadata) -> None:
    assert WRITERS[writer](client, metadata) == metadata


def test_thread_message_metadata_is_checked_too(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.threads.create(
            messages=[{"role": "user", "content": "hi", "metadata": TOO_MANY_PAIRS}]
        )
    assert_api_error(info.value, 400, "invalid_request_error")
    assert info.value.param is not None
    assert "metadata" in info.value.param


# Assistant fields

TOO_LONG: list[tuple[str, dict[str, Any]]] = [
    ("temperature", {"temperature": -0.1}),
    ("temperature", {"temperature": 2.1}),
    ("top_p", {"top_p": 1.5}),
    ("top_p", {"top_p": -0.01}),
    ("name", {"name": "n" * 257}),
    ("description", {"description": "d" * 513}),
    ("instructions", {"instructions": "i" * 256_001}),
    ("tools", {"tools": [{"type": "code_interpreter"}] * 129}),
    ("reasoning_effort", {"reasoning_effort": "extreme"}),
]


@pytest.mark.parametrize(
    ("param", "fields"),
    TOO_LONG,
    ids=[f"{param}={next(iter(fields.values()))!s:.12}" for param, fields in TOO_LONG],
)
def test_assistant_field_over_the_limit(
    client: openai.OpenAI, param: str, fields: dict[str, Any]
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.assistants.create(model=MODEL, **fields)
    assert_api_error(info.value, 400, "invalid_request_error", param=param)


@pytest.mark.parametrize(
    ("param", "fields"),
    TOO_LONG,
    ids=[f"{param}={next(iter(fields.values()))!s:.12}" for param, fields in TOO_LONG],
)
def test_assistant_update_over_the_limit(
    client: openai.OpenAI, param: str, fields: dict[str, Any]
) -> None:
    assistant = client.beta.assistants.create(model=MODEL, name="unchanged")
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.assistants.update(assistant.id, **fields)
    assert_api_error(info.value, 400, "invalid_request_error", param=param)
    assert client.beta.assistants.retrieve(assistant.id).name == "unchanged"


AT_THE_LIMIT: list[dict[str, Any]] = [
    {"temperature": 0},
    {"temperature": 2},
    {"top_p": 0},
    {"top_p": 1},
    {"name": "n" * 256},
    {"description": "d" * 512},
    {"instructions": "i" * 256_000},
    {"tools": [{"type": "code_interpreter"}] * 128},
]


@pytest.mark.parametrize(
    "fields", AT_THE_LIMIT, ids=[f"{k}" for fields in AT_THE_LIMIT for k in fields]
)
def test_assistant_field_at_the_limit(client: openai.OpenAI, fields: dict[str, Any]) -> None:
    created = client.beta.assistants.create(model=MODEL, **fields)
    for key, value in fields.items():
        got = getattr(created, key)
        if key == "tools":
            assert len(got) == len(value)
        else:
            assert got == value


@pytest.mark.parametrize("value", [0.3, 0.1, 0.7, 1.9999999999999998, 1e-10])
def test_temperature_comes_back_exactly(client: openai.OpenAI, value: float) -> None:
    created = client.beta.assistants.create(model=MODEL, temperature=value, top_p=value / 2)
    assert created.temperature == value
    assert created.top_p == value / 2
    fetched = client.beta.assistants.retrieve(created.id)
    assert fetched.temperature == value
    assert fetched.top_p == value / 2


def test_unknown_provider_prefix(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.assistants.create(model="nosuch/model")
    assert_api_error(info.value, 400, "invalid_request_error", param="model")
    assistant = client.beta.assistants.create(model=MODEL)
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.assistants.update(assistant.id, model="nosuch/model")
    assert_api_error(info.value, 400, "invalid_request_error", param="model")


def test_invalid_function_name(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.assistants.create(
            model=MODEL, tools=[{"type": "function", "function": {"name": "has space"}}]
        )
    assert_api_error(info.value, 400, "invalid_request_error")
    assert info.value.param is not None
    assert info.value.param.startswith("tools[0]")


# Paging parameters


def _list_assistants(client: openai.OpenAI, **query: Any) -> int:
    client.beta.assistants.create(model=MODEL)  # so that the list is never empty
    return len(client.beta.assistants.list(extra_query=query).data)


def _list_messages(client: openai.OpenAI, **query: Any) -> int:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "x"}])
    return len(client.beta.threads.messages.list(thread.id, extra_query=query).data)


LISTERS: dict[str, Callable[..., int]] = {
    "assistants": _list_assistants,
    "messages": _list_messages,
}


@pytest.mark.parametrize("lister", LISTERS)
@pytest.mark.parametrize("limit", [0, 101, -1])
def test_limit_out_of_range(client: openai.OpenAI, lister: str, limit: int) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        LISTERS[lister](client, limit=limit)
    assert_api_error(info.value, 400, "invalid_request_error", param="limit")


@pytest.mark.parametrize("lister", LISTERS)
def test_limit_not_a_number(client: openai.OpenAI, lister: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        LISTERS[lister](client, limit="ten")
    assert_api_error(info.value, 400, "invalid_request_error", param="limit")


@pytest.mark.parametrize("lister", LISTERS)
@pytest.mark.parametrize("limit", [1, 100])
def test_limit_at_the_edges(client: openai.OpenAI, lister: str, limit: int) -> None:
    count = LISTERS[lister](client, limit=limit)
    assert 1 <= count <= limit


@pytest.mark.parametrize("lister", LISTERS)
@pytest.mark.parametrize("order", ["bogus", "ASCENDING"])
def test_bogus_order(client: openai.OpenAI, lister: str, order: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        LISTERS[lister](client, order=order)
    assert_api_error(info.value, 400, "invalid_request_error", param="order")


# Unknown IDs


def test_unknown_assistant(client: openai.OpenAI) -> None:
    for call in (
        lambda: client.beta.assistants.retrieve("asst_doesnotexist"),
        lambda: client.beta.assistants.update("asst_doesnotexist", name="x"),
        lambda: client.beta.assistants.delete("asst_doesnotexist"),
    ):
        with pytest.raises(openai.NotFoundError) as info:
            call()
        assert_api_error(info.value, 404, "invalid_request_error")


def test_unknown_thread(client: openai.OpenAI) -> None:
    for call in (
        lambda: client.beta.threads.retrieve("thread_doesnotexist"),
        lambda: client.beta.threads.update("thread_doesnotexist", metadata={}),
        lambda: client.beta.threads.delete("thread_doesnotexist"),
        lambda: client.beta.threads.messages.list("thread_doesnotexist"),
        lambda: client.beta.threads.messages.create(
            "thread_doesnotexist", role="user", content="hello?"
        ),
    ):
        with pytest.raises(openai.NotFoundError) as info:
            call()
        assert_api_error(info.value, 404, "invalid_request_error")


def test_unknown_message(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create()
    for call in (
        lambda: client.beta.threads.messages.retrieve("msg_doesnotexist", thread_id=thread.id),
        lambda: client.beta.threads.messages.update(
            "msg_doesnotexist", thread_id=thread.id, metadata={}
        ),
        lambda: client.beta.threads.messages.delete("msg_doesnotexist", thread_id=thread.id),
    ):
        with pytest.raises(openai.NotFoundError) as info:
            call()
        assert_api_error(info.value, 404, "invalid_request_error")


def test_unknown_file(client: openai.OpenAI) -> None:
    for call in (
        lambda: client.files.retrieve("file-doesnotexist"),
        lambda: client.files.content("file-doesnotexist"),
        lambda: client.files.delete("file-doesnotexist"),
    ):
        with pytest.raises(openai.NotFoundError) as info:
            call()
        assert_api_error(info.value, 404, "invalid_request_error")


@pytest.mark.parametrize("cursor", ["after", "before"])
def test_unknown_paging_cursor(client: openai.OpenAI, cursor: str) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.threads.messages.list(thread.id, extra_query={cursor: "msg_doesnotexist"})
    assert_api_error(info.value, 400, "invalid_request_error", param=cursor)


# Message content


def test_message_text_over_the_limit(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create()
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.threads.messages.create(thread.id, role="user", content="x" * 256_001)
    assert_api_error(info.value, 400, "invalid_request_error", param_prefix="content")
    at_limit = client.beta.threads.messages.create(thread.id, role="user", content="x" * 256_000)
    part = at_limit.content[0]
    assert part.type == "text"
    assert len(part.text.value) == 256_000


@pytest.mark.parametrize("content", ["", []], ids=["empty-string", "empty-array"])
def test_empty_message_content(client: openai.OpenAI, content: str | list[Any]) -> None:
    # The server's own rule: "a non-empty string or array of content parts" (as OpenAI's).
    thread = client.beta.threads.create()
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.threads.messages.create(thread.id, role="user", content=content)
    assert_api_error(info.value, 400, "invalid_request_error", param_prefix="content")
    assert client.beta.threads.messages.list(thread.id).data == []


def test_message_role_must_be_user_or_assistant(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create()
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.threads.messages.create(thread.id, role="system", content="x")  # type: ignore[arg-type]
    assert_api_error(info.value, 400, "invalid_request_error", param="role")
