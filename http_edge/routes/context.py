"""What every route handler needs: the core's stubs and the caller's context for the RPC.

The stubs live on the application (one channel per process, opened by `create_app`'s
cleanup context); handlers reach them through `CORE`, never by opening channels of their own.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any, Final, cast

import grpc
from aiohttp import web

from compat_core.config import Settings
from compat_core.v1 import (
    assistants_pb2_grpc,
    files_pb2_grpc,
    messages_pb2_grpc,
    models_pb2_grpc,
    runs_pb2_grpc,
    threads_pb2_grpc,
)

if TYPE_CHECKING:
    from compat_core.v1.assistants_pb2_grpc import AssistantsServiceAsyncStub
    from compat_core.v1.files_pb2_grpc import FilesServiceAsyncStub
    from compat_core.v1.messages_pb2_grpc import MessagesServiceAsyncStub
    from compat_core.v1.models_pb2_grpc import ModelsServiceAsyncStub
    from compat_core.v1.runs_pb2_grpc import RunsServiceAsyncStub
    from compat_core.v1.threads_pb2_grpc import ThreadsServiceAsyncStub

Metadata = tuple[tuple[str, str], ...]

_MAX_REQUEST_ID = 200


class Core:
    """The stubs of every core service, sharing one channel."""

    __slots__ = ("assistants", "files", "messages", "models", "runs", "threads")

    def __init__(self, channel: grpc.aio.Channel) -> None:
        # The generated classes are typed for sync channels; on an aio channel they are the
        # `…AsyncStub` shapes that mypy-protobuf describes.
        self.assistants = cast(
            "AssistantsServiceAsyncStub", assistants_pb2_grpc.AssistantsServiceStub(channel)
        )
        self.threads = cast("ThreadsServiceAsyncStub", threads_pb2_grpc.ThreadsServiceStub(channel))
        self.messages = cast(
            "MessagesServiceAsyncStub", messages_pb2_grpc.MessagesServiceStub(channel)
        )
        self.runs = cast("RunsServiceAsyncStub", runs_pb2_grpc.RunsServiceStub(channel))
        self.files = cast("FilesServiceAsyncStub", files_pb2_grpc.FilesServiceStub(channel))
        self.models = cast("ModelsServiceAsyncStub", models_pb2_grpc.ModelsServiceStub(channel))


CORE: Final = web.AppKey("compat_core", Core)
SETTINGS: Final = web.AppKey("settings", Settings)
# The tasks relaying event streams: a shutdown ends them rather than waiting for runs to end.
EVENT_STREAMS: Final = web.AppKey("event_streams", set[asyncio.Task[Any]])
REQUEST_ID: Final = web.RequestKey("request_id", str)


def assign_request_id(request: web.Request) -> str:
    """The caller's `x-request-id` when it is usable as gRPC metadata, else a fresh one."""
    given = request.headers.get("x-request-id")
    if given and len(given) <= _MAX_REQUEST_ID and given.isascii() and given.isprintable():
        request_id = given
    else:
        request_id = "req_" + uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    return request_id


def rpc_metadata(request: web.Request) -> Metadata:
    """Credentials and request ID for the core, which authenticates; the edge never does.

    A header gRPC cannot carry (non-ASCII) is left out: the core then answers as for a
    missing key, instead of the call failing inside grpc.
    """
    request_id = request.get(REQUEST_ID) or assign_request_id(request)
    authorization = request.headers.get("Authorization")
    if authorization and authorization.isascii():
        return (("authorization", authorization), ("x-request-id", request_id))
    return (("x-request-id", request_id),)


def core(request: web.Request) -> Core:
    return request.app[CORE]
