"""Transaction functions of `stream_slots`: the event streams each core has open, by project.

A core writes its own rows only, as absolute counts it keeps in memory (so a write that
failed is mended by the next one). Taking a slot reads the other cores' rows and writes the
core's own under the project's lock (`sql_locks`), so two cores cannot both see the last
slot free; without it each would read the other's row before the other's write committed.
"""

from __future__ import annotations

import functools

from sqlalchemy import Connection, Insert, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite

from compat_core.store import schema, sql_locks

_SLOTS = schema.stream_slots

_OTHERS_OPEN = select(func.coalesce(func.sum(_SLOTS.c.open_streams), 0)).where(
    _SLOTS.c.project_id == bindparam("project_id"),
    _SLOTS.c.core_id != bindparam("core_id"),
    _SLOTS.c.expires_at_ms > bindparam("now_ms"),
)
_DELETE = _SLOTS.delete().where(
    _SLOTS.c.project_id == bindparam("project_id"), _SLOTS.c.core_id == bindparam("core_id")
)


@functools.cache
def _write_stmt(dialect_name: str) -> Insert:
    dialect_insert = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
    stmt = dialect_insert(_SLOTS).values(
        project_id=bindparam("project_id"),
        core_id=bindparam("core_id"),
        open_streams=bindparam("open_streams"),
        expires_at_ms=bindparam("expires_at_ms"),
    )
    return stmt.on_conflict_do_update(
        index_elements=[_SLOTS.c.project_id, _SLOTS.c.core_id],
        set_={
            "open_streams": stmt.excluded.open_streams,
            "expires_at_ms": stmt.excluded.expires_at_ms,
        },
    )


def others_open(conn: Connection, project_id: str, core_id: str, now_ms: int) -> int:
    params = {"project_id": project_id, "core_id": core_id, "now_ms": now_ms}
    return int(conn.execute(_OTHERS_OPEN, params).scalar_one())


def take(
    conn: Connection,
    project_id: str,
    core_id: str,
    own: int,
    limit: int,
    now_ms: int,
    expires_at_ms: int,
) -> tuple[bool, int]:
    # Rows the cores rewrite from memory every few seconds: their commit need not wait for
    # the disk, which takes most of the time a stream waits for its slot.
    sql_locks.lock_project(conn, sql_locks.OPEN_STREAMS, project_id, durable=False)
    others = others_open(conn, project_id, core_id, now_ms)
    if others + own >= limit:
        return False, others
    write(conn, project_id, core_id, own + 1, expires_at_ms)
    return True, others


def write(
    conn: Connection, project_id: str, core_id: str, open_streams: int, expires_at_ms: int
) -> None:
    key = {"project_id": project_id, "core_id": core_id}
    if open_streams <= 0:
        conn.execute(_DELETE, key)
        return
    values = {**key, "open_streams": open_streams, "expires_at_ms": expires_at_ms}
    conn.execute(_write_stmt(conn.dialect.name), values)


def release(conn: Connection, core_id: str) -> None:
    conn.execute(_SLOTS.delete().where(_SLOTS.c.core_id == core_id))


def purge(conn: Connection, before_ms: int) -> None:
    conn.execute(_SLOTS.delete().where(_SLOTS.c.expires_at_ms < before_ms))
