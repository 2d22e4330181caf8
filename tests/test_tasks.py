"""`tasks.every`, the loop behind each core's periodic upkeep (sweeps, refreshes, renewals)."""

from __future__ import annotations

import asyncio

import pytest

from compat_core.tasks import cancel_and_wait, every

DEADLINE = 10.0


async def test_a_failed_round_is_logged_and_the_next_one_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rounds: list[int] = []
    second = asyncio.Event()

    async def work() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 1:
            raise RuntimeError("the database is away")
        second.set()

    task = asyncio.create_task(every(0.001, work, "the upkeep failed"))
    try:
        await asyncio.wait_for(second.wait(), DEADLINE)
    finally:
        await cancel_and_wait(task)
    assert rounds[:2] == [0, 1]
    assert "the upkeep failed" in caplog.text
    assert "the database is away" in caplog.text


async def test_at_once_runs_the_first_round_before_any_interval() -> None:
    ran = asyncio.Event()

    async def work() -> None:
        ran.set()

    task = asyncio.create_task(every(3600, work, "never", at_once=True))
    try:
        await asyncio.wait_for(ran.wait(), DEADLINE)
    finally:
        await cancel_and_wait(task)
    assert ran.is_set()
