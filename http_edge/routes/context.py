"""What every route handler needs: the core's stubs and the caller's context for the RPC.

The stubs live on the application (one channel per process, opened by `create_app`'s
cleanup context); handlers reach them through `CORE`, never by opening channels of their own.
"""

from __future__ import annotations

import os
import threading
import uuid
from typing import TYPE_CHECKING, Final, cast

import grpc
from aiohttp import web
from grpc_health.v1 import health_pb2_grpc

from compat_core.config import Settings
from compat_core.v1 import (
    access_pb2_grpc,
    admin_pb2_grpc,
    assistants_pb2_grpc,
    files_pb2_grpc,
    messages_pb2_grpc,
    models_pb2_grpc,
    runs_pb2_grpc,
    threads_pb2_grpc,
    vector_stores_pb2_grpc,
)
from http_edge.auth import Admission
from http_edge.core_health import CoreHealth
from http_edge.errors import CURRENT_REQUEST_ID
from http_edge.streams import EventStreams

if TYPE_CHECKING:
    from compat_core.v1.access_pb2_grpc import AccessServiceAsyncStub
    from compat_core.v1.admin_pb2_grpc import AdminServiceAsyncStub
    from compat_core.v1.assistants_pb2_grpc import AssistantsServiceAsyncStub
    from compat_core.v1.files_pb2_grpc import FilesServiceAsyncStub
    from compat_core.v1.messages_pb2_grpc import MessagesServiceAsyncStub
    from compat_core.v1.models_pb2_grpc import ModelsServiceAsyncStub
    from compat_core.v1.runs_pb2_grpc import RunsServiceAsyncStub
    from compat_core.v1.threads_pb2_grpc import ThreadsServiceAsyncStub
    from compat_core.v1.vector_stores_pb2_grpc import VectorStoresServiceAsyncStub

Metadata = tuple[tuple[str, str], ...]

_MAX_REQUEST_ID = 200
_CORS_EXPOSE: Final = "x-request-id"
# Request IDs made per read of the OS's random source (see `_RequestIds`).
_REQUEST_ID_BATCH = 256


class Core:
    """The stubs of every core service, sharing one channel."""

    __slots__ = (
        "access",
        "admin",
        "assistants",
        "files",
        "health",
        "messages",
        "models",
        "runs",
        "threads",
        "vector_stores",
    )

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
        self.access = cast("AccessServiceAsyncStub", access_pb2_grpc.AccessServiceStub(channel))
        self.vector_stores = cast(
            "VectorStoresServiceAsyncStub",
            vector_stores_pb2_grpc.VectorStoresServiceStub(channel),
        )
        self.admin = cast("AdminServiceAsyncStub", admin_pb2_grpc.AdminServiceStub(channel))
        # grpc's health package ships no type hints: its stub is untyped.
        self.health = health_pb2_grpc.HealthStub(channel)


class Cors:
    """`COMPAT_CORS_ORIGINS`: `*`, or the origins allowed to call from a browser."""

    __slots__ = ("allow_all", "origins")

    def __init__(self, origins: list[str]) -> None:
        self.allow_all = "*" in origins
        self.origins = frozenset(origins)

    def allows(self, origin: str) -> bool:
        return self.allow_all or origin in self.origins


CORE: Final = web.AppKey("compat_core", Core)
CORS: Final = web.AppKey("cors", Cors)
SETTINGS: Final = web.AppKey("settings", Settings)
EVENT_STREAMS: Final = web.AppKey("event_streams", EventStreams)
# Made with the channel (`create_app`'s cleanup context), as the stubs are.
ADMISSION: Final = web.AppKey("admission", Admission)
# Its subclass for the admin routes (`AdminAdmission`).
ADMIN_ADMISSION: Final = web.AppKey("admin_admission", Admission)
CORE_HEALTH: Final = web.AppKey("core_health", CoreHealth)
REQUEST_ID: Final = web.RequestKey("request_id", str)


class _RequestIds:
    """Fresh request IDs, `req_` and the hex of a random version 4 UUID, as `uuid.uuid4()`
    makes them, but from one read of the OS's random source per batch.

    `os.urandom` lets go of the GIL for its system call. Under load a store thread then takes
    it and the event loop waits to get it back, and each such hand-over costs CPU: with an
    `os.urandom` per request, listing messages at 64 connections cost about 40 µs of CPU more
    per request than with one per batch.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready: list[str] = []

    def next(self) -> str:
        with self._lock:
            if not self._ready:
                self._ready = self._batch()
            return self._ready.pop()

    @staticmethod
    def _batch() -> list[str]:
        random = os.urandom(16 * _REQUEST_ID_BATCH)
        return [
            "req_" + uuid.UUID(bytes=random[start : start + 16], version=4).hex
            for start in range(0, len(random), 16)
        ]


_REQUEST_IDS: Final = _RequestIds()


def assign_request_id(request: web.Request) -> str:
    """The caller's `x-request-id` when it is safe to echo and to log (printable ASCII, at
    most 200 characters), else a fresh one."""
    given = request.headers.get("x-request-id")
    if given and len(given) <= _MAX_REQUEST_ID and given.isascii() and given.isprintable():
        request_id = given
    else:
        request_id = _REQUEST_IDS.next()
    request[REQUEST_ID] = request_id
    CURRENT_REQUEST_ID.set(request_id)
    return request_id


# The headers the core authenticates a call by: its key, and the project the caller means
# (OpenAI's `OpenAI-Project`, which the core checks against the key's).
_CREDENTIALS = (("Authorization", "authorization"), ("OpenAI-Project", "openai-project"))


def rpc_metadata(request: web.Request) -> Metadata:
    """The caller's credentials for the core, which authenticates; the edge never does.

    A header gRPC cannot carry (anything but printable ASCII: a tab, which HTTP allows, or
    a non-ASCII character) is left out: the core then answers as for a missing key, instead
    of the call failing inside grpc. The request ID stays here: the
    core names its faults by error IDs of its own, which the edge logs beside the request ID
    (see `compat_core.guard`).
    """
    metadata: list[tuple[str, str]] = []
    for header, key in _CREDENTIALS:
        value = request.headers.get(header)
        if value and value.isascii() and value.isprintable():
            metadata.append((key, value))
    return tuple(metadata)


def add_response_headers(request: web.Request, response: web.StreamResponse) -> None:
    """`x-request-id` and, for an allowed origin, the CORS headers of an actual request.

    The guard around every route adds them to each response a handler returns unsent; a handler
    that streams its response sends the headers with `prepare()`, so it goes through
    `prepare_stream`. (aiohttp's `on_response_prepare` signal would reach both, at the cost
    of a coroutine or two on every response: 2% of a list call's requests a second.)
    """
    headers = response.headers
    request_id = request.get(REQUEST_ID)
    if request_id is not None:
        headers["x-request-id"] = request_id
    origin = request.headers.get("Origin")
    if origin and request.app[CORS].allows(origin):
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Expose-Headers"] = _CORS_EXPOSE
        headers.add("Vary", "Origin")


async def prepare_stream(request: web.Request, response: web.StreamResponse) -> None:
    """Send a streamed response's status and headers, ours among them."""
    add_response_headers(request, response)
    await response.prepare(request)


def core(request: web.Request) -> Core:
    return request.app[CORE]
