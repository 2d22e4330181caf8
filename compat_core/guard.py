"""Authentication and error rendering around every RPC method of the core.

Every call runs in the project of its key (`compat_core.tenancy`): the guard finds it
(`ApiKeyAuth`, through the `KeyRing`'s cache) and enters it around the handler, so the store
applies it to everything the call reads and writes, and no handler names a project. It is
also where a project's request rate and open streams are limited, for both transports
(`compat_core.ratelimit`; the limits of runs are checked where runs are created).

Services raise `ApiError`; the guard turns it into a rich `google.rpc.Status`, so no handler
repeats the abort recipe. Anything else is a fault of ours: it is logged with its traceback
under a fresh error ID, and the caller gets INTERNAL with a message that reveals nothing of the
server's insides but that ID. The edge logs its request ID beside the core's message, so a
request ID a user quotes leads to the traceback too; no ID travels with every call (one
metadata entry a call cost about 3% of the requests a second of a list through the edge).

Each method is wrapped once, as its servicer is registered, rather than by a grpc.aio
`ServerInterceptor`: an interceptor runs for every call and builds a new handler each time,
3 to 6% of the requests a second of a list call through the edge on 2 cores. What an
interceptor gave for free, that no method is left out, `test_grpc.py` checks instead: every
method the server reports through reflection refuses a call without a key.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from grpc import aio

from compat_core import errors, ids, tenancy
from compat_core.keyring import MISS, KeyRing
from compat_core.metrics import CoreMetrics, RpcMeter
from compat_core.ratelimit import RateLimiter
from compat_core.v1 import access_pb2

log = logging.getLogger(__name__)

_FAULT = (
    "The server had an error while processing your request. "
    "Quote error ID {error_id} when reporting it."
)

_OK = grpc.StatusCode.OK.name
_CANCELLED = grpc.StatusCode.CANCELLED.name
_INTERNAL = grpc.StatusCode.INTERNAL.name
_UNKNOWN = grpc.StatusCode.UNKNOWN.name

# grpc ships no type hints for its aio context; handlers receive it untyped.
Context = Any
Metadata = Sequence[tuple[str, str | bytes]]
S = TypeVar("S")
# What the guard asks for the scope of a call, given its metadata (refusing it by raising).
ScopeOf = Callable[[Metadata | None], Awaitable[tenancy.Scope]]


MISSING_KEY = (
    "You didn't provide an API key. You need to provide your API key in an "
    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)
_MISMATCHED_PROJECT = "OpenAI-Project header should match project for API key"
# OpenAI answers an admin key on the API of a project with a 401 for a missing scope.
ADMIN_ON_PROJECT_API = (
    "You have insufficient permissions for this operation. An admin key (COMPAT_ADMIN_KEYS) "
    "opens only the admin API (/v1/organization/...): call this with a project's key."
)


def credentials(metadata: Metadata | None) -> tuple[str, str, str | None]:
    """The call's `authorization` entry, the bearer token in it ("" if none), and its
    `openai-project` entry."""
    header = ""
    asked: str | None = None
    for key, value in metadata or ():
        if key == "authorization":
            header = value.decode() if isinstance(value, bytes) else str(value)
        elif key == "openai-project":
            asked = value.decode() if isinstance(value, bytes) else str(value)
    scheme, _, presented = header.partition(" ")
    return header, presented.strip() if scheme.lower() == "bearer" else "", asked


class ApiKeyAuth:
    """The project a call is for: its key's (`authorization: Bearer <key>`), which an
    `openai-project` entry, when the call has one, must name.

    Keys are compared by their SHA-256 (`KeyRing`), so the time a lookup takes depends on the
    digest of what was presented, which says nothing about any valid key. `is_admin` is asked
    only about a key already refused, so the refusal of an admin key can say why.
    """

    def __init__(self, keys: KeyRing, is_admin: Callable[[str], bool] | None = None) -> None:
        self._keys = keys
        self._is_admin = is_admin

    async def project(self, metadata: Metadata | None) -> str:
        header, token, asked = credentials(metadata)
        found: str | None = None
        if token:
            cached = self._keys.cached(token)
            found = await self._keys.look_up(token) if cached is MISS else cached
        if found is None:
            if token and self._is_admin is not None and self._is_admin(token):
                raise errors.unauthenticated(ADMIN_ON_PROJECT_API, code="")
            required = self._keys.required_cached()
            if required is None:
                required = await self._keys.required()
            if required:
                raise errors.unauthenticated(
                    "Incorrect API key provided." if header else MISSING_KEY
                )
            found = tenancy.DEFAULT_PROJECT
        if asked is not None and asked != found:
            raise errors.unauthenticated(_MISMATCHED_PROJECT, code="mismatched_project")
        return found


class RpcGuard:
    """Wraps the methods of servicers: the key checked first, then the handler in the key's
    project, its errors rendered, each call counted in `metrics`."""

    def __init__(self, auth: ApiKeyAuth, metrics: CoreMetrics, limiter: RateLimiter) -> None:
        self._project = auth.project
        self._metrics = metrics
        self._limiter = limiter

    def servicer(
        self, servicer: S, service: ServiceDescriptor, scope_of: ScopeOf | None = None
    ) -> S:
        """Replace each of `service`'s methods on `servicer` with its guarded form; register
        the servicer that this returns. `scope_of` checks the credentials of its calls in
        place of the project key check (the admin service's, `compat_core.admin_auth`)."""
        for method in service.methods:
            handler = getattr(servicer, method.name)
            setattr(servicer, method.name, self._guarded(handler, method, scope_of))
        return servicer

    def _guarded(
        self, handler: Callable[..., Any], method: MethodDescriptor, scope_of: ScopeOf | None
    ) -> Any:
        name = f"/{method.containing_service.full_name}/{method.name}"
        meter = self._metrics.rpc(name)
        if scope_of is not None:
            # The admin service's calls are no project's: no project's rate limits apply.
            if method.server_streaming or method.client_streaming:
                raise TypeError(f"{method.full_name}: only unary methods take their own check")
            return _unary(handler, name, meter, scope_of)
        project_of = self._project
        limiter = self._limiter
        # The edge's check of a key before it reads a body is not a request of its own.
        admit_now = (
            _admitted if method.containing_service.full_name == _ACCESS else limiter.admit_now
        )

        async def admitted(metadata: Metadata | None) -> str:
            """The key's project, once the call is within its request rate."""
            project = await project_of(metadata)
            if not admit_now(project):
                await limiter.admit(project)
            return project

        if method.server_streaming:
            streams = self._metrics.streams_active

            async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
                started = time.perf_counter()
                streams.inc()
                scope = None
                counted: str | None = None
                try:
                    project = await admitted(context.invocation_metadata())
                    if limiter.limits_streams(project):
                        await limiter.open_stream(project)
                        counted = project
                    scope = tenancy.enter(project)
                    async for item in handler(request, context):
                        yield item
                except aio.AbortError:
                    meter.done(_aborted_code(context), started)
                    raise
                except asyncio.CancelledError:
                    meter.done(_CANCELLED, started)
                    raise
                except Exception as exc:
                    meter.done(_code(exc), started)
                    await _fail(context, name, exc)
                else:
                    meter.done(_OK, started)
                finally:
                    if scope is not None:
                        tenancy.leave(scope)
                    if counted is not None:
                        limiter.close_stream(counted)
                    streams.dec()

            return stream
        return _unary(handler, name, meter, admitted)


def _unary(handler: Callable[..., Any], name: str, meter: RpcMeter, enter: ScopeOf) -> Any:
    """`handler` in the scope `enter` finds for the call's metadata (refusing it by raising),
    its errors rendered and its end counted by `meter`."""

    async def unary(request: Any, context: Context) -> Any:
        started = time.perf_counter()
        scope = None
        try:
            scope = tenancy.enter(await enter(context.invocation_metadata()))
            response = await handler(request, context)
        except aio.AbortError:
            meter.done(_aborted_code(context), started)
            raise
        except asyncio.CancelledError:
            meter.done(_CANCELLED, started)
            raise
        except Exception as exc:
            meter.done(_code(exc), started)
            await _fail(context, name, exc)
        finally:
            if scope is not None:
                tenancy.leave(scope)
        meter.done(_OK, started)
        return response

    return unary


_ACCESS = access_pb2.DESCRIPTOR.services_by_name["AccessService"].full_name


def _admitted(project: str) -> bool:
    return True


def _code(exc: Exception) -> str:
    """The status name a call that raised `exc` ends with (see `_fail`)."""
    return str(exc.status.name) if isinstance(exc, errors.ApiError) else _INTERNAL


def _aborted_code(context: Context) -> str:
    """The status name a handler that aborted the call itself set."""
    code = context.code()
    return str(code.name) if isinstance(code, grpc.StatusCode) else _UNKNOWN


async def _fail(context: Context, method: str, exc: Exception) -> None:
    """End the call with the status for what its handler raised (from its `except` block:
    a fault is logged with the traceback being handled). Aborting raises, so this never
    returns. Plain try/except in the wrappers, not a context manager: 1.4 µs less a call."""
    if isinstance(exc, errors.ApiError):
        await _abort(context, exc)
    error_id = ids.new_id(ids.ERROR)
    log.exception("unhandled error in %s (error ID %s)", method, error_id)
    await _abort(
        context, errors.ApiError(grpc.StatusCode.INTERNAL, _FAULT.format(error_id=error_id))
    )


async def _abort(context: Context, error: errors.ApiError) -> None:
    await context.abort_with_status(error.to_status())
