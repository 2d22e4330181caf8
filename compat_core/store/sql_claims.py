"""Which core executes which run: leases in `run_leases`, as synchronous store functions.

A lease row exists exactly while its run is queued, in progress or cancelling (`sync_lease`
is called by every write of a run). A core holds a run while the row names it and its lease
has not run out; it renews all of its leases in one statement, and any core may claim rows
whose lease ran out (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so that cores claiming at the
same moment take different rows instead of queuing on the same ones; SQLite's single writer
serialises claims anyway). Writes of an executing run name their holder (`check_holder`), so
a core that lost its lease (paused past its expiry, cut off from the database) cannot write
over what the new holder writes.

Locks are taken thread first, lease second (see `sql_store`); the lease-only statements here
lock no thread.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Connection, Select, bindparam, insert, select

from compat_core.store import prepared, schema
from compat_core.store.base import EXECUTING_RUN_STATUSES, Lease, LeaseLost, LeaseRenewal
from compat_core.v1 import runs_pb2

# The statements of every write of an executing run, built once (see `prepared`).
_LEASE_OWNER = (
    select(schema.run_leases.c.owner)
    .where(schema.run_leases.c.run_id == bindparam("p_run_id"))
    .with_for_update()
)
_INSERT_LEASE = insert(schema.run_leases)
_DELETE_LEASE = schema.run_leases.delete().where(
    schema.run_leases.c.run_id == bindparam("p_run_id")
)
# Every few hundred milliseconds on every core, over all of its runs: joined rather than
# matched against a list of IDs, whose SQL would be built anew for each length.
_RENEW = (
    schema.run_leases.update()
    .where(schema.run_leases.c.owner == bindparam("p_owner"))
    .values(expires_at_ms=bindparam("p_expires_at_ms"))
    .returning(schema.run_leases.c.run_id)
)
_HELD_CANCELLING = (
    select(schema.run_leases.c.run_id)
    .join(schema.runs, schema.runs.c.id == schema.run_leases.c.run_id)
    .where(
        schema.run_leases.c.owner == bindparam("p_owner"),
        schema.runs.c.status == runs_pb2.RUN_STATUS_CANCELLING,
    )
)


def sync_lease(conn: Connection, run: runs_pb2.Run, lease: Lease | None) -> None:
    """Give an executing run a lease row (`lease`'s, else unowned) and take it from others.

    An existing row is left alone: whoever holds it keeps it.
    """
    if run.status not in EXECUTING_RUN_STATUSES:
        prepared.execute(conn, _DELETE_LEASE, {"p_run_id": run.id})
        return
    if prepared.first(conn, _LEASE_OWNER, {"p_run_id": run.id}) is not None:
        return
    prepared.insert(
        conn,
        _INSERT_LEASE,
        [
            {
                "run_id": run.id,
                "owner": lease.owner if lease else "",
                "expires_at_ms": lease.expires_at_ms if lease else 0,
            }
        ],
    )


def check_holder(conn: Connection, run_id: str, owner: str) -> None:
    """Raise LeaseLost unless `owner` holds the run's lease (locked until the transaction ends)."""
    if prepared.scalar(conn, _LEASE_OWNER, {"p_run_id": run_id}) != owner:
        raise LeaseLost(run_id)


def claim(
    conn: Connection, owner: str, expired_before_ms: int, expires_at_ms: int, limit: int
) -> list[runs_pb2.Run]:
    """Take up to `limit` runs whose lease ran out, oldest expiry first; their current state."""
    table, runs = schema.run_leases, schema.runs
    stmt = (
        select(table.c.run_id)
        .where(table.c.expires_at_ms < expired_before_ms)
        .order_by(table.c.expires_at_ms.asc())
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    run_ids = list(conn.execute(stmt).scalars())
    if not run_ids:
        return []
    conn.execute(
        table.update()
        .where(table.c.run_id.in_(run_ids))
        .values(owner=owner, expires_at_ms=expires_at_ms)
    )
    bodies = conn.execute(
        select(runs.c.body).where(runs.c.id.in_(run_ids)).order_by(runs.c.seq.asc())
    ).scalars()
    return [runs_pb2.Run.FromString(body) for body in bodies]


def renew(conn: Connection, owner: str, expires_at_ms: int) -> LeaseRenewal:
    """Extend every lease `owner` still holds; which runs those are, and which to cancel."""
    params = {"p_owner": owner, "p_expires_at_ms": expires_at_ms}
    held = frozenset(str(run_id) for run_id in prepared.scalars(conn, _RENEW, params))
    cancelling: frozenset[str] = frozenset()
    if held:
        found = prepared.scalars(conn, _HELD_CANCELLING, {"p_owner": owner})
        cancelling = frozenset(str(run_id) for run_id in found)
    return LeaseRenewal(held=held, cancelling=cancelling)


def release(conn: Connection, owner: str, run_ids: Collection[str] | None = None) -> None:
    """Let any core claim `owner`'s runs (all of them, or those of `run_ids`) at once."""
    table = schema.run_leases
    conditions = [table.c.owner == owner]
    if run_ids is not None:
        conditions.append(table.c.run_id.in_(sorted(run_ids)))
    conn.execute(table.update().where(*conditions).values(owner="", expires_at_ms=0))


def delete_for_runs(conn: Connection, run_ids: Select[tuple[str]]) -> None:
    """Drop the leases and stored events of the runs `run_ids` selects (before deleting them)."""
    leases, events = schema.run_leases, schema.run_events
    conn.execute(leases.delete().where(leases.c.run_id.in_(run_ids)))
    conn.execute(events.delete().where(events.c.run_id.in_(run_ids)))
