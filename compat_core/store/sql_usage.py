"""Transaction functions of the accounting tables: rate windows and daily usage.

Both are counters that several cores add to at once on PostgreSQL: each addition is an
upsert, or an insert that yields to a concurrent one followed by an UPDATE that adds, so no
update is lost and no transaction fails on a row another one created first. A window's take is
on the path of requests (once a batch), so it is a single statement, built once.
"""

from __future__ import annotations

import datetime
import functools

from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    Connection,
    Insert,
    Table,
    and_,
    bindparam,
    case,
    literal,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from compat_core.store import prepared, schema
from compat_core.v1 import runs_pb2

_WINDOWS = schema.rate_windows
_USAGE = schema.usage_daily


def _ensure_row(conn: Connection, table: Table, values: dict[str, object]) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(table).values(values).on_conflict_do_nothing())


# What a take may add: all of `amount` while the cap leaves room for it, what room is left
# otherwise. `used` in the conflict's SET is the stored row's, before the update (every SET
# expression reads the row as it was), so `last_grant` says what this take added.
_NO_CAP = 1 << 62


def _grant(used: ColumnElement[int] | BindParameter[int]) -> ColumnElement[int]:
    room: ColumnElement[int] = bindparam("cap", type_=BigInteger) - used
    amount = bindparam("amount", type_=BigInteger)
    return case((room <= 0, 0), (room < amount, room), else_=amount)


@functools.cache
def _take_stmt(dialect_name: str) -> Insert:
    """One statement a take, prepared once: the window's row made with the first grant, or
    added to under the row's lock (an upsert locks the row it updates on both databases)."""
    dialect_insert = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
    first = _grant(literal(0, BigInteger))
    stmt = dialect_insert(_WINDOWS).values(
        project_id=bindparam("project_id"),
        kind=bindparam("kind"),
        window_start=bindparam("window_start"),
        used=first,
        last_grant=first,
    )
    grant = _grant(_WINDOWS.c.used)
    upsert = stmt.on_conflict_do_update(
        index_elements=[_WINDOWS.c.project_id, _WINDOWS.c.kind, _WINDOWS.c.window_start],
        set_={"last_grant": grant, "used": _WINDOWS.c.used + grant},
    )
    return upsert.returning(_WINDOWS.c.last_grant, _WINDOWS.c.used)


def take_from_window(
    conn: Connection, project_id: str, kind: str, window_start: int, amount: int, cap: int | None
) -> tuple[int, int]:
    params = {
        "project_id": project_id,
        "kind": kind,
        "window_start": window_start,
        "amount": amount,
        "cap": _NO_CAP if cap is None else cap,
    }
    row = prepared.first(conn, _take_stmt(conn.dialect.name), params)
    assert row is not None
    return int(row[0]), int(row[1])


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
