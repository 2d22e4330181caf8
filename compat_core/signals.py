"""The operator's word to stop: SIGTERM (a process manager, `docker stop`) or SIGINT (Ctrl-C).

Each command of the CLI serves until then and then stops gracefully; the all-in-one server,
a stand-alone core and a stand-alone edge all wait the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal


async def until_signalled() -> None:
    """Return once the process receives SIGTERM or SIGINT (where the loop can handle them)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
