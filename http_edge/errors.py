"""OpenAI's error JSON, for the edge's own refusals and for the core's gRPC statuses.

The SDKs act on the HTTP status alone (they retry 408, 409, 429 and 5xx unless the response
says `x-should-retry: false`), so the status table of DESIGN.md is part of the contract. The
`param` and `code` come from the rich status details the core attaches, never from parsing
its messages: the core owns the wording, the edge only moves it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from typing import Any, Final

import grpc
import orjson
from aiohttp import web
from google.protobuf import any_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from compat_core.errors import ERROR_DOMAIN, ERROR_TYPE, RATE_LIMIT_EXCEEDED, REQUEST_TOO_LARGE

logger = logging.getLogger(__name__)

# The ID of the request being answered, for log lines written far from its handler; set by
# the guard around every route (`http_edge.handling`), inherited by the tasks the request
# starts (an event stream's pump).
CURRENT_REQUEST_ID: ContextVar[str] = ContextVar("current_request_id", default="-")

INVALID_REQUEST: Final = "invalid_request_error"
SERVER_ERROR: Final = "server_error"

# Statuses whose retry cannot succeed although the SDKs would retry them by default.
_NO_RETRY_STATUSES: Final = frozenset({409, 501})
_NO_RETRY_HEADERS: Final = {"x-should-retry": "false"}

_S = grpc.StatusCode
# gRPC status → (HTTP status, OpenAI error type), per DESIGN.md.
_RPC_STATUS_TABLE: Final[dict[grpc.StatusCode, tuple[int, str]]] = {
    _S.INVALID_ARGUMENT: (400, INVALID_REQUEST),
    _S.FAILED_PRECONDITION: (400, INVALID_REQUEST),
    _S.OUT_OF_RANGE: (400, INVALID_REQUEST),
    _S.UNAUTHENTICATED: (401, "authentication_error"),
    _S.PERMISSION_DENIED: (403, "permission_error"),
    _S.NOT_FOUND: (404, INVALID_REQUEST),
    _S.ALREADY_EXISTS: (409, "conflict_error"),
    _S.ABORTED: (409, "conflict_error"),
    _S.RESOURCE_EXHAUSTED: (429, "rate_limit_error"),
    _S.UNAVAILABLE: (503, SERVER_ERROR),
    _S.DEADLINE_EXCEEDED: (504, SERVER_ERROR),
    _S.UNIMPLEMENTED: (501, INVALID_REQUEST),
}
_FALLBACK: Final = (500, SERVER_ERROR)
# The headers a rate limit's refusal carries (its `ErrorInfo` names them, `compat_core.ratelimit`).
_RATE_HEADERS: Final = ("retry-after", "x-ratelimit-")

# Without rich details a status came from the transport, not from the core's logic: its text
# describes sockets and addresses, which callers should not see.
_TRANSPORT_MESSAGES: Final[dict[grpc.StatusCode, str]] = {
    _S.UNAVAILABLE: "The server is temporarily unable to handle the request. Please retry.",
    _S.DEADLINE_EXCEEDED: "The server took too long to answer the request. Please retry.",
    _S.CANCELLED: "The request was cancelled before the server could answer it.",
}
_GENERIC_SERVER_MESSAGE: Final = "The server had an error while processing your request."
# grpc's own text when a message exceeds the peer's size limit; the only trace such a refusal
# leaves, since the transport attaches no details.
_TRANSPORT_TOO_LARGE: Final = "larger than max"
# A RESOURCE_EXHAUSTED that did not come from the core's logic: a limit of the transport (the
# answer's metadata overflowing, say). The same request would meet it again, so unlike the
# core's own (a rate limit, 429) it must not invite the SDKs' retries.
_TRANSPORT_EXHAUSTED: Final = (
    "The server could not deliver its answer to this request. Retrying the same request "
    "will not help."
)


class HttpError(Exception):
    """An error answered to the caller as OpenAI's `{"error": {...}}` JSON."""

    __slots__ = ("close", "code", "error_type", "headers", "message", "param", "status")

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str = INVALID_REQUEST,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        close: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.param = param
        self.code = code
        # Headers the answer needs beyond the body (`Accept-Encoding` on a 415, say).
        self.headers = headers
        # End the connection after answering: for a refusal that leaves the body unread, whose
        # rest aiohttp would otherwise read (and decode) to reuse the connection.
        self.close = close

    def fields(self) -> dict[str, str | None]:
        """The body's inner object, also the payload of an SSE `error` event."""
        return {
            "message": self.message,
            "type": self.error_type,
            "param": self.param,
            "code": self.code,
        }

    def response(self) -> web.Response:
        """The HTTP answer, with `x-should-retry: false` where a retry cannot help."""
        headers = self.headers
        if self.status in _NO_RETRY_STATUSES:
            headers = {**headers, **_NO_RETRY_HEADERS} if headers else _NO_RETRY_HEADERS
        response = web.Response(
            status=self.status,
            body=orjson.dumps({"error": self.fields()}),
            content_type="application/json",
            headers=headers,
        )
        if self.close:
            response.force_close()
        return response


def describe_json_type(value: object) -> str:
    """Name a decoded JSON value's type the way OpenAI's messages do."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "an unsupported value"


def invalid_type(param: str, expected: str, value: object) -> HttpError:
    """A known field whose JSON type is wrong."""
    return HttpError(
        400,
        f"Invalid type for '{param}': expected {expected}, "
        f"but got {describe_json_type(value)} instead.",
        param=param,
        code="invalid_type",
    )


def invalid_value(param: str, value: object, supported: tuple[str, ...]) -> HttpError:
    """A value outside a closed set that the protobuf contract cannot carry."""
    choices = ", ".join(f"'{choice}'" for choice in supported)
    return HttpError(
        400,
        f"Invalid value: '{value}'. Supported values are: {choices}.",
        param=param,
        code="invalid_value",
    )


def out_of_range(param: str, value: int) -> HttpError:
    """An integer wider than the protobuf field that would carry it."""
    return HttpError(
        400,
        f"Invalid '{param}': {value} is outside the range this server accepts.",
        param=param,
        code="invalid_value",
    )


def missing(param: str) -> HttpError:
    """A required field that the body does not have."""
    return HttpError(
        400,
        f"Missing required parameter: '{param}'.",
        param=param,
        code="missing_required_parameter",
    )


def unsupported(param: str, why: str) -> HttpError:
    """A field OpenAI's API defines that this server cannot honour (OpenAI's code for a
    parameter a model does not take)."""
    return HttpError(
        400,
        f"Unsupported parameter: '{param}' is not supported by this server: {why}.",
        param=param,
        code="unsupported_parameter",
    )


def unknown_argument(param: str) -> HttpError:
    """A field the API does not define; OpenAI refuses these instead of ignoring them."""
    return HttpError(400, f"Unrecognized request argument supplied: {param}", param=param)


def from_rpc_error(err: grpc.aio.AioRpcError) -> HttpError:
    """Translate a failed RPC by the status table, reading `param` and `code` from details."""
    status = err.code()
    http_status, error_type = _RPC_STATUS_TABLE.get(status, _FALLBACK)
    message = err.details() or ""
    param: str | None = None
    code: str | None = None
    if error_type == SERVER_ERROR:
        # The core's own faults carry the error ID it logged them under: this line ties the
        # request ID the caller was given to it.
        logger.warning(
            "request %s: core call failed: %s %s", CURRENT_REQUEST_ID.get(), status.name, message
        )
    rich = _rich_status(err)
    ours = False
    extra: dict[str, str] = {}
    if rich is None:
        if status == _S.RESOURCE_EXHAUSTED and _TRANSPORT_TOO_LARGE in message:
            return HttpError(
                413,
                "The request is larger than the server accepts.",
                code=REQUEST_TOO_LARGE,
            )
        if status in _TRANSPORT_MESSAGES or http_status == 500:
            message = _TRANSPORT_MESSAGES.get(status, _GENERIC_SERVER_MESSAGE)
    else:
        param, code, ours = _param_and_code(rich.details, extra)
    headers: dict[str, str] | None = None
    if status == _S.RESOURCE_EXHAUSTED:
        if code == REQUEST_TOO_LARGE:
            http_status, error_type = 413, INVALID_REQUEST
        elif code == RATE_LIMIT_EXCEEDED and ours:
            # A project's rate limit: the core says the type and the headers, copied as they are.
            error_type = extra.pop(ERROR_TYPE, error_type)
            headers = {
                name: value for name, value in extra.items() if name.startswith(_RATE_HEADERS)
            }
        elif not ours:
            logger.warning(
                "request %s: core call failed in transport: %s %s",
                CURRENT_REQUEST_ID.get(),
                status.name,
                message,
            )
            return HttpError(
                500, _TRANSPORT_EXHAUSTED, error_type=SERVER_ERROR, headers=_NO_RETRY_HEADERS
            )
    return HttpError(
        http_status, message, error_type=error_type, param=param, code=code, headers=headers
    )


def _rich_status(err: grpc.aio.AioRpcError) -> Any:
    try:
        return rpc_status.from_call(err)
    except ValueError:
        # Code or message disagree with the attached status: trust the call's own and drop
        # the details rather than fail the translation.
        logger.warning("inconsistent rich status on %s", err.code().name)
        return None


def _param_and_code(
    details: Iterable[any_pb2.Any], extra: dict[str, str]
) -> tuple[str | None, str | None, bool]:
    """`param` and `code`, and whether an `ErrorInfo` says the core's logic raised it; the
    `ErrorInfo`'s other metadata goes into `extra`."""
    param: str | None = None
    code: str | None = None
    ours = False
    for any_detail in details:
        if any_detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            any_detail.Unpack(info)
            code = info.reason or None
            param = info.metadata.get("param") or param
            extra.update(info.metadata)
            ours = ours or info.domain == ERROR_DOMAIN
        elif param is None and any_detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            any_detail.Unpack(bad)
            if bad.field_violations:
                param = bad.field_violations[0].field or None
    return param, code, ours
