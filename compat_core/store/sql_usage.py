"""Transaction functions of the accounting tables: rate windows and daily usage.

Both are counters that several cores add to at once on PostgreSQL, so each addition makes
sure its row exists (an insert that yields to a concurrent one), then locks it and adds: no
lost update, and no transaction fails on a row another one created first. SQLite's single
writer needs none of this, and `with_for_update` renders nothing there.
"""

from __future__ import annotations

import datetime

from sqlalchemy import Connection, Table, and_, select
from sqlalchemy.dialects import postgresql, sqlite

from compat_core.store import schema
from compat_core.v1 import runs_pb2

_WINDOWS = schema.rate_windows
_USAGE = schema.usage_daily


def _ensure_row(conn: Connection, table: Table, values: dict[str, object]) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(table).values(values).on_conflict_do_nothing())


def take_from_window(
    conn: Connection, project_id: str, kind: str, window_start: int, amount: int, cap: int | None
) -> tuple[int, int]:
    key = and_(
        _WINDOWS.c.project_id == project_id,
        _WINDOWS.c.kind == kind,
        _WINDOWS.c.window_start == window_start,
    )
    values = {"project_id": project_id, "kind": kind, "window_start": window_start, "used": 0}
    _ensure_row(conn, _WINDOWS, values)
    used = int(conn.execute(select(_WINDOWS.c.used).where(key).with_for_update()).scalar_one())
    granted = amount if cap is None else max(0, min(amount, cap - used))
    if granted:
        conn.execute(_WINDOWS.update().where(key).values(used=used + granted))
    return granted, used + granted


def window_used(conn: Connection, project_id: str, kind: str, window_start: int) -> int:
    stmt = select(_WINDOWS.c.used).where(
        _WINDOWS.c.project_id == project_id,
        _WINDOWS.c.kind == kind,
        _WINDOWS.c.window_start == window_start,
    )
    found = conn.execute(stmt).scalar()
    return 0 if found is None else int(found)


def purge_windows(conn: Connection, before: int) -> None:
    conn.execute(_WINDOWS.delete().where(_WINDOWS.c.window_start < before))


def day_of(unix_seconds: int) -> str:
    """The UTC day usage is counted on."""
    return datetime.datetime.fromtimestamp(unix_seconds, datetime.UTC).strftime("%Y-%m-%d")


def record_run_end(conn: Connection, project_id: str, run: runs_pb2.Run, now: int) -> None:
    """Add a run that just reached a final status to its project's usage of the day (an
    UPDATE that adds locks the row it adds to: concurrent ends add up)."""
    day = day_of(now)
    key = and_(_USAGE.c.project_id == project_id, _USAGE.c.day == day, _USAGE.c.model == run.model)
    _ensure_row(
        conn,
        _USAGE,
        {
            "project_id": project_id,
            "day": day,
            "model": run.model,
            "input_tokens": 0,
            "output_tokens": 0,
            "runs": 0,
        },
    )
    conn.execute(
        _USAGE.update()
        .where(key)
        .values(
            input_tokens=_USAGE.c.input_tokens + run.usage.prompt_tokens,
            output_tokens=_USAGE.c.output_tokens + run.usage.completion_tokens,
            runs=_USAGE.c.runs + 1,
        )
    )
