"""Assistants over HTTP with the official SDK: create, read, update, delete and paging."""

from __future__ import annotations

import json
from typing import Any, Literal

import openai
import pytest
from harness import Clock, MakeClient, MakeServer, assert_api_error

MODEL = "builtin/echo"

FUNCTION_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "zeta": {"type": "number", "minimum": 0.1, "maximum": 1e21},
        "alpha": {"type": "string", "description": "ключ 🔑"},
        "middle": {"type": "integer", "enum": [3, 1, 2]},
    },
    "required": ["zeta", "alpha"],
    "additionalProperties": False,
}


def test_create_returns_everything_it_was_given(client: openai.OpenAI, tag: str) -> None:
    clock = Clock()
    created = client.beta.assistants.create(
        model=MODEL,
        name="Math tutor",
        description="Helps with sums",
        instructions="You are a personal math tutor.",
        metadata={"tag": tag, "kind": "tutor"},
        temperature=0.3,
        top_p=0.9,
        tools=[
            {"type": "code_interpreter"},
            {
                "type": "function",
                "function": {
                    "name": "lookup",
                    "description": "Looks things up",
                    "parameters": FUNCTION_PARAMETERS,
                },
            },
        ],
        response_format={"type": "json_object"},
    )
    assert created.id.startswith("asst_")
    assert len(created.id) == len("asst_") + 24
    assert created.object == "assistant"
    clock.check(created.created_at)
    assert created.model == MODEL
    assert created.name == "Math tutor"
    assert created.description == "Helps with sums"
    assert created.instructions == "You are a personal math tutor."
    assert created.metadata == {"tag": tag, "kind": "tutor"}
    assert created.temperature == 0.3
    assert created.top_p == 0.9
    assert [tool.type for tool in created.tools] == ["code_interpreter", "function"]
    function_tool = created.tools[1]
    assert function_tool.type == "function"
    assert function_tool.function.name == "lookup"
    assert function_tool.function.description == "Looks things up"
    assert function_tool.function.parameters == FUNCTION_PARAMETERS
    assert created.response_format is not None
    assert not isinstance(created.response_format, str)
    assert created.response_format.type == "json_object"

    fetched = client.beta.assistants.retrieve(created.id)
    assert fetched.model_dump() == created.model_dump()


def test_defaults_of_a_bare_assistant(client: openai.OpenAI) -> None:
    created = client.beta.assistants.create(model=MODEL)
    assert created.name is None
    assert created.description is None
    assert created.instructions is None
    assert created.tools == []
    assert created.metadata == {}
    assert created.temperature == 1
    assert created.top_p == 1
    assert created.response_format == "auto"


def test_function_parameters_come_back_exactly(client: openai.OpenAI) -> None:
    # Key order and values are the client's; the raw JSON must keep both.
    created = client.beta.assistants.with_raw_response.create(
        model=MODEL,
        tools=[{"type": "function", "function": {"name": "f", "parameters": FUNCTION_PARAMETERS}}],
    )
    body = json.loads(created.text)
    parameters = body["tools"][0]["function"]["parameters"]
    assert list(parameters) == list(FUNCTION_PARAMETERS)
    assert list(parameters["properties"]) == ["zeta", "alpha", "middle"]
    assert parameters["properties"]["middle"]["enum"] == [3, 1, 2]
    assert parameters["properties"]["zeta"]["minimum"] == 0.1
    assert parameters["properties"]["alpha"]["description"] == "ключ 🔑"


def test_function_tool_by_name_alone(client: openai.OpenAI) -> None:
    created = client.beta.assistants.create(
        model=MODEL, tools=[{"type": "function", "function": {"name": "client_side_tool"}}]
    )
    assert len(created.tools) == 1
    tool = created.tools[0]
    assert tool.type == "function"
    assert tool.function.name == "client_side_tool"


@pytest.mark.parametrize("model", ["gpt-4o-mini", "builtin/echo", "ollama/llama3.2:3b"])
def test_model_string_is_kept_verbatim(client: openai.OpenAI, model: str) -> None:
    created = client.beta.assistants.create(model=model)
    assert created.model == model
    assert client.beta.assistants.retrieve(created.id).model == model


def test_update_changes_only_what_was_sent(client: openai.OpenAI, tag: str) -> None:
    created = client.beta.assistants.create(
        model=MODEL,
        name="before",
        instructions="keep me",
        metadata={"tag": tag, "old": "1"},
        temperature=0.5,
    )
    updated = client.beta.assistants.update(
        created.id, name="after", metadata={"tag": tag, "new": "2"}, temperature=0.7
    )
    assert updated.id == created.id
    assert updated.created_at == created.created_at
    assert updated.name == "after"
    assert updated.metadata == {"tag": tag, "new": "2"}, "metadata is replaced as a whole"
    assert updated.temperature == 0.7
    assert updated.instructions == "keep me"
    assert updated.model == MODEL
    assert client.beta.assistants.retrieve(created.id).model_dump() == updated.model_dump()


def test_update_model_and_tools(client: openai.OpenAI) -> None:
    created = client.beta.assistants.create(model=MODEL, tools=[{"type": "code_interpreter"}])
    updated = client.beta.assistants.update(
        created.id, model="gpt-4o", tools=[{"type": "file_search"}]
    )
    assert updated.model == "gpt-4o"
    assert [tool.type for tool in updated.tools] == ["file_search"]
    cleared = client.beta.assistants.update(created.id, tools=[])
    assert cleared.tools == []
    assert cleared.model == "gpt-4o"


def test_delete_then_gone(client: openai.OpenAI) -> None:
    created = client.beta.assistants.create(model=MODEL)
    deleted = client.beta.assistants.delete(created.id)
    assert deleted.id == created.id
    assert deleted.deleted is True
    assert deleted.object == "assistant.deleted"
    with pytest.raises(openai.NotFoundError) as info:
        client.beta.assistants.retrieve(created.id)
    assert_api_error(info.value, 404, "invalid_request_error")
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.update(created.id, name="ghost")


def test_list_places_new_assistants_in_creation_order(client: openai.OpenAI) -> None:
    # The session server holds other tests' assistants: page relative to our own first one.
    ids = [client.beta.assistants.create(model=MODEL, name=f"rel-{i}").id for i in range(4)]
    after_first = client.beta.assistants.list(order="asc", after=ids[0], limit=3)
    assert [a.id for a in after_first.data] == ids[1:]
    newest = client.beta.assistants.list(limit=4)
    assert [a.id for a in newest.data] == ids[::-1], "desc is the default order"


# Paging against a server of the test's own, where the total is known.

TOTAL = 25


@pytest.fixture
def paged(make_server: MakeServer, make_client: MakeClient) -> tuple[openai.OpenAI, list[str]]:
    """A fresh server holding exactly TOTAL assistants; their IDs oldest first."""
    client = make_client(make_server())
    ids = [client.beta.assistants.create(model=MODEL, name=f"n{i}").id for i in range(TOTAL)]
    return client, ids


Order = Literal["asc", "desc"]


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_paging_forward_with_after(paged: tuple[openai.OpenAI, list[str]], order: Order) -> None:
    client, ids = paged
    expected = ids if order == "asc" else ids[::-1]
    seen: list[str] = []
    after: str | None = None
    for start in range(0, TOTAL, 7):
        if after is None:
            page = client.beta.assistants.list(order=order, limit=7)
        else:
            page = client.beta.assistants.list(order=order, limit=7, after=after)
        chunk = expected[start : start + 7]
        assert [a.id for a in page.data] == chunk
        assert page.has_more is (start + 7 < TOTAL)
        body = page.model_dump()
        assert body["first_id"] == chunk[0]
        assert body["last_id"] == chunk[-1]
        seen.extend(chunk)
        after = chunk[-1]
    assert seen == expected


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_paging_backward_with_before(paged: tuple[openai.OpenAI, list[str]], order: Order) -> None:
    client, ids = paged
    expected = ids if order == "asc" else ids[::-1]
    # The page closest to the cursor, still in the requested order.
    page = client.beta.assistants.list(order=order, limit=7, before=expected[20])
    assert [a.id for a in page.data] == expected[13:20]
    assert page.has_more is True
    page = client.beta.assistants.list(order=order, limit=7, before=expected[7])
    assert [a.id for a in page.data] == expected[0:7]
    assert page.has_more is False
    page = client.beta.assistants.list(order=order, limit=7, before=expected[3])
    assert [a.id for a in page.data] == expected[0:3]
    assert page.has_more is False
    page = client.beta.assistants.list(order=order, limit=7, before=expected[0])
    assert page.data == []
    assert page.has_more is False


def test_paging_edges_are_exact(paged: tuple[openai.OpenAI, list[str]]) -> None:
    client, ids = paged
    assert client.beta.assistants.list(limit=TOTAL).has_more is False
    assert client.beta.assistants.list(limit=TOTAL - 1).has_more is True
    everything = client.beta.assistants.list(limit=100, order="asc")
    assert [a.id for a in everything.data] == ids
    assert everything.has_more is False
    last = client.beta.assistants.list(order="asc", after=ids[-2], limit=1)
    assert [a.id for a in last.data] == [ids[-1]]
    assert last.has_more is False
    beyond = client.beta.assistants.list(order="asc", after=ids[-1])
    assert beyond.data == []
    assert beyond.has_more is False
    default = client.beta.assistants.list()
    assert [a.id for a in default.data] == ids[::-1][:20], "default: 20, newest first"
    assert default.has_more is True


def test_auto_pagination_yields_each_once_in_order(paged: tuple[openai.OpenAI, list[str]]) -> None:
    client, ids = paged
    assert [a.id for a in client.beta.assistants.list(limit=7)] == ids[::-1]
    first = client.beta.assistants.list(limit=7, order="asc")
    assert [a.id for a in first] == ids
    assert len(list(first.iter_pages())) == 4, "has_more must be false on the last page"


def test_deleted_assistant_leaves_the_list(paged: tuple[openai.OpenAI, list[str]]) -> None:
    client, ids = paged
    client.beta.assistants.delete(ids[5])
    listed = [a.id for a in client.beta.assistants.list(limit=100, order="asc").data]
    assert listed == ids[:5] + ids[6:]


def test_tool_resources_round_trip(client: openai.OpenAI) -> None:
    uploaded = client.files.create(file=("data.csv", b"a,b\n1,2\n"), purpose="assistants")
    created = client.beta.assistants.create(
        model=MODEL,
        tools=[{"type": "code_interpreter"}],
        tool_resources={"code_interpreter": {"file_ids": [uploaded.id]}},
    )
    assert created.tool_resources is not None
    assert created.tool_resources.code_interpreter is not None
    assert created.tool_resources.code_interpreter.file_ids == [uploaded.id]
    assert client.beta.assistants.retrieve(created.id).model_dump() == created.model_dump()


def test_tool_resources_must_name_real_files(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.beta.assistants.create(
            model=MODEL, tool_resources={"code_interpreter": {"file_ids": ["file-doesnotexist"]}}
        )
    assert_api_error(
        info.value,
        404,
        "invalid_request_error",
        param="tool_resources.code_interpreter.file_ids[0]",
    )
