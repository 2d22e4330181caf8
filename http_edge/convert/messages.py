"""Messages: OpenAI's `thread.message` JSON ⇄ `compat_core.v1.Message`, and the message
inputs that creating a message, a thread or a run all take."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from compat_core.v1 import common_pb2, messages_pb2
from http_edge.convert.common import (
    Json,
    check_keys,
    choice,
    deleted_out,
    enum_name,
    expect_list,
    expect_object,
    expect_str,
    join,
    list_out,
    metadata_in,
    metadata_out,
    require,
)
from http_edge.errors import invalid_type, invalid_value
from http_edge.json_io import PageParams

# ------------------------------------------------------------------------------ enums out

MESSAGE_STATUS: Final = (None, "in_progress", "incomplete", "completed")
MESSAGE_ROLE: Final = (None, "user", "assistant")
INCOMPLETE_REASON: Final = (
    None,
    "content_filter",
    "max_tokens",
    "run_cancelled",
    "run_expired",
    "run_failed",
)
IMAGE_DETAIL: Final = (None, "auto", "low", "high")
ATTACHMENT_TOOL: Final = (None, "code_interpreter", "file_search")

# ------------------------------------------------------------------------------- enums in

_ROLES: Final[Mapping[str, messages_pb2.MessageRole.ValueType]] = {
    "user": messages_pb2.MESSAGE_ROLE_USER,
    "assistant": messages_pb2.MESSAGE_ROLE_ASSISTANT,
}
_DETAILS: Final[Mapping[str, messages_pb2.ImageDetail.ValueType]] = {
    "auto": messages_pb2.IMAGE_DETAIL_AUTO,
    "low": messages_pb2.IMAGE_DETAIL_LOW,
    "high": messages_pb2.IMAGE_DETAIL_HIGH,
}
_ATTACHMENT_TOOLS: Final[Mapping[str, messages_pb2.AttachmentTool.ValueType]] = {
    "code_interpreter": messages_pb2.ATTACHMENT_TOOL_CODE_INTERPRETER,
    "file_search": messages_pb2.ATTACHMENT_TOOL_FILE_SEARCH,
}

_INPUT_KEYS: Final = frozenset({"role", "content", "attachments", "metadata"})
_UPDATE_KEYS: Final = frozenset({"metadata"})
_PART_TYPES: Final = ("text", "image_file", "image_url")
_TEXT_PART_KEYS: Final = frozenset({"type", "text"})
_IMAGE_FILE_PART_KEYS: Final = frozenset({"type", "image_file"})
_IMAGE_URL_PART_KEYS: Final = frozenset({"type", "image_url"})
_IMAGE_FILE_KEYS: Final = frozenset({"file_id", "detail"})
_IMAGE_URL_KEYS: Final = frozenset({"url", "detail"})
_ATTACHMENT_KEYS: Final = frozenset({"file_id", "tools"})
_ATTACHMENT_TOOL_KEYS: Final = frozenset({"type"})

# ------------------------------------------------------------------------------ requests


def message_input_in(value: object, param: str = "") -> messages_pb2.MessageInput:
    """A create-message body; also each of `messages` and `additional_messages`."""
    obj = expect_object(value, param)
    check_keys(obj, _INPUT_KEYS, param)
    message = messages_pb2.MessageInput(
        role=choice(require(obj, "role", param), join(param, "role"), _ROLES)
    )
    message.content.extend(content_in(require(obj, "content", param), join(param, "content")))
    attachments = obj.get("attachments")
    if attachments is not None:
        prefix = join(param, "attachments")
        for index, item in enumerate(expect_list(attachments, prefix)):
            message.attachments.append(_attachment_in(item, f"{prefix}[{index}]"))
    message.metadata.update(metadata_in(obj.get("metadata"), join(param, "metadata")))
    return message


def content_in(value: object, param: str) -> list[messages_pb2.MessageContent]:
    """`content`: a string is one text part; an array lists the parts.

    An empty string is no part at all, so the core refuses it as it refuses `[]` (it must
    be non-empty) instead of storing an empty text part.
    """
    if isinstance(value, str):
        if not value:
            return []
        return [messages_pb2.MessageContent(text=messages_pb2.TextContent(value=value))]
    if not isinstance(value, list):
        raise invalid_type(param, "a string or an array", value)
    return [_part_in(part, f"{param}[{index}]") for index, part in enumerate(value)]


def _part_in(value: object, param: str) -> messages_pb2.MessageContent:
    obj = expect_object(value, param)
    kind = require(obj, "type", param)
    if kind == "text":
        check_keys(obj, _TEXT_PART_KEYS, param)
        text = expect_str(require(obj, "text", param), f"{param}.text")
        return messages_pb2.MessageContent(text=messages_pb2.TextContent(value=text))
    if kind == "image_file":
        check_keys(obj, _IMAGE_FILE_PART_KEYS, param)
        prefix = f"{param}.image_file"
        image = expect_object(require(obj, "image_file", param), prefix)
        check_keys(image, _IMAGE_FILE_KEYS, prefix)
        return messages_pb2.MessageContent(
            image_file=messages_pb2.ImageFileContent(
                file_id=expect_str(require(image, "file_id", prefix), f"{prefix}.file_id"),
                detail=_detail_in(image, prefix),
            )
        )
    if kind == "image_url":
        check_keys(obj, _IMAGE_URL_PART_KEYS, param)
        prefix = f"{param}.image_url"
        image = expect_object(require(obj, "image_url", param), prefix)
        check_keys(image, _IMAGE_URL_KEYS, prefix)
        return messages_pb2.MessageContent(
            image_url=messages_pb2.ImageUrlContent(
                url=expect_str(require(image, "url", prefix), f"{prefix}.url"),
                detail=_detail_in(image, prefix),
            )
        )
    if not isinstance(kind, str):
        raise invalid_type(f"{param}.type", "a string", kind)
    raise invalid_value(f"{param}.type", kind, _PART_TYPES)


def _detail_in(image: Json, prefix: str) -> messages_pb2.ImageDetail.ValueType:
    detail = image.get("detail")
    if detail is None:
        return messages_pb2.IMAGE_DETAIL_UNSPECIFIED
    return choice(detail, f"{prefix}.detail", _DETAILS)


def _attachment_in(value: object, param: str) -> messages_pb2.Attachment:
    obj = expect_object(value, param)
    check_keys(obj, _ATTACHMENT_KEYS, param)
    attachment = messages_pb2.Attachment()
    file_id = obj.get("file_id")
    if file_id is not None:
        attachment.file_id = expect_str(file_id, f"{param}.file_id")
    tools = obj.get("tools")
    if tools is not None:
        prefix = f"{param}.tools"
        for index, tool in enumerate(expect_list(tools, prefix)):
            tool_param = f"{prefix}[{index}]"
            tool_obj = expect_object(tool, tool_param)
            check_keys(tool_obj, _ATTACHMENT_TOOL_KEYS, tool_param)
            kind = require(tool_obj, "type", tool_param)
            attachment.tools.append(choice(kind, f"{tool_param}.type", _ATTACHMENT_TOOLS))
    return attachment


def create_request(thread_id: str, body: dict[str, Any]) -> messages_pb2.CreateMessageRequest:
    return messages_pb2.CreateMessageRequest(thread_id=thread_id, message=message_input_in(body))


def update_request(
    thread_id: str, message_id: str, body: dict[str, Any]
) -> messages_pb2.UpdateMessageRequest:
    check_keys(body, _UPDATE_KEYS)
    request = messages_pb2.UpdateMessageRequest()
    request.message.thread_id = thread_id
    request.message.id = message_id
    if "metadata" in body:
        request.message.metadata.update(metadata_in(body["metadata"]))
        request.update_mask.paths.append("metadata")
    return request


def list_request(thread_id: str, page: PageParams, run_id: str) -> messages_pb2.ListMessagesRequest:
    request = messages_pb2.ListMessagesRequest(
        thread_id=thread_id,
        order=page.order,
        after=page.after,
        before=page.before,
        run_id=run_id,
    )
    if page.limit is not None:
        request.limit = page.limit
    return request


# ----------------------------------------------------------------------------- responses


def message_out(m: messages_pb2.Message) -> Json:
    # A list renders up to 100 of these per request: every read of a message or repeated
    # field makes a new wrapper object, so each is read once, and empty ones take the short way.
    incomplete = None
    if m.HasField("incomplete_details"):
        reason = enum_name(INCOMPLETE_REASON, m.incomplete_details.reason)
        if reason is not None:
            incomplete = {"reason": reason}
    attachments = m.attachments
    return {
        "id": m.id,
        "object": "thread.message",
        "created_at": m.created_at,
        "thread_id": m.thread_id,
        "status": enum_name(MESSAGE_STATUS, m.status),
        "incomplete_details": incomplete,
        "completed_at": m.completed_at if m.HasField("completed_at") else None,
        "incomplete_at": m.incomplete_at if m.HasField("incomplete_at") else None,
        "role": enum_name(MESSAGE_ROLE, m.role),
        "content": contents_out(m.content),
        "assistant_id": m.assistant_id if m.HasField("assistant_id") else None,
        "run_id": m.run_id if m.HasField("run_id") else None,
        "attachments": [attachment_out(a) for a in attachments] if attachments else [],
        "metadata": metadata_out(m.metadata),
    }


def contents_out(parts: Iterable[messages_pb2.MessageContent]) -> list[Json]:
    out: list[Json] = []
    for part in parts:
        rendered = content_part_out(part)
        if rendered is not None:
            out.append(rendered)
    return out


def content_part_out(part: messages_pb2.MessageContent) -> Json | None:
    """One part in OpenAI's shape; also the body of a delta part, which adds `index`."""
    kind = part.WhichOneof("part")
    if kind == "text":
        text = part.text
        annotations = text.annotations
        return {
            "type": "text",
            "text": {
                "value": text.value,
                "annotations": [annotation_out(a) for a in annotations] if annotations else [],
            },
        }
    if kind == "image_file":
        image = part.image_file
        image_file: Json = {"file_id": image.file_id}
        detail = enum_name(IMAGE_DETAIL, image.detail)
        if detail is not None:
            image_file["detail"] = detail
        return {"type": "image_file", "image_file": image_file}
    if kind == "image_url":
        url = part.image_url
        image_url: Json = {"url": url.url}
        detail = enum_name(IMAGE_DETAIL, url.detail)
        if detail is not None:
            image_url["detail"] = detail
        return {"type": "image_url", "image_url": image_url}
    if kind == "refusal":
        return {"type": "refusal", "refusal": part.refusal}
    return None


def annotation_out(a: messages_pb2.Annotation) -> Json:
    kind = a.WhichOneof("kind")
    out: Json = {"type": kind, "text": a.text}
    if kind == "file_citation":
        out["file_citation"] = {"file_id": a.file_citation.file_id}
    elif kind == "file_path":
        out["file_path"] = {"file_id": a.file_path.file_id}
    out["start_index"] = a.start_index
    out["end_index"] = a.end_index
    return out


def attachment_out(a: messages_pb2.Attachment) -> Json:
    return {
        "file_id": a.file_id,
        "tools": [{"type": enum_name(ATTACHMENT_TOOL, tool)} for tool in a.tools],
    }


def list_response_out(response: messages_pb2.ListMessagesResponse) -> Json:
    return list_out(
        [message_out(m) for m in response.data],
        response.first_id,
        response.last_id,
        response.has_more,
    )


def deleted_response_out(status: common_pb2.DeletionStatus) -> Json:
    return deleted_out(status, "thread.message.deleted")
