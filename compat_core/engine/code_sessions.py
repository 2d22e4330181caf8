"""The core's code_interpreter sessions: the sandbox, checked once, and the pool of sessions,
swept while the core runs.

A machine that cannot run the sandbox (no bubblewrap, user namespaces off, the environment
not built) still serves everything else: the core says so once at start, with the fix, and a
run whose model calls code_interpreter fails with that reason. Code never runs unsandboxed.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Final

from compat_core.sandbox.base import Limits, Sandbox, SandboxUnavailable
from compat_core.sandbox.pool import SessionPool
from compat_core.tasks import cancel_and_wait, every

log = logging.getLogger(__name__)

MAX_SWEEP_INTERVAL: Final = 60.0
"""How often idle sessions are looked for, at most: a session outlives its idle time by no
more than this (or a quarter of the idle time, when that is shorter)."""


class CodeSessions:
    """Sessions of `sandbox` with their files under `root`."""

    def __init__(
        self,
        sandbox: Sandbox,
        root: Path,
        limits: Limits,
        *,
        idle_seconds: float,
        max_sessions: int,
    ) -> None:
        self._sandbox = sandbox
        self._root = root
        self._limits = limits
        self._idle_seconds = idle_seconds
        self._max_sessions = max_sessions
        self.pool: SessionPool | None = None
        # Why this machine cannot run code (None once the sandbox checked out).
        self.unavailable: str | None = "the core has not started its sandbox"
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            await asyncio.to_thread(self._sandbox.check)
        except SandboxUnavailable as exc:
            self.unavailable = str(exc)
            log.warning("code_interpreter cannot run code on this machine: %s", exc)
            return
        self.pool = SessionPool(
            self._sandbox,
            self._root,
            self._limits,
            idle_seconds=self._idle_seconds,
            max_sessions=self._max_sessions,
        )
        self.unavailable = None
        await self._sweep()
        interval = max(1.0, min(MAX_SWEEP_INTERVAL, self._idle_seconds / 4))
        self._task = asyncio.create_task(
            every(interval, self._sweep, "sweeping code_interpreter sessions failed"),
            name="code-sessions",
        )

    async def stop(self) -> None:
        """End every session (and everything it started); their files stay."""
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        if self.pool is not None:
            await self.pool.close()

    async def forget(self, thread_id: str) -> None:
        """End a deleted thread's session, if it is in this core, and delete its files."""
        if self.pool is not None:
            await self.pool.drop(thread_id, remove_files=True)

    async def _sweep(self) -> None:
        assert self.pool is not None
        try:
            expired = await self.pool.sweep()
        except OSError:
            log.exception("sweeping code_interpreter sessions in %s failed", self._root)
            return
        if expired:
            log.info("ended %d idle code_interpreter session(s)", len(expired))
