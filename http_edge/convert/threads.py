"""Threads: OpenAI's `thread` JSON ⇄ `compat_core.v1.Thread`."""

from __future__ import annotations

from typing import Any, Final

from compat_core.v1 import common_pb2, threads_pb2
from http_edge.convert.common import (
    Json,
    check_keys,
    deleted_out,
    expect_list,
    metadata_in,
    metadata_out,
    tool_resources_in,
    tool_resources_out,
)
from http_edge.convert.messages import message_input_in

_CREATE_KEYS: Final = frozenset({"messages", "tool_resources", "metadata"})
_UPDATE_KEYS: Final = frozenset({"tool_resources", "metadata"})


def create_thread_in(body: dict[str, Any], param: str = "") -> threads_pb2.CreateThreadRequest:
    """A create-thread body; also the `thread` of create-thread-and-run, hence `param`."""
    check_keys(body, _CREATE_KEYS, param)
    request = threads_pb2.CreateThreadRequest()
    messages = body.get("messages")
    if messages is not None:
        prefix = f"{param}.messages" if param else "messages"
        for index, message in enumerate(expect_list(messages, prefix)):
            request.messages.append(message_input_in(message, f"{prefix}[{index}]"))
    resources = body.get("tool_resources")
    if resources is not None:
        request.tool_resources.CopyFrom(
            tool_resources_in(
                resources,
                f"{param}.tool_resources" if param else "tool_resources",
                vector_stores=True,
            )
        )
    request.metadata.update(
        metadata_in(body.get("metadata"), f"{param}.metadata" if param else "metadata")
    )
    return request


def update_request(thread_id: str, body: dict[str, Any]) -> threads_pb2.UpdateThreadRequest:
    """Fields present in the body form the mask; `null` clears them."""
    check_keys(body, _UPDATE_KEYS)
    request = threads_pb2.UpdateThreadRequest()
    request.thread.id = thread_id
    mask = request.update_mask.paths
    if "tool_resources" in body:
        resources = body["tool_resources"]
        if resources is not None:
            request.thread.tool_resources.CopyFrom(tool_resources_in(resources))
        mask.append("tool_resources")
    if "metadata" in body:
        request.thread.metadata.update(metadata_in(body["metadata"]))
        mask.append("metadata")
    return request


def thread_out(t: threads_pb2.Thread) -> Json:
    return {
        "id": t.id,
        "object": "thread",
        "created_at": t.created_at,
        "tool_resources": tool_resources_out(t.tool_resources),
        "metadata": metadata_out(t.metadata),
    }


def deleted_response_out(status: common_pb2.DeletionStatus) -> Json:
    return deleted_out(status, "thread.deleted")
