"""Credentials checked before a request's body is read.

The core authenticates every call; the edge knows no keys. But a request's own RPC goes out
only after its body is read, parsed and (for an upload whose form puts the file first)
spooled to disk, so a stranger could make the edge do all of that before being refused.
Before it reads a body, the edge asks the core's `AccessService.Authenticate` about the
caller's credentials instead, and answers its refusal (401) with the body unread.

Only positive verdicts are kept, for a few seconds, per credential (a hash of the
`Authorization` and `OpenAI-Project` headers as the core gets them, so no key stays in
memory): a client making many requests costs one `Authenticate` every few seconds, and its
hot path stays one RPC per request. Nothing is lost by keeping them: the core still checks
the request's own RPC, so a verdict kept a little too long decides only that the body is read
before the core refuses the call.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Final

from aiohttp import web

from compat_core.v1 import access_pb2, admin_pb2

if TYPE_CHECKING:
    from compat_core.v1.access_pb2_grpc import AccessServiceAsyncStub
    from compat_core.v1.admin_pb2_grpc import AdminServiceAsyncStub

# How long a positive verdict is kept, and for how many credentials at most.
ADMITTED_SECONDS: Final = 5.0
_MAX_ADMITTED: Final = 4096
_REQUEST: Final = access_pb2.AuthenticateRequest()
_ADMIN_REQUEST: Final = admin_pb2.AuthenticateAdminRequest()


class Admission:
    """The core's recent positive verdicts on credentials, by credential."""

    __slots__ = ("_admitted", "_stub")

    def __init__(self, stub: AccessServiceAsyncStub) -> None:
        self._stub = stub
        # Hash of the header → when its verdict expires; oldest verdicts first.
        self._admitted: dict[bytes, float] = {}

    async def admit(self, request: web.Request, metadata: tuple[tuple[str, str], ...]) -> None:
        """Return when the core accepts the request's credentials (`metadata`, as the
        request's own RPC will carry them); raise its `AioRpcError` when it does not."""
        # The project asked for is part of the credential: a key is admitted for its own.
        presented = "\n".join(value for _, value in metadata)
        credential = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
        now = time.monotonic()
        expires = self._admitted.get(credential)
        if expires is not None and expires > now:
            return
        await self._ask(metadata)
        admitted = self._admitted
        admitted.pop(credential, None)
        admitted[credential] = time.monotonic() + ADMITTED_SECONDS
        if len(admitted) > _MAX_ADMITTED:
            del admitted[next(iter(admitted))]

    async def _ask(self, metadata: tuple[tuple[str, str], ...]) -> None:
        await self._stub.Authenticate(_REQUEST, metadata=metadata)


class AdminAdmission(Admission):
    """The same for the admin routes, whose callers the core's `AdminService` lets in (an
    admin key, which `AccessService` refuses)."""

    __slots__ = ("_admin",)

    def __init__(self, stub: AccessServiceAsyncStub, admin: AdminServiceAsyncStub) -> None:
        super().__init__(stub)
        self._admin = admin

    async def _ask(self, metadata: tuple[tuple[str, str], ...]) -> None:
        await self._admin.AuthenticateAdmin(_ADMIN_REQUEST, metadata=metadata)
