"""Run leases and the stored event log: which core executes a run, and what others can read.

On SQLite, and in the PostgreSQL pass on PostgreSQL; races between cores claiming at once are
made deterministic in `test_store_postgres.py`.
"""

from __future__ import annotations

import asyncio

import pytest
from alembic import command
from sqlalchemy import Connection, select
from test_store import alembic, count, thread
from test_store_runs import run, with_status

from compat_core.store import SqlStore, TransactionRunner, create_store, schema
from compat_core.store.base import Lease, LeaseLost, StoredEvent
from compat_core.store.sql_events import CANCEL_CHANNEL, EVENTS_CHANNEL
from compat_core.v1 import runs_pb2

QUEUED = runs_pb2.RUN_STATUS_QUEUED
IN_PROGRESS = runs_pb2.RUN_STATUS_IN_PROGRESS
REQUIRES_ACTION = runs_pb2.RUN_STATUS_REQUIRES_ACTION
CANCELLING = runs_pb2.RUN_STATUS_CANCELLING
COMPLETED = runs_pb2.RUN_STATUS_COMPLETED
NOW_MS = 1_800_000_000_000
LEASE_MS = 10_000


async def leases(db: TransactionRunner) -> dict[str, tuple[str, int]]:
    def read(conn: Connection) -> dict[str, tuple[str, int]]:
        table = schema.run_leases
        rows = conn.execute(select(table.c.run_id, table.c.owner, table.c.expires_at_ms))
        return {str(r.run_id): (str(r.owner), int(r.expires_at_ms)) for r in rows}

    return await db.read(read)


async def started(store: SqlStore, name: str, lease: Lease | None = None) -> runs_pb2.Run:
    """A thread `thr_<name>` with a queued run `run_<name>`."""
    await store.create_thread(thread(f"thr_{name}"), [])
    r = run(f"thr_{name}", name)
    assert await store.create_run(r, lease=lease)
    return r


def event(sequence: int, text: str = "") -> runs_pb2.RunEvent:
    e = runs_pb2.RunEvent(sequence=sequence)
    e.thread_message_delta.id = "msg_1"
    piece = e.thread_message_delta.content.add()
    piece.part.text.value = text or f"piece {sequence}"
    return e


# The lease row follows the run's status


async def test_an_executing_run_has_a_lease_and_a_waiting_or_ended_one_has_none(
    store: SqlStore, db: TransactionRunner
) -> None:
    r = await started(store, "a", Lease("core-1", NOW_MS + LEASE_MS))
    assert await leases(db) == {r.id: ("core-1", NOW_MS + LEASE_MS)}

    await store.save_progress(run=with_status(r, IN_PROGRESS), holder="core-1")
    assert await leases(db) == {r.id: ("core-1", NOW_MS + LEASE_MS)}, "a held lease stays"

    await store.save_progress(run=with_status(r, REQUIRES_ACTION), holder="core-1")
    assert await leases(db) == {}, "nobody executes a run that waits for tool outputs"

    # Tool outputs through another core: that core takes the run.
    def answered(current: runs_pb2.Run) -> None:
        current.status = QUEUED

    await store.update_run(r.thread_id, r.id, answered, Lease("core-2", NOW_MS + 1))
    assert await leases(db) == {r.id: ("core-2", NOW_MS + 1)}

    await store.save_progress(run=with_status(r, COMPLETED), holder="core-2")
    assert await leases(db) == {}


async def test_a_run_created_without_a_lease_is_claimable_at_once(
    store: SqlStore, db: TransactionRunner
) -> None:
    r = await started(store, "a")
    assert await leases(db) == {r.id: ("", 0)}
    claimed = await store.claim_runs("core-1", NOW_MS, NOW_MS + LEASE_MS, 10)
    assert [c.id for c in claimed] == [r.id]
    assert await leases(db) == {r.id: ("core-1", NOW_MS + LEASE_MS)}


async def test_a_cancel_leaves_the_holder_its_lease(store: SqlStore, db: TransactionRunner) -> None:
    r = await started(store, "a", Lease("core-1", NOW_MS + LEASE_MS))

    def cancel(current: runs_pb2.Run) -> None:
        current.status = CANCELLING

    await store.update_run(r.thread_id, r.id, cancel, Lease("core-2", NOW_MS + 5))
    assert await leases(db) == {r.id: ("core-1", NOW_MS + LEASE_MS)}


# Claims, renewals, releases


async def test_claims_take_only_runs_whose_lease_ran_out(
    store: SqlStore, db: TransactionRunner
) -> None:
    live = await started(store, "live", Lease("core-1", NOW_MS + 1))
    dead = await started(store, "dead", Lease("core-2", NOW_MS - 1))
    claimed = await store.claim_runs("core-3", NOW_MS, NOW_MS + LEASE_MS, 10)
    assert [c.id for c in claimed] == [dead.id]
    assert claimed[0] == dead, "a claim hands back the run as stored"
    assert await leases(db) == {
        live.id: ("core-1", NOW_MS + 1),
        dead.id: ("core-3", NOW_MS + LEASE_MS),
    }
    assert await store.claim_runs("core-4", NOW_MS, NOW_MS + LEASE_MS, 10) == []


async def test_claims_take_the_oldest_expiries_first_up_to_the_limit(store: SqlStore) -> None:
    for index, name in enumerate("cab"):
        await started(store, name, Lease("core-1", NOW_MS - 100 + ord(name) - index))
    first = await store.claim_runs("core-2", NOW_MS, NOW_MS + LEASE_MS, 2)
    rest = await store.claim_runs("core-2", NOW_MS, NOW_MS + LEASE_MS, 2)
    assert sorted(c.id for c in first) == ["run_a", "run_b"]
    assert [c.id for c in rest] == ["run_c"]


async def test_renewal_extends_only_the_owners_leases_and_reports_cancels(
    store: SqlStore, db: TransactionRunner
) -> None:
    mine = await started(store, "mine", Lease("core-1", NOW_MS))
    cancelled = await started(store, "cancelled", Lease("core-1", NOW_MS))
    theirs = await started(store, "theirs", Lease("core-2", NOW_MS))

    def cancel(current: runs_pb2.Run) -> None:
        current.status = CANCELLING

    await store.update_run(cancelled.thread_id, cancelled.id, cancel)
    renewal = await store.renew_leases("core-1", NOW_MS + LEASE_MS)
    assert renewal.held == {mine.id, cancelled.id}
    assert renewal.cancelling == {cancelled.id}
    assert (await leases(db))[theirs.id] == ("core-2", NOW_MS)
    assert (await leases(db))[mine.id] == ("core-1", NOW_MS + LEASE_MS)

    nothing = await store.renew_leases("core-9", NOW_MS + LEASE_MS)
    assert nothing.held == frozenset()
    assert nothing.cancelling == frozenset()


async def test_release_hands_every_run_of_a_core_to_the_next_claim(
    store: SqlStore, db: TransactionRunner
) -> None:
    a = await started(store, "a", Lease("core-1", NOW_MS + LEASE_MS))
    b = await started(store, "b", Lease("core-2", NOW_MS + LEASE_MS))
    await store.release_leases("core-1")
    assert await leases(db) == {a.id: ("", 0), b.id: ("core-2", NOW_MS + LEASE_MS)}
    claimed = await store.claim_runs("core-3", NOW_MS, NOW_MS + LEASE_MS, 10)
    assert [c.id for c in claimed] == [a.id]


async def test_a_core_that_lost_its_lease_cannot_write_the_run(
    store: SqlStore, db: TransactionRunner
) -> None:
    r = await started(store, "a", Lease("core-1", NOW_MS - 1))
    await store.claim_runs("core-2", NOW_MS, NOW_MS + LEASE_MS, 10)
    step = runs_pb2.RunStep(
        id="step_1", run_id=r.id, thread_id=r.thread_id, created_at=r.created_at
    )
    with pytest.raises(LeaseLost):
        await store.save_progress(steps=[step], holder="core-1")
    with pytest.raises(LeaseLost):
        await store.save_progress(run=with_status(r, COMPLETED), holder="core-1")
    assert await count(db, schema.run_steps) == 0
    assert (await store.get_run(r.thread_id, r.id)) == r, "nothing of the stale write landed"

    await store.save_progress(steps=[step], holder="core-2")
    assert await count(db, schema.run_steps) == 1


async def test_deleting_a_thread_drops_its_leases_and_events(
    store: SqlStore, db: TransactionRunner
) -> None:
    r = await started(store, "a", Lease("core-1", NOW_MS))
    kept = await started(store, "b", Lease("core-1", NOW_MS))
    await store.append_events([StoredEvent(r.id, event(1), 10), StoredEvent(kept.id, event(1), 10)])
    assert await store.delete_thread(r.thread_id)
    assert set(await leases(db)) == {kept.id}
    assert await store.read_events(r.id, 0, 10) == []
    assert len(await store.read_events(kept.id, 0, 10)) == 1


async def test_migration_gives_active_runs_an_unowned_lease(
    store: SqlStore, db: TransactionRunner
) -> None:
    queued = await started(store, "queued")
    waiting = await started(store, "waiting")
    await store.save_progress(run=with_status(waiting, REQUIRES_ACTION))

    def down_and_up(conn: Connection) -> None:
        alembic(conn, command.downgrade, "0003")
        alembic(conn, command.upgrade, "head")

    await db.write(down_and_up)
    assert await leases(db) == {queued.id: ("", 0)}


# The stored event log


async def test_events_are_read_after_a_sequence_in_order(store: SqlStore) -> None:
    r = await started(store, "a")
    await store.append_events([StoredEvent(r.id, event(n), 100 + n) for n in (3, 1, 2)])
    await store.append_events([StoredEvent(r.id, event(4), 200)])
    assert await store.last_event_sequence(r.id) == 4
    assert await store.last_event_sequence("run_none") == 0
    after_one = await store.read_events(r.id, 1, 10)
    assert [e.sequence for e in after_one] == [2, 3, 4]
    assert after_one[0] == event(2)
    assert [e.sequence for e in await store.read_events(r.id, 0, 2)] == [1, 2]


async def test_purge_drops_only_old_events(store: SqlStore) -> None:
    r = await started(store, "a")
    await store.append_events([StoredEvent(r.id, event(n), 100 * n) for n in (1, 2, 3)])
    assert await store.purge_events(250) == 2
    assert [e.sequence for e in await store.read_events(r.id, 0, 10)] == [3]


async def test_shared_store_notifies_listeners_of_events_and_cancels(db_url: str) -> None:
    store = create_store(db_url)
    await store.open()
    other = create_store(db_url)
    await other.open()
    try:
        if not store.shared:
            # A SQLite file has one core: nothing to notify, and asking is harmless.
            await store.listen(lambda channel, payload: None)
            await store.request_cancel("run_x")
            return
        heard: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        await other.listen(lambda channel, payload: heard.put_nowait((channel, payload)))
        await store.create_thread(thread("thr_a"), [])
        r = run("thr_a", "a")
        await store.create_run(r)
        await store.append_events([StoredEvent(r.id, event(1), 1)])
        await store.request_cancel(r.id)
        got = [await asyncio.wait_for(heard.get(), 10) for _ in range(2)]
        assert got == [(EVENTS_CHANNEL, r.id), (CANCEL_CHANNEL, r.id)]
    finally:
        await other.close()
        await store.close()
