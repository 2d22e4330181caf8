"""Ending the background tasks a core owns (housekeeping, listeners, sweeps, ingestion)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and return once it has ended: whatever it holds is released before the
    caller goes on to close what the task used (the store, a connection)."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
