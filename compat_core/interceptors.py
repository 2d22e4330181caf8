"""One server interceptor for every RPC: authentication and error rendering.

Services raise `ApiError`; this turns it into a rich `google.rpc.Status`, so no handler repeats
the abort recipe. Anything else is a fault of ours: it is logged with its traceback and the
caller gets INTERNAL with a message that reveals nothing of the server's insides.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc
from grpc import aio

from compat_core import errors

log = logging.getLogger(__name__)

PUBLIC_METHOD_PREFIXES = ("/grpc.health.v1.Health/",)
_INTERNAL = errors.ApiError(
    grpc.StatusCode.INTERNAL, "The server had an error while processing your request."
)

# grpc ships no type hints for its aio context; handlers receive it untyped.
Context = Any


class ApiKeyAuth:
    """Constant-time check of `authorization: Bearer <key>` against the configured keys."""

    def __init__(self, api_keys: Sequence[str]) -> None:
        self._keys = [key.encode() for key in api_keys]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def check(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> None:
        header = ""
        for key, value in metadata or ():
            if key == "authorization":
                header = value.decode() if isinstance(value, bytes) else str(value)
                break
        if not header:
            raise errors.unauthenticated(
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
        scheme, _, presented = header.partition(" ")
        token = presented.strip().encode()
        # Compare against every key so the time taken does not say which one matched.
        matched = False
        for expected in self._keys:
            matched |= hmac.compare_digest(token, expected)
        if scheme.lower() != "bearer" or not matched:
            raise errors.unauthenticated("Incorrect API key provided.")


async def _abort(context: Context, error: errors.ApiError) -> None:
    await context.abort_with_status(error.to_status())


class CoreInterceptor(aio.ServerInterceptor):  # type: ignore[misc]
    """Authenticates each call and renders its errors, whatever the RPC's arity."""

    def __init__(self, auth: ApiKeyAuth) -> None:
        self._auth = auth

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.startswith(PUBLIC_METHOD_PREFIXES):
            return handler
        metadata = handler_call_details.invocation_metadata
        check = self._auth.check if self._auth.enabled else None
        return _wrap(handler, check, metadata, method)


@contextlib.asynccontextmanager
async def _rendered_errors(context: Context, method: str) -> AsyncIterator[None]:
    """Turn what a handler raises into the status the caller receives."""
    try:
        yield
    except errors.ApiError as exc:
        await _abort(context, exc)
    except aio.AbortError:
        raise
    except Exception:
        log.exception("unhandled error in %s", method)
        await _abort(context, _INTERNAL)


def _wrap(
    handler: grpc.RpcMethodHandler,
    check: Callable[[Any], None] | None,
    metadata: Any,
    method: str,
) -> grpc.RpcMethodHandler:
    def guard() -> None:
        if check is not None:
            check(metadata)

    codec = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        unary_unary = handler.unary_unary

        async def call_unary_unary(request: Any, context: Context) -> Any:
            async with _rendered_errors(context, method):
                guard()
                return await unary_unary(request, context)

        return grpc.unary_unary_rpc_method_handler(call_unary_unary, **codec)

    if handler.stream_unary is not None:
        stream_unary = handler.stream_unary

        async def call_stream_unary(requests: AsyncIterator[Any], context: Context) -> Any:
            async with _rendered_errors(context, method):
                guard()
                return await stream_unary(requests, context)

        return grpc.stream_unary_rpc_method_handler(call_stream_unary, **codec)

    if handler.unary_stream is not None:
        unary_stream = handler.unary_stream

        async def call_unary_stream(request: Any, context: Context) -> AsyncIterator[Any]:
            async with _rendered_errors(context, method):
                guard()
                async for item in unary_stream(request, context):
                    yield item

        return grpc.unary_stream_rpc_method_handler(call_unary_stream, **codec)

    stream_stream = handler.stream_stream

    async def call_stream_stream(
        requests: AsyncIterator[Any], context: Context
    ) -> AsyncIterator[Any]:
        async with _rendered_errors(context, method):
            guard()
            async for item in stream_stream(requests, context):
                yield item

    return grpc.stream_stream_rpc_method_handler(call_stream_stream, **codec)
