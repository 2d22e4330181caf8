"""Errors the core answers with, carried as rich `google.rpc.Status`.

Every error that reaches a caller is an `ApiError`: a gRPC status code, a message for a person,
and OpenAI's `param` and `code`. On the wire they travel as `google.rpc.Status` details
(`ErrorInfo` with `reason` = OpenAI's code and `metadata["param"]`, plus `BadRequest` naming
the field), so the HTTP edge and any gRPC client read them without parsing messages.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

ERROR_DOMAIN = "assistants-compat"

# The `code` of a request body over the size limit; the edge answers it with HTTP 413.
REQUEST_TOO_LARGE = "request_too_large"


class ApiError(Exception):
    """An error answered to the caller, never logged as a fault of the server."""

    def __init__(
        self,
        status: grpc.StatusCode,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code

    def to_status(self) -> grpc.Status:
        """Render as the rich status that `abort_with_status` sends."""
        details: list[any_pb2.Any] = []
        info = error_details_pb2.ErrorInfo(reason=self.code or "", domain=ERROR_DOMAIN)
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


def precondition(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    """A request that conflicts with the current state (HTTP 400, never retried)."""
    return ApiError(grpc.StatusCode.FAILED_PRECONDITION, message, param=param, code=code)


def unauthenticated(message: str) -> ApiError:
    """A missing or wrong API key (HTTP 401)."""
    return ApiError(grpc.StatusCode.UNAUTHENTICATED, message, code="invalid_api_key")


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
