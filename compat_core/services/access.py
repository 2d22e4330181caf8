"""AccessService: the key check of every call, answered on its own.

The guard around every method checks the caller's credentials before the method runs, so
`Authenticate` has nothing left to do when it is reached: reaching it is the answer. A front
end calls it to refuse a stranger before it reads the body of a request (see
`http_edge.auth`).
"""

from __future__ import annotations

from typing import Any

from compat_core.v1 import access_pb2, access_pb2_grpc


class AccessService(access_pb2_grpc.AccessServiceServicer):
    """Answers OK to whoever the guard let through."""

    async def Authenticate(
        self, request: access_pb2.AuthenticateRequest, context: Any
    ) -> access_pb2.AuthenticateResponse:
        return access_pb2.AuthenticateResponse()
