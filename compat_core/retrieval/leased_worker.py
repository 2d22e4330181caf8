"""What ingestion and re-embedding have in common: a core's background worker over work that
lives in the database and is leased to one core at a time.

The worker runs rounds while there is work, and between rounds waits a poll interval or until
`wake`. While a round works, its leases are renewed every third of their length: a renewal
that fails is logged and tried at the next tick (the lease outlasts two missed ones), never
left to end the round. `stop` cancels the round in flight and hands back what it held, so the
next claim (on this core after a restart, or another core once the lease runs out) goes on.
Claims span every project; a round enters the project of each piece of work it takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from typing import ClassVar, Final

from compat_core import tenancy
from compat_core.tasks import cancel_and_wait, every

log = logging.getLogger(__name__)

POLL_SECONDS: Final = 1.0


def now_ms() -> int:
    return int(time.time() * 1000)


class LeasedWorker(ABC):
    """Owned by a core: `start` with it, `stop` before its store closes."""

    # The task's name, and what the work is called in the log.
    task_name: ClassVar[str]
    work: ClassVar[str]

    def __init__(self, owner: str, lease_seconds: float) -> None:
        self._owner = owner
        self._lease_ms = int(lease_seconds * 1000)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Look for work now (some was just added on this core)."""
        self._wake.set()

    async def start(self) -> None:
        with tenancy.all_projects():
            self._task = asyncio.create_task(self._run(), name=self.task_name)

    async def stop(self) -> None:
        """Stop at once; what the round in flight held is released for the next claim."""
        if self._task is None:
            return
        await cancel_and_wait(self._task)
        self._task = None
        try:
            with tenancy.all_projects():
                await self._release()
        except Exception:
            log.exception("could not release what this core held for %s", self.work)

    async def _run(self) -> None:
        while True:
            try:
                busy = await self._round()
            except Exception:
                log.exception("%s failed; retrying", self.work)
                busy = False
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
                self._wake.clear()

    @contextlib.asynccontextmanager
    async def _renewing(self) -> AsyncIterator[None]:
        """Keep this core's leases while the body works."""
        renewer = asyncio.create_task(
            every(
                self._lease_ms / 3000,
                lambda: self._renew(now_ms() + self._lease_ms),
                f"could not renew this core's leases for {self.work}",
            )
        )
        try:
            yield
        finally:
            await cancel_and_wait(renewer)

    @abstractmethod
    async def _round(self) -> bool:
        """Claim and do some work; whether there was any."""

    @abstractmethod
    async def _renew(self, until_ms: int) -> None:
        """Extend every lease this core holds to `until_ms`."""

    @abstractmethod
    async def _release(self) -> None:
        """Hand back every lease this core holds."""
