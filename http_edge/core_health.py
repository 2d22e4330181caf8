"""Whether the edge can reach a core, for `GET /health`.

A load balancer sends traffic to an edge whose `/health` answers 200; an edge that reaches no
core fails every call with a 503, so it must say so there too. The answer comes from the
core's `grpc.health.v1` Check on the edge's own channel, with a short deadline, and is kept
for a second: balancers poll often, and many polls at once share one Check.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final

import grpc
from grpc_health.v1 import health_pb2

# How long one Check may take, and how long its answer stands.
CHECK_DEADLINE_SECONDS: Final = 1.0
ANSWER_SECONDS: Final = 1.0
_REQUEST: Final = health_pb2.HealthCheckRequest(service="")


class CoreHealth:
    """The last answer of the core's health service, asked again once it is stale."""

    __slots__ = ("_checking", "_serving", "_stale_at", "_stub")

    def __init__(self, stub: Any) -> None:
        self._stub = stub
        self._serving = False
        self._stale_at = 0.0
        self._checking: asyncio.Future[bool] | None = None

    async def serving(self) -> bool:
        """Whether a core answered SERVING within the last second (asking it if needed)."""
        if time.monotonic() < self._stale_at:
            return self._serving
        if self._checking is None:
            self._checking = asyncio.ensure_future(self._check())
        # Shielded: a poll that gives up does not cancel the Check others wait on.
        return await asyncio.shield(self._checking)

    async def _check(self) -> bool:
        try:
            response = await self._stub.Check(_REQUEST, timeout=CHECK_DEADLINE_SECONDS)
            serving = bool(response.status == health_pb2.HealthCheckResponse.SERVING)
        except grpc.aio.AioRpcError:
            serving = False
        finally:
            self._checking = None
        self._serving = serving
        self._stale_at = time.monotonic() + ANSWER_SECONDS
        return serving
