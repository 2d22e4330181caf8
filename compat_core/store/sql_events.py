"""The stored event log of runs, for watchers on another core than the one executing a run.

Only written when several cores may share the database (PostgreSQL). The executing core
appends its events in batches; each batch's commit notifies the listening cores (`pg_notify`
is transactional: a listener is woken only once the rows are there to read).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, func, insert, select

from compat_core.store import schema
from compat_core.store.base import StoredEvent
from compat_core.v1 import runs_pb2

# The channel whose payload is the ID of a run with new stored events.
EVENTS_CHANNEL = "compat_run_events"
# The channel whose payload is the ID of a run a client asked to cancel.
CANCEL_CHANNEL = "compat_run_cancel"
# The channel whose payload is the ID of an API key just revoked (see `compat_core.keyring`).
KEYS_CHANNEL = "compat_api_key_revoked"


def notify(conn: Connection, channel: str, payloads: Sequence[str]) -> None:
    """Wake the cores listening on `channel` once this transaction commits (PostgreSQL only)."""
    if conn.dialect.name != "postgresql":
        return
    for payload in dict.fromkeys(payloads):
        conn.execute(select(func.pg_notify(channel, payload)))


def append(conn: Connection, events: Sequence[StoredEvent]) -> None:
    if not events:
        return
    rows = [
        {
            "run_id": stored.run_id,
            "sequence": stored.event.sequence,
            "created_at": stored.created_at,
            "body": stored.event.SerializeToString(),
        }
        for stored in events
    ]
    conn.execute(insert(schema.run_events), rows)
    notify(conn, EVENTS_CHANNEL, [stored.run_id for stored in events])


def read(conn: Connection, run_id: str, after: int, limit: int) -> list[runs_pb2.RunEvent]:
    table = schema.run_events
    stmt = (
        select(table.c.body)
        .where(table.c.run_id == run_id, table.c.sequence > after)
        .order_by(table.c.sequence.asc())
        .limit(limit)
    )
    return [runs_pb2.RunEvent.FromString(body) for body in conn.execute(stmt).scalars()]


def last_sequence(conn: Connection, run_id: str) -> int:
    table = schema.run_events
    stmt = select(func.max(table.c.sequence)).where(table.c.run_id == run_id)
    return int(conn.execute(stmt).scalar_one_or_none() or 0)


def purge(conn: Connection, created_before: int) -> int:
    table = schema.run_events
    return conn.execute(table.delete().where(table.c.created_at < created_before)).rowcount
