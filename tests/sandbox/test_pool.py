"""The session pool: one interpreter per key, calls on a key one at a time, idle expiry,
eviction of the least recently used past the maximum, drop, shutdown."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from compat_core.sandbox.base import MNT_DATA
from compat_core.sandbox.bubblewrap import BubblewrapSandbox
from compat_core.sandbox.kernel import KernelSession
from compat_core.sandbox.pool import DEFAULT_MAX_SESSIONS, SessionPool

from .conftest import SMALL
from .procs import uid_of, wait_until_no_tasks

IDLE = 100.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


MakePool = Callable[..., SessionPool]


@pytest_asyncio.fixture(loop_scope="function")
async def make_pool(sandbox: BubblewrapSandbox, data_root: Path) -> AsyncIterator[MakePool]:
    made: list[SessionPool] = []

    def make(
        clock: Callable[[], float] = time.time, max_sessions: int = DEFAULT_MAX_SESSIONS
    ) -> SessionPool:
        pool = SessionPool(
            sandbox,
            data_root / "pool",
            SMALL,
            idle_seconds=IDLE,
            max_sessions=max_sessions,
            clock=clock,
        )
        made.append(pool)
        return pool

    yield make
    for pool in made:
        await pool.close()


async def test_a_key_keeps_its_state_and_files(make_pool: MakePool) -> None:
    pool = make_pool()
    async with pool.lease("thread_a") as lease:
        assert lease.fresh
        assert lease.data_dir == pool.root / "thread_a"
        (lease.data_dir / "in.txt").write_text("input")
        await lease.session.execute("x = 1")
    async with pool.lease("thread_a") as lease:
        assert not lease.fresh
        result = await lease.session.execute(f"print(x + 1, open('{MNT_DATA}/in.txt').read())")
    assert result.logs == "2 input\n"
    assert pool.live == 1


async def test_calls_on_one_key_run_one_at_a_time(make_pool: MakePool) -> None:
    pool = make_pool()
    timed = "import time\nstart = time.monotonic()\ntime.sleep(0.3)\nprint(start, time.monotonic())"
    first, second = await asyncio.gather(
        pool.execute("thread_b", timed), pool.execute("thread_b", timed)
    )
    (first_start, first_end), (second_start, _) = (
        tuple(map(float, r.logs.split())) for r in (first, second)
    )
    assert second_start >= first_end > first_start


async def test_idle_sessions_expire_with_their_files(make_pool: MakePool) -> None:
    clock = Clock()
    pool = make_pool(clock=clock)
    async with pool.lease("thread_c") as lease:
        await lease.session.execute(f"y = 5\nopen('{MNT_DATA}/f', 'w').write('x')")
        session = lease.session
    uid = uid_of(session) if os.geteuid() == 0 else None
    clock.now += IDLE / 2
    assert await pool.sweep() == []
    assert session.alive
    clock.now += IDLE
    assert await pool.sweep() == ["thread_c"]
    assert not session.alive
    assert not (pool.root / "thread_c").exists()
    if uid is not None:
        assert wait_until_no_tasks(uid) == 0
    async with pool.lease("thread_c") as lease:
        assert lease.fresh
        result = await lease.session.execute("print('y' in globals())")
    assert result.logs == "False\n"


async def test_past_the_maximum_the_least_recently_used_is_evicted(make_pool: MakePool) -> None:
    clock = Clock()
    pool = make_pool(clock=clock, max_sessions=2)
    for key in ("a", "b", "c"):
        clock.now += 1
        await pool.execute(key, f"me = {key!r}")
    assert pool.live == 2
    clock.now += 1
    async with pool.lease("b") as lease:  # still there
        assert not lease.fresh
    clock.now += 1
    async with pool.lease("a") as lease:  # evicted for c; now c (least recent) goes
        assert lease.fresh
        assert (await lease.session.execute("print('me' in globals())")).logs == "False\n"
    async with pool.lease("b") as lease:
        assert not lease.fresh
    async with pool.lease("c") as lease:
        assert lease.fresh
    assert pool.live == 2


async def test_drop_ends_a_running_call_and_keeps_the_files(make_pool: MakePool) -> None:
    pool = make_pool()
    async with pool.lease("thread_d") as lease:
        (lease.data_dir / "keep").write_text("k")
    call = asyncio.create_task(
        pool.execute(
            "thread_d",
            f"open('{MNT_DATA}/started', 'w').close()\nimport time\ntime.sleep(100)",
        )
    )
    started = pool.root / "thread_d" / "started"
    for _ in range(400):  # up to 20 s for the session to start and the call to begin
        if started.exists():
            break
        await asyncio.sleep(0.05)
    assert started.exists()
    await pool.drop("thread_d")
    result = await asyncio.wait_for(call, 10)
    assert result.lost_state
    assert result.stopped is not None
    assert "ended while the call ran" in result.stopped
    assert (pool.root / "thread_d" / "keep").read_text() == "k"
    assert pool.live == 0
    await pool.drop("thread_d", remove_files=True)
    assert not (pool.root / "thread_d").exists()


async def test_a_dead_session_is_replaced_on_the_next_call(make_pool: MakePool) -> None:
    pool = make_pool()
    async with pool.lease("thread_e") as lease:
        assert isinstance(lease.session, KernelSession)
        lease.session.process.kill()
        await lease.session.process.wait()
    async with pool.lease("thread_e") as lease:
        assert lease.fresh
        assert (await lease.session.execute("1 + 1")).logs == "2\n"


async def test_files_of_an_earlier_run_expire_by_age(make_pool: MakePool, data_root: Path) -> None:
    clock = Clock()
    old = data_root / "pool" / "thread_old"
    old.mkdir(parents=True)
    os.utime(old, (clock.now - IDLE * 2, clock.now - IDLE * 2))
    recent = data_root / "pool" / "thread_recent"
    recent.mkdir()
    os.utime(recent, (clock.now - IDLE / 2, clock.now - IDLE / 2))
    pool = make_pool(clock=clock)
    assert await pool.sweep() == ["thread_old"]
    assert not old.exists()
    assert recent.exists()


async def test_close_ends_every_session_and_keeps_files(make_pool: MakePool) -> None:
    pool = make_pool()
    await asyncio.gather(
        *(pool.execute(key, f"open('{MNT_DATA}/k', 'w').write('{key}')") for key in ("p", "q"))
    )
    assert pool.live == 2
    await pool.close()
    assert pool.live == 0
    assert (pool.root / "p" / "k").read_text() == "p"
    with pytest.raises(Exception, match="closed"):
        await pool.execute("p", "1")


def test_keys_are_checked(sandbox: BubblewrapSandbox, data_root: Path) -> None:
    pool = SessionPool(sandbox, data_root / "pool")
    for bad in ("", "../x", "a/b", "x" * 129, "."):
        with pytest.raises(ValueError, match="session key"):
            pool.data_dir(bad)


async def test_a_key_in_use_does_not_expire_and_its_files_wait(make_pool: MakePool) -> None:
    clock = Clock()
    pool = make_pool(clock=clock)
    async with pool.lease("thread_f") as lease:
        clock.now += IDLE * 2
        assert await pool.sweep() == []
        removal = asyncio.create_task(pool.drop("thread_f", remove_files=True))
        # The drop ended the session at once, but waits for this lease to delete the files.
        for _ in range(100):
            if not lease.session.alive:
                break
            await asyncio.sleep(0.02)
        assert not lease.session.alive
        assert not removal.done()
        assert lease.data_dir.exists()
    await asyncio.wait_for(removal, 10)
    assert not (pool.root / "thread_f").exists()
    async with pool.lease("thread_f") as lease:
        assert lease.fresh
        assert (await lease.session.execute("2 * 21")).logs == "42\n"
