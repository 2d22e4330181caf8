"""`SqlStore`'s project limits, rate windows and usage (`base_limits`): tables of no tenant,
so their transactions bypass the scope (`ScopedRunner.inner`) and name their project."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, RowMapping, Table, func, select

from compat_core.store import schema, sql_stream_slots, sql_usage
from compat_core.store.base_limits import DailyUsage, LimitsAndUsage, ProjectLimits, StoredBytes
from compat_core.store.sql_store_base import SqlStoreBase

_LIMITS = schema.project_limits
_USAGE = schema.usage_daily
_LIMIT_COLUMNS = (
    "requests_per_minute",
    "tokens_per_minute",
    "concurrent_runs",
    "concurrent_streams",
)


def _limits(row: RowMapping) -> ProjectLimits:
    return ProjectLimits(
        *(None if row[name] is None else int(row[name]) for name in _LIMIT_COLUMNS)
    )


def _set_limits(conn: Connection, project_id: str, limits: ProjectLimits) -> None:
    values = {name: getattr(limits, name) for name in _LIMIT_COLUMNS}
    updated = conn.execute(
        _LIMITS.update().where(_LIMITS.c.project_id == project_id).values(values)
    )
    if updated.rowcount == 0:
        conn.execute(_LIMITS.insert().values(project_id=project_id, **values))


def _sums(
    conn: Connection, table: Table, column: str, project_ids: Sequence[str] | None
) -> dict[str, int]:
    """The sum of `column` by project: one pass over the (project_id, column) index."""
    stmt = select(table.c.project_id, func.sum(table.c[column])).group_by(table.c.project_id)
    if project_ids is not None:
        stmt = stmt.where(table.c.project_id.in_(sorted(set(project_ids))))
    return {project: int(total) for project, total in conn.execute(stmt) if total}


def _storage_by_project(
    conn: Connection, project_ids: Sequence[str] | None
) -> dict[str, StoredBytes]:
    files = _sums(conn, schema.files, "bytes", project_ids)
    vectors = _sums(conn, schema.vector_store_files, "usage_bytes", project_ids)
    return {
        project: StoredBytes(files.get(project, 0), vectors.get(project, 0))
        for project in sorted(files.keys() | vectors.keys())
    }


def _usage_by_day(conn: Connection, project_id: str, first: str, last: str) -> list[DailyUsage]:
    stmt = (
        select(_USAGE)
        .where(_USAGE.c.project_id == project_id, _USAGE.c.day >= first, _USAGE.c.day <= last)
        .order_by(_USAGE.c.day, _USAGE.c.model)
    )
    return [
        DailyUsage(row.day, row.model, int(row.input_tokens), int(row.output_tokens), int(row.runs))
        for row in conn.execute(stmt)
    ]


class SqlLimitsAndUsage(SqlStoreBase, LimitsAndUsage):
    """The limits and usage part of `SqlStore`."""

    async def set_project_limits(self, project_id: str, limits: ProjectLimits) -> None:
        await self._db.inner.write(lambda conn: _set_limits(conn, project_id, limits))

    async def get_project_limits(self, project_id: str) -> ProjectLimits | None:
        def get(conn: Connection) -> ProjectLimits | None:
            row = conn.execute(select(_LIMITS).where(_LIMITS.c.project_id == project_id)).first()
            return None if row is None else _limits(row._mapping)

        return await self._db.inner.read(get, bounded=True)

    async def all_project_limits(self) -> dict[str, ProjectLimits]:
        def every(conn: Connection) -> dict[str, ProjectLimits]:
            return {row.project_id: _limits(row._mapping) for row in conn.execute(select(_LIMITS))}

        return await self._db.inner.read(every)

    async def take_from_window(
        self, project_id: str, kind: str, window_start: int, amount: int, cap: int | None
    ) -> tuple[int, int]:
        return await self._db.inner.write(
            lambda conn: sql_usage.take_from_window(
                conn, project_id, kind, window_start, amount, cap
            )
        )

    async def window_used(self, project_id: str, kind: str, window_start: int) -> int:
        return await self._db.inner.read(
            lambda conn: sql_usage.window_used(conn, project_id, kind, window_start), bounded=True
        )

    async def purge_windows(self, before: int) -> None:
        await self._db.inner.write(lambda conn: sql_usage.purge_windows(conn, before))

    async def take_stream_slot(
        self,
        project_id: str,
        core_id: str,
        own: int,
        limit: int,
        now_ms: int,
        expires_at_ms: int,
    ) -> tuple[bool, int]:
        return await self._db.inner.write(
            lambda conn: sql_stream_slots.take(
                conn, project_id, core_id, own, limit, now_ms, expires_at_ms
            )
        )

    async def set_stream_slot(
        self, project_id: str, core_id: str, open_streams: int, expires_at_ms: int
    ) -> None:
        await self._db.inner.write(
            lambda conn: sql_stream_slots.write(
                conn, project_id, core_id, open_streams, expires_at_ms
            )
        )

    async def release_stream_slots(self, core_id: str) -> None:
        await self._db.inner.write(lambda conn: sql_stream_slots.release(conn, core_id))

    async def purge_stream_slots(self, before_ms: int) -> None:
        await self._db.inner.write(lambda conn: sql_stream_slots.purge(conn, before_ms))

    async def usage_by_day(
        self, project_id: str, first_day: str, last_day: str
    ) -> list[DailyUsage]:
        return await self._db.inner.read(
            lambda conn: _usage_by_day(conn, project_id, first_day, last_day)
        )

    async def storage_by_project(
        self, project_ids: Sequence[str] | None = None
    ) -> dict[str, StoredBytes]:
        if project_ids is not None and not project_ids:
            return {}
        return await self._db.inner.read(lambda conn: _storage_by_project(conn, project_ids))
