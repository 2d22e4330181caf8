"""The background tasks a core owns (housekeeping, listeners, sweeps, ingestion): running one
at an interval, and ending one."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)


async def every(
    seconds: float,
    work: Callable[[], Awaitable[object]],
    failed: str,
    *,
    at_once: bool = False,
) -> None:
    """Do `work` every `seconds` (first after one interval, or `at_once`) until cancelled. A
    round that fails is logged as `failed` and the next one goes on: one bad round of upkeep
    (the database away a moment) must not end it for the life of the core."""
    if not at_once:
        await asyncio.sleep(seconds)
    while True:
        try:
            await work()
        except Exception:
            log.exception("%s", failed)
        await asyncio.sleep(seconds)


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and return once it has ended: whatever it holds is released before the
    caller goes on to close what the task used (the store, a connection)."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
