"""Errors the core answers with, carried as rich `google.rpc.Status`.

Every error that reaches a caller is an `ApiError`: a gRPC status code, a message for a person,
and OpenAI's `param` and `code`. On the wire they travel as `google.rpc.Status` details
(`ErrorInfo` with `reason` = OpenAI's code and `metadata["param"]`, plus `BadRequest` naming
the field), so the HTTP edge and any gRPC client read them without parsing messages.
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

ERROR_DOMAIN = "assistants-compat"

# The `code` of a request body over the size limit; the edge answers it with HTTP 413.
REQUEST_TOO_LARGE = "request_too_large"
# The `code` of a request over one of its project's rate limits (HTTP 429). Its `ErrorInfo`
# also carries OpenAI's error `type` (`requests` or `tokens`) under ERROR_TYPE, and the HTTP
# headers to answer with (`retry-after`, `x-ratelimit-*`) under their own names.
RATE_LIMIT_EXCEEDED = "rate_limit_exceeded"
ERROR_TYPE = "type"

# gRPC carries a status in trailing metadata: the message once in `grpc-message` (percent-
# encoded, up to 3 bytes a byte) and again inside `grpc-status-details-bin` (base64, with the
# `BadRequest` description repeating it). Past 8 KiB of metadata the receiving side may refuse
# the whole status, and the caller sees a transport error instead of ours. These caps keep a
# status under about 4 KiB whatever the request held.
MAX_MESSAGE_BYTES = 512
MAX_PARAM_BYTES = 128
# How much of a client's value a message quotes: enough to recognise it.
MAX_SHOWN_CHARS = 64
_ELLIPSIS = "…"

# How a 404 names each kind of object, as OpenAI words it; the services and the ID checks
# share it, so a malformed ID and a missing one read the same.
_NOT_FOUND = {
    "assistant_id": "No assistant found with id '{}'.",
    "thread_id": "No thread found with id '{}'.",
    "message_id": "No message found with id '{}'.",
    "run_id": "No run found with id '{}'.",
    "step_id": "No run step found with id '{}'.",
    "file_id": "No such File object: {}",
    "file_ids": "No such File object: {}",
    "vector_store_id": "No vector store found with id '{}'.",
}
_NOT_FOUND_OTHER = "No object found with id '{}'."


def shown(value: str) -> str:
    """`value` as an error message quotes it: cut to `MAX_SHOWN_CHARS` characters.

    Messages echo what the client sent (an ID, a name, a model); an echo must not grow with
    the input, or a long enough value would push the status past gRPC's metadata limit.
    """
    if len(value) <= MAX_SHOWN_CHARS:
        return value
    return value[: MAX_SHOWN_CHARS - 1] + _ELLIPSIS


def _clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` bytes of UTF-8, on a character boundary."""
    encoded = text.encode("utf-8", "replace")
    if len(encoded) <= limit:
        return text
    room = limit - len(_ELLIPSIS.encode())
    return encoded[:room].decode("utf-8", "ignore") + _ELLIPSIS


class ApiError(Exception):
    """An error answered to the caller, never logged as a fault of the server."""

    def __init__(
        self,
        status: grpc.StatusCode,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        message = _clip(message, MAX_MESSAGE_BYTES)
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = None if param is None else _clip(param, MAX_PARAM_BYTES)
        self.code = code
        # More for the edge to answer with (a rate limit's error type and headers), in the
        # `ErrorInfo`'s metadata; a handful of short entries at most.
        self.metadata = metadata

    def to_status(self) -> grpc.Status:
        """Render as the rich status that `abort_with_status` sends."""
        details: list[any_pb2.Any] = []
        info = error_details_pb2.ErrorInfo(reason=self.code or "", domain=ERROR_DOMAIN)
        if self.metadata:
            info.metadata.update(self.metadata)
        if self.param is not None:
            info.metadata["param"] = self.param
        packed = any_pb2.Any()
        packed.Pack(info)
        details.append(packed)
        if self.param is not None:
            bad = error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=self.param, description=self.message
                    )
                ]
            )
            packed_bad = any_pb2.Any()
            packed_bad.Pack(bad)
            details.append(packed_bad)
        proto = status_pb2.Status(code=self.status.value[0], message=self.message, details=details)
        return rpc_status.to_status(proto)


def invalid(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    """A request whose content is wrong (HTTP 400)."""
    return ApiError(grpc.StatusCode.INVALID_ARGUMENT, message, param=param, code=code)


def not_found(message: str, param: str | None = None) -> ApiError:
    """An ID that names nothing the caller can see (HTTP 404)."""
    return ApiError(grpc.StatusCode.NOT_FOUND, message, param=param)


def no_such(param: str, object_id: str) -> ApiError:
    """The 404 for the ID in `param` (`thread_id`, `file_id`, …), worded as OpenAI does."""
    return not_found(_NOT_FOUND.get(param, _NOT_FOUND_OTHER).format(shown(object_id)), param)


def precondition(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    """A request that conflicts with the current state (HTTP 400, never retried)."""
    return ApiError(grpc.StatusCode.FAILED_PRECONDITION, message, param=param, code=code)


def unauthenticated(message: str, code: str = "invalid_api_key") -> ApiError:
    """A missing or wrong API key, or a project the key does not open (HTTP 401)."""
    return ApiError(grpc.StatusCode.UNAUTHENTICATED, message, code=code)


def unimplemented(message: str) -> ApiError:
    """A method this server does not offer yet (HTTP 501)."""
    return ApiError(grpc.StatusCode.UNIMPLEMENTED, message)


def too_large(message: str, param: str | None = None) -> ApiError:
    """A request body over the server's size limit (HTTP 413)."""
    return ApiError(
        grpc.StatusCode.RESOURCE_EXHAUSTED, message, param=param, code=REQUEST_TOO_LARGE
    )


def permission_denied(message: str) -> ApiError:
    """An action the caller may not take (HTTP 403)."""
    return ApiError(grpc.StatusCode.PERMISSION_DENIED, message)
