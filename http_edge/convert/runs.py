"""Runs and run steps: OpenAI's `thread.run`, `thread.run.step` and their stream events ⇄
`compat_core.v1` runs messages."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from google.protobuf.message import Message as ProtoMessage

from compat_core.v1 import runs_pb2
from http_edge.convert.common import (
    Json,
    Setter,
    apply_fields,
    check_keys,
    choice,
    enum_name,
    expect_bool,
    expect_int32,
    expect_list,
    expect_number,
    expect_object,
    expect_str,
    list_out,
    metadata_in,
    metadata_out,
    require,
    response_format_in,
    response_format_out,
    tool_resources_in,
    tools_in,
    tools_out,
    usage_out,
)
from http_edge.convert.messages import content_part_out, message_input_in, message_out
from http_edge.convert.threads import create_thread_in, thread_out
from http_edge.errors import invalid_type
from http_edge.json_io import PageParams

# ------------------------------------------------------------------------------ enums out

RUN_STATUS: Final = (
    None,
    "queued",
    "in_progress",
    "requires_action",
    "cancelling",
    "cancelled",
    "failed",
    "completed",
    "incomplete",
    "expired",
)
RUN_STEP_STATUS: Final = (None, "in_progress", "cancelled", "failed", "completed", "expired")
# UNSPECIFIED means the server's default, which is `auto` for both.
TRUNCATION_TYPE: Final = ("auto", "auto", "last_messages")
TOOL_CHOICE_MODE: Final = ("auto", "none", "auto", "required")

# ------------------------------------------------------------------------------- enums in

_TRUNCATION_TYPES: Final[Mapping[str, runs_pb2.TruncationType.ValueType]] = {
    "auto": runs_pb2.TRUNCATION_TYPE_AUTO,
    "last_messages": runs_pb2.TRUNCATION_TYPE_LAST_MESSAGES,
}
_TOOL_CHOICE_MODES: Final[Mapping[str, runs_pb2.ToolChoiceMode.ValueType]] = {
    "none": runs_pb2.TOOL_CHOICE_MODE_NONE,
    "auto": runs_pb2.TOOL_CHOICE_MODE_AUTO,
    "required": runs_pb2.TOOL_CHOICE_MODE_REQUIRED,
}
_TRUNCATION_KEYS: Final = frozenset({"type", "last_messages"})
_NAMED_CHOICE_KEYS: Final = frozenset({"type", "function"})
_NAMED_FUNCTION_KEYS: Final = frozenset({"name"})
_TOOL_OUTPUT_KEYS: Final = frozenset({"tool_call_id", "output"})
_SUBMIT_KEYS: Final = frozenset({"tool_outputs", "stream"})
_UPDATE_KEYS: Final = frozenset({"metadata"})

# The OpenAI `type` of an error code a run ended with, for `error` stream events.
_RUN_ERROR_TYPES: Final = {
    "rate_limit_exceeded": "rate_limit_error",
    "invalid_prompt": "invalid_request_error",
}

# ------------------------------------------------------------------------------ requests
# CreateRunRequest and CreateThreadAndRunRequest share these field names, so one setter
# serves both; `target` is either message.


def _str_setter(field: str) -> Setter:
    def setter(target: Any, value: object, param: str) -> None:
        setattr(target, field, expect_str(value, param))

    return setter


def _number_setter(field: str) -> Setter:
    def setter(target: Any, value: object, param: str) -> None:
        setattr(target, field, expect_number(value, param))

    return setter


def _int32_setter(field: str) -> Setter:
    def setter(target: Any, value: object, param: str) -> None:
        setattr(target, field, expect_int32(value, param))

    return setter


def _set_tools(target: Any, value: object, param: str) -> None:
    # Set even when empty: `[]` overrides the assistant's tools with none.
    target.tools.SetInParent()
    target.tools.tools.extend(tools_in(value, param))


def _set_metadata(target: Any, value: object, param: str) -> None:
    target.metadata.update(metadata_in(value, param))


def _set_parallel(target: Any, value: object, param: str) -> None:
    target.parallel_tool_calls = expect_bool(value, param)


def _set_response_format(target: Any, value: object, param: str) -> None:
    target.response_format.CopyFrom(response_format_in(value, param))


def _set_truncation(target: Any, value: object, param: str) -> None:
    target.truncation_strategy.CopyFrom(truncation_in(value, param))


def _set_tool_choice(target: Any, value: object, param: str) -> None:
    target.tool_choice.CopyFrom(tool_choice_in(value, param))


def _check_stream(target: Any, value: object, param: str) -> None:
    # Not part of the proto: it picks the streaming RPC instead.
    expect_bool(value, param)


def _set_additional_messages(target: Any, value: object, param: str) -> None:
    for index, message in enumerate(expect_list(value, param)):
        target.additional_messages.append(message_input_in(message, f"{param}[{index}]"))


def _set_thread(target: Any, value: object, param: str) -> None:
    target.thread.CopyFrom(create_thread_in(expect_object(value, param), param))


def _set_run_resources(target: Any, value: object, param: str) -> None:
    target.tool_resources.CopyFrom(tool_resources_in(value, param))


_RUN_COMMON: Final[dict[str, Setter]] = {
    "assistant_id": _str_setter("assistant_id"),
    "model": _str_setter("model"),
    "instructions": _str_setter("instructions"),
    "reasoning_effort": _str_setter("reasoning_effort"),
    "tools": _set_tools,
    "metadata": _set_metadata,
    "temperature": _number_setter("temperature"),
    "top_p": _number_setter("top_p"),
    "stream": _check_stream,
    "max_prompt_tokens": _int32_setter("max_prompt_tokens"),
    "max_completion_tokens": _int32_setter("max_completion_tokens"),
    "truncation_strategy": _set_truncation,
    "tool_choice": _set_tool_choice,
    "parallel_tool_calls": _set_parallel,
    "response_format": _set_response_format,
}
_CREATE_RUN: Final = {
    **_RUN_COMMON,
    "additional_instructions": _str_setter("additional_instructions"),
    "additional_messages": _set_additional_messages,
}
_CREATE_THREAD_AND_RUN: Final = {
    **_RUN_COMMON,
    "thread": _set_thread,
    "tool_resources": _set_run_resources,
}


def truncation_in(value: object, param: str) -> runs_pb2.TruncationStrategy:
    obj = expect_object(value, param)
    check_keys(obj, _TRUNCATION_KEYS, param)
    strategy = runs_pb2.TruncationStrategy(
        type=choice(require(obj, "type", param), f"{param}.type", _TRUNCATION_TYPES)
    )
    last = obj.get("last_messages")
    if last is not None:
        strategy.last_messages = expect_int32(last, f"{param}.last_messages")
    return strategy


def tool_choice_in(value: object, param: str) -> runs_pb2.ToolChoice:
    """`"none" | "auto" | "required"`, or `{"type": …, "function": {"name": …}}`."""
    if isinstance(value, str):
        return runs_pb2.ToolChoice(mode=choice(value, param, _TOOL_CHOICE_MODES))
    if not isinstance(value, dict):
        raise invalid_type(param, "a string or an object", value)
    check_keys(value, _NAMED_CHOICE_KEYS, param)
    named = runs_pb2.NamedToolChoice(
        type=expect_str(require(value, "type", param), f"{param}.type")
    )
    function = value.get("function")
    if function is not None:
        prefix = f"{param}.function"
        function_obj = expect_object(function, prefix)
        check_keys(function_obj, _NAMED_FUNCTION_KEYS, prefix)
        named.function_name = expect_str(require(function_obj, "name", prefix), f"{prefix}.name")
    return runs_pb2.ToolChoice(tool=named)


def _stream_flag(body: Mapping[str, Any]) -> bool:
    return body.get("stream") is True


def create_run_request(
    thread_id: str, body: dict[str, Any], include: list[str]
) -> tuple[runs_pb2.CreateRunRequest, bool]:
    """The request and whether the client asked for an event stream."""
    require(body, "assistant_id")
    request = runs_pb2.CreateRunRequest(thread_id=thread_id, include=include)
    apply_fields(request, body, _CREATE_RUN)
    return request, _stream_flag(body)


def create_thread_and_run_request(
    body: dict[str, Any],
) -> tuple[runs_pb2.CreateThreadAndRunRequest, bool]:
    require(body, "assistant_id")
    request = runs_pb2.CreateThreadAndRunRequest()
    apply_fields(request, body, _CREATE_THREAD_AND_RUN)
    return request, _stream_flag(body)


def update_run_request(
    thread_id: str, run_id: str, body: dict[str, Any]
) -> runs_pb2.UpdateRunRequest:
    check_keys(body, _UPDATE_KEYS)
    request = runs_pb2.UpdateRunRequest()
    request.run.thread_id = thread_id
    request.run.id = run_id
    if "metadata" in body:
        request.run.metadata.update(metadata_in(body["metadata"]))
        request.update_mask.paths.append("metadata")
    return request


def submit_tool_outputs_request(
    thread_id: str, run_id: str, body: dict[str, Any]
) -> tuple[runs_pb2.SubmitToolOutputsRequest, bool]:
    check_keys(body, _SUBMIT_KEYS)
    request = runs_pb2.SubmitToolOutputsRequest(thread_id=thread_id, run_id=run_id)
    outputs = expect_list(require(body, "tool_outputs"), "tool_outputs")
    for index, item in enumerate(outputs):
        param = f"tool_outputs[{index}]"
        obj = expect_object(item, param)
        check_keys(obj, _TOOL_OUTPUT_KEYS, param)
        output = runs_pb2.ToolOutput()
        call_id = obj.get("tool_call_id")
        if call_id is not None:
            output.tool_call_id = expect_str(call_id, f"{param}.tool_call_id")
        text = obj.get("output")
        if text is not None:
            output.output = expect_str(text, f"{param}.output")
        request.tool_outputs.append(output)
    stream = body.get("stream")
    if stream is not None:
        expect_bool(stream, "stream")
    return request, stream is True


def list_runs_request(thread_id: str, page: PageParams) -> runs_pb2.ListRunsRequest:
    request = runs_pb2.ListRunsRequest(
        thread_id=thread_id, order=page.order, after=page.after, before=page.before
    )
    if page.limit is not None:
        request.limit = page.limit
    return request


def list_steps_request(
    thread_id: str, run_id: str, page: PageParams, include: list[str]
) -> runs_pb2.ListRunStepsRequest:
    request = runs_pb2.ListRunStepsRequest(
        thread_id=thread_id,
        run_id=run_id,
        order=page.order,
        after=page.after,
        before=page.before,
        include=include,
    )
    if page.limit is not None:
        request.limit = page.limit
    return request


# ---------------------------------------------------------------------------------- runs


def run_out(r: runs_pb2.Run) -> Json:
    return {
        "id": r.id,
        "object": "thread.run",
        "created_at": r.created_at,
        "thread_id": r.thread_id,
        "assistant_id": r.assistant_id,
        "status": enum_name(RUN_STATUS, r.status),
        "required_action": (
            _required_action_out(r.required_action) if r.HasField("required_action") else None
        ),
        "last_error": _error_out(r.last_error) if r.HasField("last_error") else None,
        "expires_at": r.expires_at if r.HasField("expires_at") else None,
        "started_at": r.started_at if r.HasField("started_at") else None,
        "cancelled_at": r.cancelled_at if r.HasField("cancelled_at") else None,
        "failed_at": r.failed_at if r.HasField("failed_at") else None,
        "completed_at": r.completed_at if r.HasField("completed_at") else None,
        "incomplete_details": (
            {"reason": r.incomplete_details.reason or None}
            if r.HasField("incomplete_details")
            else None
        ),
        "model": r.model,
        "instructions": r.instructions,
        "tools": tools_out(r.tools),
        "metadata": metadata_out(r.metadata),
        "usage": usage_out(r.usage) if r.HasField("usage") else None,
        "temperature": r.temperature if r.HasField("temperature") else None,
        "top_p": r.top_p if r.HasField("top_p") else None,
        "max_prompt_tokens": r.max_prompt_tokens if r.HasField("max_prompt_tokens") else None,
        "max_completion_tokens": (
            r.max_completion_tokens if r.HasField("max_completion_tokens") else None
        ),
        "truncation_strategy": truncation_out(r.truncation_strategy),
        "tool_choice": tool_choice_out(r.tool_choice),
        "parallel_tool_calls": r.parallel_tool_calls,
        "response_format": response_format_out(r.response_format),
    }


def _required_action_out(action: runs_pb2.RequiredAction) -> Json:
    return {
        "type": "submit_tool_outputs",
        "submit_tool_outputs": {
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in action.tool_calls
            ]
        },
    }


def _error_out(error: runs_pb2.RunError) -> Json:
    return {"code": error.code, "message": error.message}


def truncation_out(strategy: runs_pb2.TruncationStrategy) -> Json:
    return {
        "type": enum_name(TRUNCATION_TYPE, strategy.type) or "auto",
        "last_messages": strategy.last_messages if strategy.HasField("last_messages") else None,
    }


def tool_choice_out(tool_choice: runs_pb2.ToolChoice) -> str | Json:
    if tool_choice.WhichOneof("choice") == "tool":
        named = tool_choice.tool
        if named.type == "function":
            return {"type": "function", "function": {"name": named.function_name}}
        return {"type": named.type}
    return enum_name(TOOL_CHOICE_MODE, tool_choice.mode) or "auto"


def list_runs_out(response: runs_pb2.ListRunsResponse) -> Json:
    return list_out(
        [run_out(r) for r in response.data],
        response.first_id,
        response.last_id,
        response.has_more,
    )


# ----------------------------------------------------------------------------- run steps


def run_step_out(s: runs_pb2.RunStep) -> Json:
    return {
        "id": s.id,
        "object": "thread.run.step",
        "created_at": s.created_at,
        "assistant_id": s.assistant_id,
        "thread_id": s.thread_id,
        "run_id": s.run_id,
        "type": s.step_details.WhichOneof("kind"),
        "status": enum_name(RUN_STEP_STATUS, s.status),
        "step_details": _step_details_out(s.step_details),
        "last_error": _error_out(s.last_error) if s.HasField("last_error") else None,
        "expired_at": s.expired_at if s.HasField("expired_at") else None,
        "cancelled_at": s.cancelled_at if s.HasField("cancelled_at") else None,
        "failed_at": s.failed_at if s.HasField("failed_at") else None,
        "completed_at": s.completed_at if s.HasField("completed_at") else None,
        "metadata": metadata_out(s.metadata),
        "usage": usage_out(s.usage) if s.HasField("usage") else None,
    }


def _step_details_out(details: runs_pb2.StepDetails) -> Json | None:
    kind = details.WhichOneof("kind")
    if kind == "message_creation":
        return {
            "type": "message_creation",
            "message_creation": {"message_id": details.message_creation.message_id},
        }
    if kind == "tool_calls":
        return {
            "type": "tool_calls",
            "tool_calls": [_tool_call_out(call) for call in details.tool_calls.tool_calls],
        }
    return None


def _tool_call_out(call: runs_pb2.ToolCall) -> Json:
    kind = call.WhichOneof("kind")
    out: Json = {"id": call.id, "type": kind}
    if kind == "function":
        out["function"] = {
            "name": call.function.name,
            "arguments": call.function.arguments,
            "output": call.function.output if call.function.HasField("output") else None,
        }
    elif kind == "code_interpreter":
        out["code_interpreter"] = {
            "input": call.code_interpreter.input,
            "outputs": [_code_output_out(o) for o in call.code_interpreter.outputs],
        }
    elif kind == "file_search":
        out["file_search"] = _file_search_call_out(call.file_search, whole=True)
    return out


def _code_output_out(output: runs_pb2.CodeInterpreterOutput) -> Json:
    if output.WhichOneof("kind") == "image_file_id":
        return {"type": "image", "image": {"file_id": output.image_file_id}}
    return {"type": "logs", "logs": output.logs}


def _file_search_call_out(call: runs_pb2.FileSearchCall, whole: bool = False) -> Json:
    """A call in a step (`whole`: a search that found nothing has `results: []`), or in a
    delta, where OpenAI's first piece is `{}`."""
    out: Json = {}
    if call.HasField("ranking_options"):
        out["ranking_options"] = {
            "ranker": call.ranking_options.ranker or "auto",
            "score_threshold": call.ranking_options.score_threshold,
        }
    if call.results or (whole and call.HasField("ranking_options")):
        out["results"] = [_file_search_result_out(r) for r in call.results]
    return out


def _file_search_result_out(result: runs_pb2.FileSearchResult) -> Json:
    out: Json = {"file_id": result.file_id, "file_name": result.file_name, "score": result.score}
    if result.content:
        out["content"] = [{"type": "text", "text": text} for text in result.content]
    return out


def list_steps_out(response: runs_pb2.ListRunStepsResponse) -> Json:
    return list_out(
        [run_step_out(s) for s in response.data],
        response.first_id,
        response.last_id,
        response.has_more,
    )


# -------------------------------------------------------------------------------- deltas


class DeltaIndexes:
    """Running positions of list entries that arrive over several deltas of one stream.

    The SDKs merge delta lists by each entry's `index`. Annotations and code-interpreter
    outputs carry none in the proto, so the relay numbers them in arrival order, per
    message content part and per tool call.
    """

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next: dict[tuple[str, str, int], int] = {}

    def take(self, owner: str, kind: str, position: int) -> int:
        key = (owner, kind, position)
        index = self._next.get(key, 0)
        self._next[key] = index + 1
        return index


def message_delta_out(delta: runs_pb2.MessageDelta, indexes: DeltaIndexes | None = None) -> Json:
    content: list[Json] = []
    for piece in delta.content:
        part = content_part_out(piece.part)
        if part is None:
            continue
        if part["type"] == "text":
            given = piece.part.text.annotations
            for position, annotation in enumerate(part["text"]["annotations"]):
                # The core numbers the annotations it streams; others in arrival order.
                if given[position].HasField("index"):
                    annotation["index"] = given[position].index
                elif indexes is None:
                    annotation["index"] = position
                else:
                    annotation["index"] = indexes.take(delta.id, "annotation", piece.index)
        content.append({"index": piece.index, **part})
    return {"id": delta.id, "object": "thread.message.delta", "delta": {"content": content}}


def run_step_delta_out(delta: runs_pb2.RunStepDelta, indexes: DeltaIndexes | None = None) -> Json:
    details = delta.step_details
    kind = details.WhichOneof("kind")
    step_details: Json
    if kind == "tool_calls":
        step_details = {
            "type": "tool_calls",
            "tool_calls": [
                _tool_call_delta_out(delta.id, call, indexes)
                for call in details.tool_calls.tool_calls
            ],
        }
    elif kind == "message_creation":
        step_details = {
            "type": "message_creation",
            "message_creation": {"message_id": details.message_creation.message_id},
        }
    else:
        return {"id": delta.id, "object": "thread.run.step.delta", "delta": {}}
    return {
        "id": delta.id,
        "object": "thread.run.step.delta",
        "delta": {"step_details": step_details},
    }


def _tool_call_delta_out(
    step_id: str, call: runs_pb2.ToolCall, indexes: DeltaIndexes | None
) -> Json:
    """A piece of a tool call: `id` and the function's `name` only in its first piece, which
    also says `output: null` (not known yet), as OpenAI's does."""
    kind = call.WhichOneof("kind")
    first = call.HasField("id")
    out: Json = {"index": call.index}
    if first:
        out["id"] = call.id
    out["type"] = kind
    if kind == "function":
        function: Json = {}
        if call.function.HasField("name"):
            function["name"] = call.function.name
        function["arguments"] = call.function.arguments
        if call.function.HasField("output"):
            function["output"] = call.function.output
        elif first:
            function["output"] = None
        out["function"] = function
    elif kind == "code_interpreter":
        code = call.code_interpreter
        piece: Json = {}
        if first or code.input:
            piece["input"] = code.input
        if first or code.outputs:
            outputs: list[Json] = []
            for position, output in enumerate(code.outputs):
                index = position if indexes is None else indexes.take(step_id, "output", call.index)
                outputs.append({"index": index, **_code_output_out(output)})
            piece["outputs"] = outputs
        out["code_interpreter"] = piece
    elif kind == "file_search":
        out["file_search"] = _file_search_call_out(call.file_search)
    return out


# -------------------------------------------------------------------------------- events


def _event_name(field: str) -> str:
    """`thread_run_step_in_progress` → `thread.run.step.in_progress`.

    Only the object path takes dots; the state after it keeps its underscore
    (`in_progress`, `requires_action`), so a blanket replace would be wrong.
    """
    for prefix in ("thread_run_step_", "thread_message_", "thread_run_", "thread_"):
        if field.startswith(prefix):
            return prefix.replace("_", ".") + field[len(prefix) :]
    return field


# `batch` is an envelope of several events (see `routes.sse`), not an event of its own.
EVENT_NAMES: Final[Mapping[str, str]] = {
    field.name: _event_name(field.name)
    for field in runs_pb2.RunEvent.DESCRIPTOR.oneofs_by_name["event"].fields
    if field.name != "batch"
}


def run_error_event_out(error: runs_pb2.RunError) -> Json:
    """An `error` event: flat fields and a nested `error`, as both SDKs need."""
    fields = {
        "message": error.message,
        "type": _RUN_ERROR_TYPES.get(error.code, "server_error"),
        "param": None,
        "code": error.code or None,
    }
    return {**fields, "error": dict(fields)}


EventRenderer = Callable[[Any, "DeltaIndexes | None"], Json]


def _plain(render: Callable[[Any], Json]) -> EventRenderer:
    def renderer(payload: Any, indexes: DeltaIndexes | None) -> Json:
        return render(payload)

    return renderer


def _renderer(field: str) -> EventRenderer:
    if field == "thread_created":
        return _plain(thread_out)
    if field == "thread_run_step_delta":
        return run_step_delta_out
    if field == "thread_message_delta":
        return message_delta_out
    if field == "error":
        return _plain(run_error_event_out)
    if field.startswith("thread_run_step_"):
        return _plain(run_step_out)
    if field.startswith("thread_run_"):
        return _plain(run_out)
    if field.startswith("thread_message_"):
        return _plain(message_out)
    raise ValueError(f"no renderer for RunEvent.{field}")


EVENT_RENDERERS: Final[Mapping[str, EventRenderer]] = {
    field: _renderer(field) for field in EVENT_NAMES if field != "done"
}


def event_out(
    event: runs_pb2.RunEvent, indexes: DeltaIndexes | None = None
) -> tuple[str, Json | None]:
    """The SSE event name and its JSON data; `None` data is `done`'s literal `[DONE]`."""
    field = event.WhichOneof("event")
    if field is None:
        raise ValueError("RunEvent without an event")
    if field == "done":
        return "done", None
    payload: ProtoMessage = getattr(event, field)
    return EVENT_NAMES[field], EVENT_RENDERERS[field](payload, indexes)
