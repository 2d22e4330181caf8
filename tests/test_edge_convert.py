"""Unit tests of the HTTP edge's pure parts: JSON ⇄ proto converters, query parsing, SSE
rendering and the translation of gRPC errors into OpenAI's error JSON.

Every response converter is also checked against OpenAI's own schema (the spec the e2e suite
validates with), so a field the spec requires cannot go missing unnoticed.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import grpc
import orjson
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from harness.schema import load_spec
from jsonschema import Draft202012Validator
from multidict import MultiDict
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from compat_core.errors import (
    ApiError,
    invalid,
    not_found,
    precondition,
    too_large,
    unauthenticated,
    unimplemented,
)
from compat_core.v1 import (
    assistants_pb2,
    common_pb2,
    files_pb2,
    messages_pb2,
    models_pb2,
    runs_pb2,
    threads_pb2,
)
from http_edge.convert import assistants, files, messages, models, runs, threads
from http_edge.convert.common import response_format_in, response_format_out, tools_in
from http_edge.errors import CURRENT_REQUEST_ID, HttpError, from_rpc_error
from http_edge.json_io import include_param, page_params
from http_edge.routes.sse import DONE, render_event, render_rpc_error

# --------------------------------------------------------------------------------- helpers

_SPEC_URI = "urn:test-edge-convert:spec"


@functools.cache
def _validator(schema: str) -> Draft202012Validator:
    resource: Resource[Any] = Resource.from_contents(load_spec(), default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(_SPEC_URI, resource)
    return Draft202012Validator(
        {"$ref": f"{_SPEC_URI}#/components/schemas/{schema}"}, registry=registry
    )


def assert_schema(schema: str, body: object) -> None:
    """`body` matches OpenAI's component schema `schema` (JSON round trip first)."""
    decoded = orjson.loads(orjson.dumps(body))
    errors = sorted(_validator(schema).iter_errors(decoded), key=str)
    assert not errors, f"{schema}: {[e.message for e in errors]}"


def assert_http_error(
    err: pytest.ExceptionInfo[HttpError], status: int, param: str | None, code: str | None = None
) -> None:
    assert err.value.status == status
    assert err.value.param == param
    if code is not None:
        assert err.value.code == code


def rpc_error_of(api_error: ApiError) -> grpc.aio.AioRpcError:
    """The AioRpcError a client sees when the core aborts with `api_error`."""
    status = api_error.to_status()
    return grpc.aio.AioRpcError(
        status.code,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(*status.trailing_metadata),
        status.details,
    )


def bare_rpc_error(
    code: grpc.StatusCode, details: str = "transport says no"
) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


def stored_assistant(request: assistants_pb2.CreateAssistantRequest) -> assistants_pb2.Assistant:
    """What a core would answer for `request`."""
    answer = assistants_pb2.Assistant()
    answer.CopyFrom(request.assistant)
    answer.id = "asst_" + "a" * 24
    answer.created_at = 1_700_000_000
    return answer


# ---------------------------------------------------------------------------- assistants

FULL_ASSISTANT_BODY: dict[str, Any] = {
    "model": "ollama/llama3.2:3b",
    "name": "Helper",
    "description": "Helps",
    "instructions": "Be brief.",
    "reasoning_effort": "low",
    "tools": [
        {"type": "code_interpreter"},
        {
            "type": "file_search",
            "file_search": {
                "max_num_results": 7,
                "ranking_options": {"ranker": "auto", "score_threshold": 0.25},
            },
        },
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "t": {"type": "number", "minimum": 0.1, "maximum": 1e-7},
                        "n": {"type": "integer", "maximum": 9007199254740993},
                    },
                    "required": ["t"],
                },
                "strict": True,
            },
        },
    ],
    "tool_resources": {
        "code_interpreter": {"file_ids": ["file-1"]},
        "file_search": {"vector_stores": [{"file_ids": ["file-2"], "metadata": {"k": "v"}}]},
    },
    "metadata": {"team": "a"},
    "temperature": 0.3,
    "top_p": 0.9,
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": False},
    },
}


def test_assistant_create_maps_every_field() -> None:
    request = assistants.create_request(FULL_ASSISTANT_BODY)
    a = request.assistant
    assert a.model == "ollama/llama3.2:3b"
    assert (a.name, a.description, a.instructions) == ("Helper", "Helps", "Be brief.")
    assert a.reasoning_effort == "low"
    assert [t.WhichOneof("kind") for t in a.tools] == [
        "code_interpreter",
        "file_search",
        "function",
    ]
    assert a.tools[1].file_search.max_num_results == 7
    assert a.tools[1].file_search.ranking_options.score_threshold == 0.25
    assert a.tool_resources.file_search.vector_stores[0].file_ids == ["file-2"]
    assert a.temperature == 0.3
    assert a.top_p == 0.9
    assert a.response_format.type == common_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA
    assert dict(a.metadata) == {"team": "a"}


def test_assistant_round_trip_keeps_client_values_exactly() -> None:
    out = assistants.assistant_out(stored_assistant(assistants.create_request(FULL_ASSISTANT_BODY)))
    assert_schema("AssistantObject", out)
    assert out["object"] == "assistant"
    assert out["temperature"] == 0.3
    assert out["top_p"] == 0.9
    function = out["tools"][2]["function"]
    assert function == FULL_ASSISTANT_BODY["tools"][2]["function"]
    # Numbers and key order of the schema come back as sent.
    assert orjson.dumps(function["parameters"]) == orjson.dumps(
        FULL_ASSISTANT_BODY["tools"][2]["function"]["parameters"]
    )
    assert out["tools"][1] == FULL_ASSISTANT_BODY["tools"][1]
    assert out["response_format"] == FULL_ASSISTANT_BODY["response_format"]
    # Inline vector stores are a create-only input; the answer lists store IDs.
    assert out["tool_resources"] == {
        "code_interpreter": {"file_ids": ["file-1"]},
        "file_search": {"vector_store_ids": []},
    }
    assert out["reasoning_effort"] == "low"


def test_assistant_unset_fields_are_null_and_required_fields_present() -> None:
    out = assistants.assistant_out(
        stored_assistant(assistants.create_request({"model": "builtin/echo"}))
    )
    assert_schema("AssistantObject", out)
    for key in ("name", "description", "instructions", "temperature", "top_p"):
        assert key in out
        assert out[key] is None
    assert out["tools"] == []
    assert out["metadata"] == {}
    assert out["tool_resources"] == {}
    assert out["response_format"] == "auto"
    assert "reasoning_effort" not in out


def test_assistant_create_null_means_unset() -> None:
    a = assistants.create_request(
        {"model": "m", "name": None, "temperature": None, "metadata": None}
    ).assistant
    assert not a.HasField("name")
    assert not a.HasField("temperature")
    assert len(a.metadata) == 0


def test_assistant_values_are_not_judged_by_the_edge() -> None:
    a = assistants.create_request({"model": "m", "temperature": 5, "top_p": -1.5}).assistant
    assert a.temperature == 5.0
    assert a.top_p == -1.5


def test_assistant_update_mask_lists_present_fields() -> None:
    request = assistants.update_request(
        "asst_1", {"name": None, "metadata": {"a": "b"}, "temperature": 0.5, "tools": []}
    )
    assert request.assistant.id == "asst_1"
    assert list(request.update_mask.paths) == ["name", "metadata", "temperature", "tools"]
    assert not request.assistant.HasField("name")  # named and unset: cleared
    assert request.assistant.temperature == 0.5


def test_assistant_update_refuses_inline_vector_stores() -> None:
    with pytest.raises(HttpError) as err:
        assistants.update_request(
            "asst_1", {"tool_resources": {"file_search": {"vector_stores": []}}}
        )
    assert_http_error(err, 400, "tool_resources.file_search.vector_stores")


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"name": "x"}, "model", "missing_required_parameter"),
        ({"model": None}, "model", "missing_required_parameter"),
        ({"model": 5}, "model", "invalid_type"),
        ({"model": "m", "name": 5}, "name", "invalid_type"),
        ({"model": "m", "tools": "x"}, "tools", "invalid_type"),
        ({"model": "m", "tools": [{"type": 1}]}, "tools[0].type", "invalid_type"),
        ({"model": "m", "tools": [{"type": "web"}]}, "tools[0].type", "invalid_value"),
        ({"model": "m", "tools": [{}]}, "tools[0].type", "missing_required_parameter"),
        ({"model": "m", "tools": [{"type": "function"}]}, "tools[0].function", None),
        (
            {"model": "m", "tools": [{"type": "function", "function": {"name": 1}}]},
            "tools[0].function.name",
            "invalid_type",
        ),
        (
            {"model": "m", "tools": [{"type": "function", "function": {"name": "f", "x": 1}}]},
            "tools[0].function.x",
            None,
        ),
        (
            {
                "model": "m",
                "tools": [{"type": "function", "function": {"name": "f", "parameters": []}}],
            },
            "tools[0].function.parameters",
            "invalid_type",
        ),
        ({"model": "m", "metadata": {"a": 1}}, "metadata.a", "invalid_type"),
        ({"model": "m", "metadata": "x"}, "metadata", "invalid_type"),
        ({"model": "m", "temperature": "hot"}, "temperature", "invalid_type"),
        ({"model": "m", "temperature": True}, "temperature", "invalid_type"),
        ({"model": "m", "response_format": "json"}, "response_format", "invalid_value"),
        (
            {"model": "m", "response_format": {"type": "yaml"}},
            "response_format.type",
            "invalid_value",
        ),
        (
            {"model": "m", "tool_resources": {"code_interpreter": {"file_ids": [1]}}},
            "tool_resources.code_interpreter.file_ids[0]",
            "invalid_type",
        ),
        ({"model": "m", "surprise": 1}, "surprise", None),
    ],
)
def test_assistant_type_errors_name_the_param(
    body: dict[str, Any], param: str, code: str | None
) -> None:
    with pytest.raises(HttpError) as err:
        assistants.create_request(body)
    assert_http_error(err, 400, param, code)
    assert err.value.error_type == "invalid_request_error"


def test_unknown_top_level_argument_message() -> None:
    with pytest.raises(HttpError) as err:
        assistants.create_request({"model": "m", "foo": 1})
    assert err.value.message == "Unrecognized request argument supplied: foo"


def test_assistant_list_and_delete_shapes() -> None:
    answer = assistants_pb2.ListAssistantsResponse(
        data=[assistants_pb2.Assistant(id="asst_1", model="m")],
        first_id="asst_1",
        last_id="asst_1",
        has_more=True,
    )
    out = assistants.list_response_out(answer)
    assert_schema("ListAssistantsResponse", out)
    assert out["object"] == "list"
    assert (out["first_id"], out["last_id"], out["has_more"]) == ("asst_1", "asst_1", True)
    empty = assistants.list_response_out(assistants_pb2.ListAssistantsResponse())
    assert_schema("ListAssistantsResponse", empty)
    assert (empty["first_id"], empty["last_id"], empty["data"]) == ("", "", [])
    deleted = assistants.deleted_response_out(common_pb2.DeletionStatus(id="asst_1", deleted=True))
    assert_schema("DeleteAssistantResponse", deleted)
    assert deleted == {"id": "asst_1", "object": "assistant.deleted", "deleted": True}


# --------------------------------------------------------------------- response formats


@pytest.mark.parametrize(
    "value",
    [
        "auto",
        {"type": "text"},
        {"type": "json_object"},
        {
            "type": "json_schema",
            "json_schema": {
                "name": "n",
                "description": "d",
                "schema": {"type": "object", "x": 1.5},
                "strict": True,
            },
        },
    ],
)
def test_response_format_round_trip(value: object) -> None:
    assert response_format_out(response_format_in(value)) == value


def test_response_format_unspecified_reads_as_auto() -> None:
    assert response_format_out(common_pb2.ResponseFormat()) == "auto"


def test_inline_vector_store_chunking_is_carried_to_the_core() -> None:
    static = {"type": "static", "static": {"max_chunk_size_tokens": 300, "chunk_overlap_tokens": 0}}
    request = threads.create_thread_in(
        {"tool_resources": {"file_search": {"vector_stores": [{"chunking_strategy": static}]}}}
    )
    spec = request.tool_resources.file_search.vector_stores[0]
    assert spec.chunking_strategy.static.max_chunk_size_tokens == 300
    assert spec.chunking_strategy.static.chunk_overlap_tokens == 0
    with pytest.raises(HttpError) as err:
        threads.create_thread_in(
            {
                "tool_resources": {
                    "file_search": {"vector_stores": [{"chunking_strategy": {"type": "fixed"}}]}
                }
            }
        )
    assert_http_error(
        err, 400, "tool_resources.file_search.vector_stores[0].chunking_strategy.type"
    )


def test_function_tool_minimal_round_trip() -> None:
    (tool,) = tools_in([{"type": "function", "function": {"name": "calculator"}}])
    assert not tool.function.HasField("parameters_json")
    assert not tool.function.HasField("strict")
    out = assistants.assistant_out(assistants_pb2.Assistant(tools=[tool]))
    assert out["tools"] == [{"type": "function", "function": {"name": "calculator"}}]


# ------------------------------------------------------------------------------ messages


def test_message_content_string_is_one_text_part() -> None:
    request = messages.create_request("thread_1", {"role": "user", "content": "hello"})
    assert request.thread_id == "thread_1"
    (part,) = request.message.content
    assert part.text.value == "hello"
    assert request.message.role == messages_pb2.MESSAGE_ROLE_USER


def test_message_content_empty_string_is_no_part() -> None:
    request = messages.create_request("thread_1", {"role": "user", "content": ""})
    assert len(request.message.content) == 0


def test_message_content_parts() -> None:
    body = {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "look"},
            {"type": "image_file", "image_file": {"file_id": "file-1", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
        ],
        "attachments": [{"file_id": "file-2", "tools": [{"type": "file_search"}]}],
        "metadata": {"k": "v"},
    }
    message = messages.create_request("t", body).message
    assert message.role == messages_pb2.MESSAGE_ROLE_ASSISTANT
    assert [p.WhichOneof("part") for p in message.content] == ["text", "image_file", "image_url"]
    assert message.content[1].image_file.detail == messages_pb2.IMAGE_DETAIL_HIGH
    assert message.content[2].image_url.detail == messages_pb2.IMAGE_DETAIL_UNSPECIFIED
    assert list(message.attachments[0].tools) == [messages_pb2.ATTACHMENT_TOOL_FILE_SEARCH]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"content": "x"}, "role"),
        ({"role": "system", "content": "x"}, "role"),
        ({"role": "user"}, "content"),
        ({"role": "user", "content": 3}, "content"),
        ({"role": "user", "content": [{"type": "audio"}]}, "content[0].type"),
        ({"role": "user", "content": [{"type": "text", "text": 1}]}, "content[0].text"),
        (
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "u", "detail": "max"}}],
            },
            "content[0].image_url.detail",
        ),
        (
            {"role": "user", "content": "x", "attachments": [{"tools": [{"type": "web"}]}]},
            "attachments[0].tools[0].type",
        ),
        ({"role": "user", "content": "x", "attachments": "a"}, "attachments"),
    ],
)
def test_message_input_errors(body: dict[str, Any], param: str) -> None:
    with pytest.raises(HttpError) as err:
        messages.create_request("t", body)
    assert_http_error(err, 400, param)


def _message(**fields: Any) -> messages_pb2.Message:
    return messages_pb2.Message(
        id="msg_1",
        created_at=1,
        thread_id="thread_1",
        status=messages_pb2.MESSAGE_STATUS_COMPLETED,
        role=messages_pb2.MESSAGE_ROLE_USER,
        **fields,
    )


def test_message_out_required_fields_and_nulls() -> None:
    out = messages.message_out(
        _message(content=[messages_pb2.MessageContent(text=messages_pb2.TextContent(value="hi"))])
    )
    assert_schema("MessageObject", out)
    assert out["object"] == "thread.message"
    for key in ("incomplete_details", "completed_at", "incomplete_at", "assistant_id", "run_id"):
        assert out[key] is None
    assert out["attachments"] == []
    assert out["content"] == [{"type": "text", "text": {"value": "hi", "annotations": []}}]
    assert (out["status"], out["role"]) == ("completed", "user")


def test_message_out_full() -> None:
    text = messages_pb2.TextContent(value="see [1]")
    annotation = text.annotations.add(text="[1]", start_index=4, end_index=7)
    annotation.file_citation.file_id = "file-9"
    message = _message(
        content=[
            messages_pb2.MessageContent(text=text),
            messages_pb2.MessageContent(
                image_file=messages_pb2.ImageFileContent(
                    file_id="file-1", detail=messages_pb2.IMAGE_DETAIL_LOW
                )
            ),
            messages_pb2.MessageContent(image_url=messages_pb2.ImageUrlContent(url="u")),
            messages_pb2.MessageContent(refusal="no"),
        ],
        attachments=[
            messages_pb2.Attachment(
                file_id="file-2", tools=[messages_pb2.ATTACHMENT_TOOL_CODE_INTERPRETER]
            )
        ],
        assistant_id="asst_1",
        run_id="run_1",
        completed_at=5,
        incomplete_details=messages_pb2.MessageIncompleteDetails(
            reason=messages_pb2.MESSAGE_INCOMPLETE_REASON_MAX_TOKENS
        ),
    )
    out = messages.message_out(message)
    assert_schema("MessageObject", out)
    assert out["content"][0]["text"]["annotations"] == [
        {
            "type": "file_citation",
            "text": "[1]",
            "file_citation": {"file_id": "file-9"},
            "start_index": 4,
            "end_index": 7,
        }
    ]
    assert out["content"][1] == {
        "type": "image_file",
        "image_file": {"file_id": "file-1", "detail": "low"},
    }
    assert out["content"][2] == {"type": "image_url", "image_url": {"url": "u"}}
    assert out["content"][3] == {"type": "refusal", "refusal": "no"}
    assert out["attachments"] == [{"file_id": "file-2", "tools": [{"type": "code_interpreter"}]}]
    assert out["incomplete_details"] == {"reason": "max_tokens"}
    assert (out["assistant_id"], out["run_id"], out["completed_at"]) == ("asst_1", "run_1", 5)


def test_message_update_and_list() -> None:
    request = messages.update_request("t", "m", {"metadata": None})
    assert list(request.update_mask.paths) == ["metadata"]
    assert (request.message.thread_id, request.message.id) == ("t", "m")
    with pytest.raises(HttpError) as err:
        messages.update_request("t", "m", {"content": "x"})
    assert_http_error(err, 400, "content")
    listing = messages.list_request("t", page_params(MultiDict(limit="5")), "run_1")
    assert (listing.limit, listing.run_id) == (5, "run_1")
    out = messages.list_response_out(messages_pb2.ListMessagesResponse(data=[_message()]))
    assert_schema("ListMessagesResponse", out)
    deleted = messages.deleted_response_out(common_pb2.DeletionStatus(id="m", deleted=True))
    assert_schema("DeleteMessageResponse", deleted)
    assert deleted["object"] == "thread.message.deleted"


# ------------------------------------------------------------------------------- threads


def test_thread_create_with_messages_and_resources() -> None:
    request = threads.create_thread_in(
        {
            "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
            "tool_resources": {"code_interpreter": {"file_ids": []}},
            "metadata": {"x": "y"},
        }
    )
    assert [m.content[0].text.value for m in request.messages] == ["a", "b"]
    assert request.tool_resources.HasField("code_interpreter")
    assert dict(request.metadata) == {"x": "y"}


def test_thread_create_error_params_are_nested() -> None:
    with pytest.raises(HttpError) as err:
        threads.create_thread_in({"messages": [{"role": "user", "content": 1}]})
    assert_http_error(err, 400, "messages[0].content")


def test_thread_update_mask() -> None:
    request = threads.update_request("thread_1", {"tool_resources": None, "metadata": {"a": "b"}})
    assert list(request.update_mask.paths) == ["tool_resources", "metadata"]
    assert not request.thread.HasField("tool_resources")
    assert threads.update_request("thread_1", {}).update_mask.paths == []


def test_thread_out() -> None:
    thread = threads_pb2.Thread(id="thread_1", created_at=3)
    out = threads.thread_out(thread)
    assert_schema("ThreadObject", out)
    assert out == {
        "id": "thread_1",
        "object": "thread",
        "created_at": 3,
        "tool_resources": {},
        "metadata": {},
    }
    thread.tool_resources.file_search.vector_store_ids.append("vs_1")
    assert threads.thread_out(thread)["tool_resources"] == {
        "file_search": {"vector_store_ids": ["vs_1"]}
    }
    deleted = threads.deleted_response_out(common_pb2.DeletionStatus(id="t", deleted=True))
    assert_schema("DeleteThreadResponse", deleted)
    assert deleted["object"] == "thread.deleted"


# -------------------------------------------------------------------------- files, models


def test_file_out_and_list() -> None:
    stored = files_pb2.File(
        id="file-1",
        bytes=10,
        created_at=2,
        filename="a.txt",
        purpose="assistants",
        status=files_pb2.FILE_STATUS_PROCESSED,
    )
    out = files.file_out(stored)
    assert_schema("OpenAIFile", out)
    assert out["object"] == "file"
    assert out["status"] == "processed"
    assert "expires_at" not in out
    assert "status_details" not in out
    stored.expires_at = 99
    assert files.file_out(stored)["expires_at"] == 99
    listing = files.list_response_out(files_pb2.ListFilesResponse(data=[stored]))
    assert_schema("ListFilesResponse", listing)
    deleted = files.deleted_response_out(common_pb2.DeletionStatus(id="file-1", deleted=True))
    assert_schema("DeleteFileResponse", deleted)
    assert deleted == {"id": "file-1", "object": "file", "deleted": True}


def test_file_upload_metadata() -> None:
    first = files.upload_metadata(
        "a.txt", "assistants", files.expires_after_in("created_at", "3600")
    )
    assert first.WhichOneof("payload") == "metadata"
    assert first.metadata.expires_after_seconds == 3600
    assert not files.upload_metadata("a", "b", None).metadata.HasField("expires_after_seconds")
    assert files.expires_after_in(None, None) is None
    with pytest.raises(HttpError) as err:
        files.expires_after_in("last_used", "3600")
    assert_http_error(err, 400, "expires_after[anchor]")
    with pytest.raises(HttpError) as err:
        files.expires_after_in("created_at", "soon")
    assert_http_error(err, 400, "expires_after[seconds]")
    with pytest.raises(HttpError) as err:
        files.expires_after_in("created_at", None)
    assert_http_error(err, 400, "expires_after[seconds]")


def test_models() -> None:
    model = models_pb2.Model(id="ollama/llama3.2:3b", created=0, owned_by="ollama")
    out = models.model_out(model)
    assert_schema("Model", out)
    assert out == {
        "id": "ollama/llama3.2:3b",
        "object": "model",
        "created": 0,
        "owned_by": "ollama",
    }
    listing = models.list_response_out(models_pb2.ListModelsResponse(data=[model]))
    assert_schema("ListModelsResponse", listing)
    assert set(listing) == {"object", "data"}
    deleted = models.deleted_response_out(common_pb2.DeletionStatus(id="m/x", deleted=False))
    assert_schema("DeleteModelResponse", deleted)


# ------------------------------------------------------------------------ query strings


def test_page_params() -> None:
    page = page_params(MultiDict(limit="10", order="asc", after="a", before="b"))
    assert page == (10, common_pb2.SORT_ORDER_ASC, "a", "b")
    page = page_params(MultiDict())
    assert page == (None, common_pb2.SORT_ORDER_UNSPECIFIED, "", "")
    assert page_params(MultiDict(order="desc")).order == common_pb2.SORT_ORDER_DESC
    assert page_params(MultiDict(limit="1000")).limit == 1000  # the range is the core's


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"limit": "ten"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"limit": "9" * 12}, "limit"),
        ({"order": "newest"}, "order"),
    ],
)
def test_page_params_errors(query: dict[str, str], param: str) -> None:
    with pytest.raises(HttpError) as err:
        page_params(MultiDict(query))
    assert_http_error(err, 400, param)


def test_include_param_accepts_both_spellings() -> None:
    query: MultiDict[str] = MultiDict([("include[]", "a"), ("include[]", "b"), ("include", "c")])
    assert include_param(query) == ["a", "b", "c"]


# ---------------------------------------------------------------------------------- runs


def test_create_run_request() -> None:
    body = {
        "assistant_id": "asst_1",
        "model": "builtin/echo",
        "instructions": "i",
        "additional_instructions": "more",
        "additional_messages": [{"role": "user", "content": "hi"}],
        "tools": [],
        "metadata": {"a": "b"},
        "temperature": 0.1,
        "top_p": 0.2,
        "stream": True,
        "max_prompt_tokens": 1000,
        "max_completion_tokens": 2000,
        "truncation_strategy": {"type": "last_messages", "last_messages": 3},
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "parallel_tool_calls": False,
        "response_format": {"type": "json_object"},
        "reasoning_effort": "high",
    }
    request, stream = runs.create_run_request("thread_1", body, ["x"])
    assert stream is True
    assert (request.thread_id, request.assistant_id, request.model) == (
        "thread_1",
        "asst_1",
        "builtin/echo",
    )
    assert request.HasField("tools")  # `[]` overrides the assistant's tools with none
    assert len(request.tools.tools) == 0
    assert request.additional_messages[0].content[0].text.value == "hi"
    assert request.truncation_strategy.type == runs_pb2.TRUNCATION_TYPE_LAST_MESSAGES
    assert request.truncation_strategy.last_messages == 3
    assert request.tool_choice.tool.function_name == "f"
    assert request.HasField("parallel_tool_calls")
    assert not request.parallel_tool_calls
    assert list(request.include) == ["x"]
    assert request.max_prompt_tokens == 1000


def test_create_run_defaults_leave_fields_unset() -> None:
    request, stream = runs.create_run_request("t", {"assistant_id": "a", "model": None}, [])
    assert stream is False
    for field in ("model", "tools", "temperature", "parallel_tool_calls", "tool_choice"):
        assert not request.HasField(field), field


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "assistant_id"),
        ({"assistant_id": "a", "stream": "yes"}, "stream"),
        ({"assistant_id": "a", "tool_choice": "sometimes"}, "tool_choice"),
        ({"assistant_id": "a", "tool_choice": {"function": {"name": "f"}}}, "tool_choice.type"),
        ({"assistant_id": "a", "truncation_strategy": {"type": "x"}}, "truncation_strategy.type"),
        ({"assistant_id": "a", "max_prompt_tokens": 1.5}, "max_prompt_tokens"),
        ({"assistant_id": "a", "max_prompt_tokens": 2**40}, "max_prompt_tokens"),
        ({"assistant_id": "a", "tool_resources": {}}, "tool_resources"),
        (
            {"assistant_id": "a", "additional_messages": [{"role": "user"}]},
            "additional_messages[0].content",
        ),
    ],
)
def test_create_run_errors(body: dict[str, Any], param: str) -> None:
    with pytest.raises(HttpError) as err:
        runs.create_run_request("t", body, [])
    assert_http_error(err, 400, param)


def test_create_thread_and_run_request() -> None:
    request, stream = runs.create_thread_and_run_request(
        {
            "assistant_id": "asst_1",
            "thread": {"messages": [{"role": "user", "content": "x"}], "metadata": {"t": "1"}},
            "tool_resources": {"code_interpreter": {"file_ids": ["file-1"]}},
            "tool_choice": "required",
        }
    )
    assert stream is False
    assert request.thread.messages[0].content[0].text.value == "x"
    assert dict(request.thread.metadata) == {"t": "1"}
    assert request.tool_resources.code_interpreter.file_ids == ["file-1"]
    assert request.tool_choice.mode == runs_pb2.TOOL_CHOICE_MODE_REQUIRED
    with pytest.raises(HttpError) as err:
        runs.create_thread_and_run_request(
            {"assistant_id": "a", "thread": {"messages": [{"role": 1, "content": "x"}]}}
        )
    assert_http_error(err, 400, "thread.messages[0].role")
    with pytest.raises(HttpError) as err:
        runs.create_thread_and_run_request({"assistant_id": "a", "additional_messages": []})
    assert_http_error(err, 400, "additional_messages")


def test_submit_tool_outputs_and_update_run() -> None:
    request, stream = runs.submit_tool_outputs_request(
        "t", "r", {"tool_outputs": [{"tool_call_id": "call_1", "output": "42"}], "stream": True}
    )
    assert stream is True
    assert (request.tool_outputs[0].tool_call_id, request.tool_outputs[0].output) == (
        "call_1",
        "42",
    )
    with pytest.raises(HttpError) as err:
        runs.submit_tool_outputs_request("t", "r", {})
    assert_http_error(err, 400, "tool_outputs")
    with pytest.raises(HttpError) as err:
        runs.submit_tool_outputs_request("t", "r", {"tool_outputs": [{"output": 1}]})
    assert_http_error(err, 400, "tool_outputs[0].output")
    update = runs.update_run_request("t", "r", {"metadata": {"a": "b"}})
    assert list(update.update_mask.paths) == ["metadata"]
    assert (update.run.thread_id, update.run.id) == ("t", "r")


def _run(**fields: Any) -> runs_pb2.Run:
    defaults: dict[str, Any] = {
        "id": "run_1",
        "created_at": 1,
        "thread_id": "thread_1",
        "assistant_id": "asst_1",
        "status": runs_pb2.RUN_STATUS_QUEUED,
        "model": "builtin/echo",
        "instructions": "",
        "parallel_tool_calls": True,
    }
    return runs_pb2.Run(**{**defaults, **fields})


def test_run_out_minimal_has_every_required_field() -> None:
    out = runs.run_out(_run())
    assert_schema("RunObject", out)
    assert out["object"] == "thread.run"
    for key in (
        "required_action",
        "last_error",
        "expires_at",
        "started_at",
        "cancelled_at",
        "failed_at",
        "completed_at",
        "incomplete_details",
        "usage",
        "temperature",
        "top_p",
        "max_prompt_tokens",
        "max_completion_tokens",
    ):
        assert out[key] is None, key
    assert out["truncation_strategy"] == {"type": "auto", "last_messages": None}
    assert out["tool_choice"] == "auto"
    assert out["response_format"] == "auto"
    assert out["status"] == "queued"


def test_run_out_full() -> None:
    run = _run(
        status=runs_pb2.RUN_STATUS_REQUIRES_ACTION,
        expires_at=10,
        started_at=2,
        temperature=0.7,
        max_completion_tokens=300,
        usage=common_pb2.Usage(prompt_tokens=1, completion_tokens=2, total_tokens=3),
        truncation_strategy=runs_pb2.TruncationStrategy(
            type=runs_pb2.TRUNCATION_TYPE_LAST_MESSAGES, last_messages=2
        ),
        tool_choice=runs_pb2.ToolChoice(mode=runs_pb2.TOOL_CHOICE_MODE_NONE),
    )
    run.required_action.tool_calls.add(id="call_1", name="f", arguments='{"a":1}')
    out = runs.run_out(run)
    assert_schema("RunObject", out)
    assert out["status"] == "requires_action"
    assert out["required_action"] == {
        "type": "submit_tool_outputs",
        "submit_tool_outputs": {
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "f", "arguments": '{"a":1}'},
                }
            ]
        },
    }
    assert out["usage"] == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    assert out["truncation_strategy"] == {"type": "last_messages", "last_messages": 2}
    assert out["tool_choice"] == "none"
    failed = runs.run_out(
        _run(
            status=runs_pb2.RUN_STATUS_FAILED,
            last_error=runs_pb2.RunError(code="server_error", message="boom"),
        )
    )
    assert_schema("RunObject", failed)
    assert failed["last_error"] == {"code": "server_error", "message": "boom"}
    incomplete = runs.run_out(
        _run(
            status=runs_pb2.RUN_STATUS_INCOMPLETE,
            incomplete_details=runs_pb2.RunIncompleteDetails(reason="max_prompt_tokens"),
        )
    )
    assert incomplete["incomplete_details"] == {"reason": "max_prompt_tokens"}
    listing = runs.list_runs_out(runs_pb2.ListRunsResponse(data=[run], first_id="run_1"))
    assert_schema("ListRunsResponse", listing)


@pytest.mark.parametrize(
    "choice",
    [
        "none",
        "auto",
        "required",
        {"type": "function", "function": {"name": "f"}},
        {"type": "file_search"},
    ],
)
def test_tool_choice_round_trip(choice: object) -> None:
    assert runs.tool_choice_out(runs.tool_choice_in(choice, "tool_choice")) == choice


def _step(details: runs_pb2.StepDetails, **fields: Any) -> runs_pb2.RunStep:
    return runs_pb2.RunStep(
        id="step_1",
        created_at=1,
        assistant_id="asst_1",
        thread_id="thread_1",
        run_id="run_1",
        status=runs_pb2.RUN_STEP_STATUS_COMPLETED,
        step_details=details,
        **fields,
    )


def test_run_step_out_message_creation() -> None:
    out = runs.run_step_out(
        _step(runs_pb2.StepDetails(message_creation=runs_pb2.MessageCreation(message_id="msg_1")))
    )
    assert_schema("RunStepObject", out)
    assert out["type"] == "message_creation"
    assert out["step_details"] == {
        "type": "message_creation",
        "message_creation": {"message_id": "msg_1"},
    }
    for key in ("last_error", "expired_at", "cancelled_at", "failed_at", "completed_at", "usage"):
        assert out[key] is None, key


def test_run_step_out_tool_calls() -> None:
    details = runs_pb2.StepDetails()
    calls = details.tool_calls.tool_calls
    function = calls.add(id="call_1")
    function.function.name = "f"
    function.function.arguments = "{}"
    code = calls.add(id="call_2")
    code.code_interpreter.input = "print(1)"
    code.code_interpreter.outputs.add(logs="1")
    code.code_interpreter.outputs.add(image_file_id="file-img")
    search = calls.add(id="call_3")
    search.file_search.ranking_options.score_threshold = 0.5
    result = search.file_search.results.add(file_id="file-1", file_name="a", score=0.9)
    result.content.append("chunk")
    out = runs.run_step_out(
        _step(details, usage=common_pb2.Usage(total_tokens=3), metadata={"a": "b"})
    )
    assert_schema("RunStepObject", out)
    assert out["type"] == "tool_calls"
    rendered = out["step_details"]["tool_calls"]
    assert rendered[0] == {
        "id": "call_1",
        "type": "function",
        "function": {"name": "f", "arguments": "{}", "output": None},
    }
    assert rendered[1]["code_interpreter"] == {
        "input": "print(1)",
        "outputs": [
            {"type": "logs", "logs": "1"},
            {"type": "image", "image": {"file_id": "file-img"}},
        ],
    }
    assert rendered[2]["file_search"] == {
        "ranking_options": {"ranker": "auto", "score_threshold": 0.5},
        "results": [
            {
                "file_id": "file-1",
                "file_name": "a",
                "score": 0.9,
                "content": [{"type": "text", "text": "chunk"}],
            }
        ],
    }
    listing = runs.list_steps_out(runs_pb2.ListRunStepsResponse(data=[_step(details)]))
    assert_schema("ListRunStepsResponse", listing)


def test_list_requests_carry_paging_and_include() -> None:
    page = page_params(MultiDict(limit="3", order="asc", after="x"))
    steps = runs.list_steps_request("t", "r", page, ["inc"])
    assert (steps.limit, steps.order, steps.after, list(steps.include)) == (
        3,
        common_pb2.SORT_ORDER_ASC,
        "x",
        ["inc"],
    )
    assert not runs.list_runs_request("t", page_params(MultiDict())).HasField("limit")


# ------------------------------------------------------------------------ stream events

_SPEC_EVENT_SCHEMAS = (
    "ThreadStreamEvent",
    "RunStreamEvent",
    "RunStepStreamEvent",
    "MessageStreamEvent",
    "ErrorEvent",
    "DoneEvent",
)


def _spec_event_names() -> set[str]:
    names: set[str] = set()
    schemas = load_spec()["components"]["schemas"]
    for schema in _SPEC_EVENT_SCHEMAS:
        node = schemas[schema]
        for branch in node.get("oneOf", [node]):
            names.update(branch["properties"]["event"]["enum"])
    return names


def test_event_names_are_openai_event_names() -> None:
    assert set(runs.EVENT_NAMES.values()) == _spec_event_names()
    assert runs.EVENT_NAMES["thread_run_step_delta"] == "thread.run.step.delta"
    assert runs.EVENT_NAMES["thread_run_in_progress"] == "thread.run.in_progress"
    assert runs.EVENT_NAMES["thread_run_requires_action"] == "thread.run.requires_action"
    assert runs.EVENT_NAMES["thread_run_step_in_progress"] == "thread.run.step.in_progress"


def _sse(raw: bytes) -> tuple[str, bytes]:
    assert raw.endswith(b"\n\n")
    head, data = raw[:-2].split(b"\n")
    assert head.startswith(b"event: ")
    assert data.startswith(b"data: ")
    return head[len(b"event: ") :].decode(), data[len(b"data: ") :]


def test_render_run_and_done_events() -> None:
    name, data = _sse(render_event(runs_pb2.RunEvent(sequence=1, thread_run_created=_run())))
    assert name == "thread.run.created"
    assert_schema("RunObject", orjson.loads(data))
    assert render_event(runs_pb2.RunEvent(done=runs_pb2.StreamDone())) is DONE
    assert DONE == b"event: done\ndata: [DONE]\n\n"
    assert render_event(runs_pb2.RunEvent()) == b""
    name, data = _sse(render_event(runs_pb2.RunEvent(thread_created=threads_pb2.Thread(id="t"))))
    assert name == "thread.created"
    assert_schema("ThreadObject", orjson.loads(data))


def test_error_event_has_flat_and_nested_fields() -> None:
    event = runs_pb2.RunEvent(error=runs_pb2.RunError(code="rate_limit_exceeded", message="slow"))
    name, data = _sse(render_event(event))
    body = orjson.loads(data)
    assert name == "error"
    assert body["message"] == "slow"
    assert body["code"] == "rate_limit_exceeded"
    assert body["error"] == {
        "message": "slow",
        "type": "rate_limit_error",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    assert_schema("Error", body["error"])
    name, data = _sse(render_rpc_error(rpc_error_of(invalid("bad", param="p"))))
    body = orjson.loads(data)
    assert name == "error"
    assert body["error"] == {k: body[k] for k in ("message", "type", "param", "code")}
    assert body["param"] == "p"


def test_message_delta_out() -> None:
    delta = runs_pb2.MessageDelta(id="msg_1")
    piece = delta.content.add(index=0)
    piece.part.text.value = "Hel"
    out = runs.message_delta_out(delta)
    assert out == {
        "id": "msg_1",
        "object": "thread.message.delta",
        "delta": {
            "content": [{"index": 0, "type": "text", "text": {"value": "Hel", "annotations": []}}]
        },
    }
    assert_schema("MessageDeltaObject", out)


def test_delta_indexes_number_annotations_across_deltas() -> None:
    indexes = runs.DeltaIndexes()
    seen = []
    for _ in range(2):
        delta = runs_pb2.MessageDelta(id="msg_1")
        piece = delta.content.add(index=0)
        annotation = piece.part.text.annotations.add(text="[x]")
        annotation.file_path.file_id = "file-1"
        out = runs.message_delta_out(delta, indexes)
        assert_schema("MessageDeltaObject", out)
        seen.append(out["delta"]["content"][0]["text"]["annotations"][0]["index"])
    assert seen == [0, 1]


def test_run_step_delta_out() -> None:
    first = runs_pb2.RunStepDelta(id="step_1")
    call = first.step_details.tool_calls.tool_calls.add(index=0, id="call_1")
    call.function.name = "f"
    call.function.arguments = ""
    out = runs.run_step_delta_out(first)
    assert_schema("RunStepDeltaObject", out)
    # OpenAI's first piece of a call: its id, type and name, no arguments, `output: null`.
    assert out["delta"]["step_details"]["tool_calls"] == [
        {
            "index": 0,
            "id": "call_1",
            "type": "function",
            "function": {"name": "f", "arguments": "", "output": None},
        }
    ]
    later = runs_pb2.RunStepDelta(id="step_1")
    piece = later.step_details.tool_calls.tool_calls.add(index=0)
    piece.function.arguments = '{"a"'
    out = runs.run_step_delta_out(later)
    # The SDKs concatenate pieces: no `id` or `name` after the first one.
    assert out["delta"]["step_details"]["tool_calls"] == [
        {"index": 0, "type": "function", "function": {"arguments": '{"a"'}}
    ]
    code = runs_pb2.RunStepDelta(id="step_1")
    code_call = code.step_details.tool_calls.tool_calls.add(index=1)
    code_call.code_interpreter.outputs.add(logs="x")
    indexes = runs.DeltaIndexes()
    runs.run_step_delta_out(code, indexes)
    out = runs.run_step_delta_out(code, indexes)
    assert out["delta"]["step_details"]["tool_calls"][0]["code_interpreter"] == {
        "outputs": [{"index": 1, "type": "logs", "logs": "x"}]
    }
    assert_schema("RunStepDeltaObject", out)


def test_every_event_field_renders() -> None:
    payloads: dict[str, Any] = {
        "Thread": threads_pb2.Thread(id="t"),
        "Run": _run(),
        "RunStep": _step(
            runs_pb2.StepDetails(message_creation=runs_pb2.MessageCreation(message_id="m"))
        ),
        "Message": _message(),
        "MessageDelta": runs_pb2.MessageDelta(id="m"),
        "RunStepDelta": runs_pb2.RunStepDelta(id="s"),
        "RunError": runs_pb2.RunError(code="server_error", message="x"),
        "StreamDone": runs_pb2.StreamDone(),
    }
    oneof = runs_pb2.RunEvent.DESCRIPTOR.oneofs_by_name["event"]
    # A batch only carries events; the relay renders each of them (tested with the relay).
    events = [field for field in oneof.fields if field.name != "batch"]
    assert len(events) == len(oneof.fields) - 1
    for field in events:
        assert field.message_type is not None
        event = runs_pb2.RunEvent()
        getattr(event, field.name).CopyFrom(payloads[field.message_type.name])
        name, data = runs.event_out(event)
        assert name == runs.EVENT_NAMES[field.name]
        assert (data is None) == (field.name == "done")


# ------------------------------------------------------------------------ enum tables


@pytest.mark.parametrize(
    ("enum", "table", "prefix"),
    [
        (runs_pb2.RunStatus, runs.RUN_STATUS, "RUN_STATUS_"),
        (runs_pb2.RunStepStatus, runs.RUN_STEP_STATUS, "RUN_STEP_STATUS_"),
        (messages_pb2.MessageStatus, messages.MESSAGE_STATUS, "MESSAGE_STATUS_"),
        (messages_pb2.MessageRole, messages.MESSAGE_ROLE, "MESSAGE_ROLE_"),
        (
            messages_pb2.MessageIncompleteReason,
            messages.INCOMPLETE_REASON,
            "MESSAGE_INCOMPLETE_REASON_",
        ),
        (messages_pb2.ImageDetail, messages.IMAGE_DETAIL, "IMAGE_DETAIL_"),
        (messages_pb2.AttachmentTool, messages.ATTACHMENT_TOOL, "ATTACHMENT_TOOL_"),
        (files_pb2.FileStatus, files.FILE_STATUS, "FILE_STATUS_"),
    ],
)
def test_enum_tables_follow_the_proto(
    enum: Any, table: tuple[str | None, ...], prefix: str
) -> None:
    """Each table maps a proto value to its name's OpenAI spelling; UNSPECIFIED to null."""
    assert len(table) == len(enum.DESCRIPTOR.values)
    for value in enum.DESCRIPTOR.values:
        expected = (
            None if value.name.endswith("_UNSPECIFIED") else value.name[len(prefix) :].lower()
        )
        assert table[value.number] == expected, value.name


def test_defaulting_enum_tables() -> None:
    assert runs.TRUNCATION_TYPE[runs_pb2.TRUNCATION_TYPE_UNSPECIFIED] == "auto"
    assert runs.TRUNCATION_TYPE[runs_pb2.TRUNCATION_TYPE_LAST_MESSAGES] == "last_messages"
    assert runs.TOOL_CHOICE_MODE[runs_pb2.TOOL_CHOICE_MODE_UNSPECIFIED] == "auto"
    assert runs.TOOL_CHOICE_MODE[runs_pb2.TOOL_CHOICE_MODE_REQUIRED] == "required"


# ------------------------------------------------------------------------ error translation


@pytest.mark.parametrize(
    ("code", "status", "error_type"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, 400, "invalid_request_error"),
        (grpc.StatusCode.FAILED_PRECONDITION, 400, "invalid_request_error"),
        (grpc.StatusCode.OUT_OF_RANGE, 400, "invalid_request_error"),
        (grpc.StatusCode.UNAUTHENTICATED, 401, "authentication_error"),
        (grpc.StatusCode.PERMISSION_DENIED, 403, "permission_error"),
        (grpc.StatusCode.NOT_FOUND, 404, "invalid_request_error"),
        (grpc.StatusCode.ALREADY_EXISTS, 409, "conflict_error"),
        (grpc.StatusCode.ABORTED, 409, "conflict_error"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 429, "rate_limit_error"),
        (grpc.StatusCode.UNAVAILABLE, 503, "server_error"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504, "server_error"),
        (grpc.StatusCode.UNIMPLEMENTED, 501, "invalid_request_error"),
        (grpc.StatusCode.INTERNAL, 500, "server_error"),
        (grpc.StatusCode.UNKNOWN, 500, "server_error"),
        (grpc.StatusCode.DATA_LOSS, 500, "server_error"),
    ],
)
def test_status_table(code: grpc.StatusCode, status: int, error_type: str) -> None:
    err = from_rpc_error(rpc_error_of(ApiError(code, "msg")))
    assert (err.status, err.error_type) == (status, error_type)
    assert err.message == "msg"
    response = err.response()
    assert response.status == status
    assert response.content_type == "application/json"
    retry = response.headers.get("x-should-retry")
    assert retry == ("false" if status in (409, 501) else None)
    assert isinstance(response.body, bytes)
    body = orjson.loads(response.body)
    assert_schema("ErrorResponse", body)
    assert body["error"]["type"] == error_type


def test_param_and_code_come_from_error_info() -> None:
    err = from_rpc_error(rpc_error_of(invalid("Bad model.", param="model", code="model_not_found")))
    assert err.fields() == {
        "message": "Bad model.",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }
    err = from_rpc_error(rpc_error_of(not_found("No thread.", param="thread_id")))
    assert (err.status, err.param, err.code) == (404, "thread_id", None)
    err = from_rpc_error(rpc_error_of(unauthenticated("Incorrect API key provided.")))
    assert (err.status, err.code) == (401, "invalid_api_key")
    err = from_rpc_error(rpc_error_of(precondition("Thread busy.", code="thread_locked")))
    assert (err.status, err.param, err.code) == (400, None, "thread_locked")
    err = from_rpc_error(rpc_error_of(unimplemented("Runs are coming.")))
    assert err.status == 501
    assert err.response().headers["x-should-retry"] == "false"


def test_param_from_bad_request_alone() -> None:
    bad = error_details_pb2.BadRequest(
        field_violations=[error_details_pb2.BadRequest.FieldViolation(field="limit")]
    )
    packed = any_pb2.Any()
    packed.Pack(bad)
    status = rpc_status.to_status(
        status_pb2.Status(
            code=grpc.StatusCode.INVALID_ARGUMENT.value[0], message="m", details=[packed]
        )
    )
    err = from_rpc_error(
        grpc.aio.AioRpcError(
            status.code, grpc.aio.Metadata(), grpc.aio.Metadata(*status.trailing_metadata), "m"
        )
    )
    assert (err.param, err.code) == ("limit", None)


def test_request_too_large_is_413_other_exhaustion_429() -> None:
    err = from_rpc_error(rpc_error_of(too_large("Too big.", param="file")))
    assert (err.status, err.param, err.code) == (413, "file", "request_too_large")
    assert err.error_type == "invalid_request_error"
    err = from_rpc_error(rpc_error_of(ApiError(grpc.StatusCode.RESOURCE_EXHAUSTED, "Slow down.")))
    assert err.status == 429
    transport = bare_rpc_error(
        grpc.StatusCode.RESOURCE_EXHAUSTED, "Received message larger than max (9 vs. 4)"
    )
    assert from_rpc_error(transport).status == 413


def test_transport_failures_hide_transport_details() -> None:
    err = from_rpc_error(bare_rpc_error(grpc.StatusCode.UNAVAILABLE, "failed to connect 10.0.0.1"))
    assert err.status == 503
    assert "10.0.0.1" not in err.message
    assert (err.param, err.code) == (None, None)
    err = from_rpc_error(bare_rpc_error(grpc.StatusCode.INTERNAL, "stack trace here"))
    assert err.status == 500
    assert "stack" not in err.message
    err = from_rpc_error(bare_rpc_error(grpc.StatusCode.NOT_FOUND, "No file."))
    assert (err.status, err.message) == (404, "No file.")


def test_server_faults_are_logged_with_the_request_id(caplog: pytest.LogCaptureFixture) -> None:
    token = CURRENT_REQUEST_ID.set("req_abc")
    try:
        with caplog.at_level(logging.INFO, logger="http_edge.errors"):
            from_rpc_error(bare_rpc_error(grpc.StatusCode.INTERNAL, "error ID err_1"))
            from_rpc_error(bare_rpc_error(grpc.StatusCode.UNAVAILABLE, "connection refused"))
            # Refusals of the request, 501 among them, are the caller's business.
            from_rpc_error(bare_rpc_error(grpc.StatusCode.UNIMPLEMENTED, "not yet"))
            from_rpc_error(bare_rpc_error(grpc.StatusCode.NOT_FOUND, "No file."))
    finally:
        CURRENT_REQUEST_ID.reset(token)
    assert [record.getMessage() for record in caplog.records] == [
        "request req_abc: core call failed: INTERNAL error ID err_1",
        "request req_abc: core call failed: UNAVAILABLE connection refused",
    ]


def test_inconsistent_rich_status_falls_back_to_the_call() -> None:
    status = invalid("one message", param="p").to_status()
    err = from_rpc_error(
        grpc.aio.AioRpcError(
            grpc.StatusCode.INVALID_ARGUMENT,
            grpc.aio.Metadata(),
            grpc.aio.Metadata(*status.trailing_metadata),
            "another message",
        )
    )
    assert (err.status, err.message, err.param) == (400, "another message", None)
