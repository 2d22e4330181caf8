"""Assistants: OpenAI's `assistant` JSON ⇄ `compat_core.v1.Assistant`."""

from __future__ import annotations

from typing import Any, Final

from compat_core.v1 import assistants_pb2, common_pb2
from http_edge.convert.common import (
    Json,
    Setter,
    apply_fields,
    deleted_out,
    expect_number,
    expect_str,
    list_out,
    metadata_in,
    metadata_out,
    require,
    response_format_in,
    response_format_out,
    tool_resources_in,
    tool_resources_out,
    tools_in,
    tools_out,
)
from http_edge.json_io import PageParams

Assistant = assistants_pb2.Assistant


def _set_model(a: Assistant, value: object, param: str) -> None:
    a.model = expect_str(value, param)


def _set_name(a: Assistant, value: object, param: str) -> None:
    a.name = expect_str(value, param)


def _set_description(a: Assistant, value: object, param: str) -> None:
    a.description = expect_str(value, param)


def _set_instructions(a: Assistant, value: object, param: str) -> None:
    a.instructions = expect_str(value, param)


def _set_reasoning_effort(a: Assistant, value: object, param: str) -> None:
    a.reasoning_effort = expect_str(value, param)


def _set_tools(a: Assistant, value: object, param: str) -> None:
    a.tools.extend(tools_in(value, param))


def _set_metadata(a: Assistant, value: object, param: str) -> None:
    a.metadata.update(metadata_in(value, param))


def _set_temperature(a: Assistant, value: object, param: str) -> None:
    a.temperature = expect_number(value, param)


def _set_top_p(a: Assistant, value: object, param: str) -> None:
    a.top_p = expect_number(value, param)


def _set_response_format(a: Assistant, value: object, param: str) -> None:
    a.response_format.CopyFrom(response_format_in(value, param))


def _set_create_resources(a: Assistant, value: object, param: str) -> None:
    a.tool_resources.CopyFrom(tool_resources_in(value, param, vector_stores=True))


def _set_update_resources(a: Assistant, value: object, param: str) -> None:
    a.tool_resources.CopyFrom(tool_resources_in(value, param))


_COMMON: Final[dict[str, Setter]] = {
    "model": _set_model,
    "name": _set_name,
    "description": _set_description,
    "instructions": _set_instructions,
    "reasoning_effort": _set_reasoning_effort,
    "tools": _set_tools,
    "metadata": _set_metadata,
    "temperature": _set_temperature,
    "top_p": _set_top_p,
    "response_format": _set_response_format,
}
_CREATE: Final = {**_COMMON, "tool_resources": _set_create_resources}
_UPDATE: Final = {**_COMMON, "tool_resources": _set_update_resources}


def create_request(body: dict[str, Any]) -> assistants_pb2.CreateAssistantRequest:
    require(body, "model")
    assistant = Assistant()
    apply_fields(assistant, body, _CREATE)
    return assistants_pb2.CreateAssistantRequest(assistant=assistant)


def update_request(
    assistant_id: str, body: dict[str, Any]
) -> assistants_pb2.UpdateAssistantRequest:
    """The body's fields become the update mask; JSON names are the proto's field names."""
    request = assistants_pb2.UpdateAssistantRequest()
    request.assistant.id = assistant_id
    request.update_mask.paths.extend(apply_fields(request.assistant, body, _UPDATE))
    return request


def list_request(page: PageParams) -> assistants_pb2.ListAssistantsRequest:
    request = assistants_pb2.ListAssistantsRequest(
        order=page.order, after=page.after, before=page.before
    )
    if page.limit is not None:
        request.limit = page.limit
    return request


def assistant_out(a: Assistant) -> Json:
    out: Json = {
        "id": a.id,
        "object": "assistant",
        "created_at": a.created_at,
        "name": a.name if a.HasField("name") else None,
        "description": a.description if a.HasField("description") else None,
        "model": a.model,
        "instructions": a.instructions if a.HasField("instructions") else None,
        "tools": tools_out(a.tools),
        "tool_resources": tool_resources_out(a.tool_resources),
        "metadata": metadata_out(a.metadata),
        "temperature": a.temperature if a.HasField("temperature") else None,
        "top_p": a.top_p if a.HasField("top_p") else None,
        "response_format": response_format_out(a.response_format),
    }
    if a.HasField("reasoning_effort"):
        # Not in OpenAI's assistant schema; answered only when the client set it.
        out["reasoning_effort"] = a.reasoning_effort
    return out


def list_response_out(response: assistants_pb2.ListAssistantsResponse) -> Json:
    return list_out(
        [assistant_out(a) for a in response.data],
        response.first_id,
        response.last_id,
        response.has_more,
    )


def deleted_response_out(status: common_pb2.DeletionStatus) -> Json:
    return deleted_out(status, "assistant.deleted")
