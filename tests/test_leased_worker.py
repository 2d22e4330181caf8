"""The loop ingestion and re-embedding share (`retrieval.leased_worker`): its rounds, its lease
renewals and its stop, with a worker whose work is a test's events."""

from __future__ import annotations

import asyncio
from typing import Final

import pytest

from compat_core.retrieval.leased_worker import LeasedWorker

LEASE_SECONDS: Final = 0.03  # renewed every 10 ms
DEADLINE: Final = 10.0


class Worker(LeasedWorker):
    task_name = "test-worker"
    work = "test work"

    def __init__(self, failing_renewals: int = 0, failing_rounds: int = 0) -> None:
        super().__init__("core-test", LEASE_SECONDS)
        self.failing_renewals = failing_renewals
        self.failing_rounds = failing_rounds
        self.renewals: list[int] = []
        self.rounds = 0
        self.released = 0
        self.work_done = asyncio.Event()
        self.renewed_twice = asyncio.Event()
        self.pending = 0

    async def _round(self) -> bool:
        self.rounds += 1
        if self.failing_rounds:
            self.failing_rounds -= 1
            raise RuntimeError("the store is down")
        if not self.pending:
            return False
        async with self._renewing():
            await self.renewed_twice.wait()
        self.pending -= 1
        self.work_done.set()
        return True

    async def _renew(self, until_ms: int) -> None:
        if self.failing_renewals:
            self.failing_renewals -= 1
            raise RuntimeError("the store refused the renewal")
        self.renewals.append(until_ms)
        if len(self.renewals) >= 2:
            self.renewed_twice.set()

    async def _release(self) -> None:
        self.released += 1


async def test_a_failed_renewal_is_retried_at_the_next_tick() -> None:
    worker = Worker(failing_renewals=1)
    worker.pending = 1
    await worker.start()
    try:
        await asyncio.wait_for(worker.work_done.wait(), DEADLINE)
    finally:
        await worker.stop()
    assert len(worker.renewals) >= 2
    assert worker.renewals == sorted(worker.renewals)


async def test_a_failed_round_is_logged_and_the_worker_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker = Worker(failing_rounds=1)
    worker.pending = 1
    await worker.start()
    worker.wake()
    try:
        await asyncio.wait_for(worker.work_done.wait(), DEADLINE)
    finally:
        await worker.stop()
    assert worker.rounds >= 2
    assert "test work failed; retrying" in caplog.text


async def test_stop_releases_what_the_core_holds_once() -> None:
    worker = Worker()
    await worker.start()
    await worker.stop()
    await worker.stop()
    assert worker.released == 1
