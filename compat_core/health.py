"""The core's `grpc.health.v1` service, with a bound on its open `Watch` streams.

Health answers without a key (orchestrators' probes send none), so anyone who reaches the
port may call it. A `Check` is over at once, but a `Watch` stays open for as long as its
caller likes: unbounded, strangers could hold open as many as the server has memory for.
Beyond `max_watches` at once, a new `Watch` is refused with RESOURCE_EXHAUSTED (a probe then
falls back to `Check`, or retries later).
"""

from __future__ import annotations

from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2

# grpc ships no type hints for its aio context; handlers receive it untyped.
Context = Any


class BoundedHealth(health.aio.HealthServicer):  # type: ignore[misc]
    """grpc's health servicer, whose `Watch` serves at most `max_watches` callers at once."""

    def __init__(self, max_watches: int) -> None:
        super().__init__()
        self._max_watches = max_watches
        self.watching = 0

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: Context) -> None:
        if self.watching >= self._max_watches:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"This server allows {self._max_watches} health watches at once; "
                "use Check, or watch again later.",
            )
        self.watching += 1
        try:
            await super().Watch(request, context)
        finally:
            self.watching -= 1
