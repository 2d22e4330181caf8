"""`SqlStore`'s projects and API keys (`base_projects`): tables of no tenant, so their
transactions bypass the scope (`ScopedRunner.inner`); the projects of objects are looked up
across projects."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection, Row, bindparam, literal, select, tuple_

from compat_core.store import schema, sql_events
from compat_core.store.base_projects import ApiKey, Project, Projects
from compat_core.store.sql_store_base import SqlStoreBase

_PROJECTS = schema.projects
_KEYS = schema.api_keys


def _project(row: Row[Any]) -> Project:
    return Project(row.id, row.name, int(row.created_at), row.archived_at)


def _key(row: Row[Any]) -> ApiKey:
    return ApiKey(
        row.id, row.project_id, row.name, row.redacted_value, int(row.created_at), row.last_used_at
    )


def _key_by_hash(conn: Connection, key_hash: str) -> ApiKey | None:
    stmt = (
        select(*(_KEYS.c[name] for name in _KEY_COLUMNS))
        .join(_PROJECTS, _PROJECTS.c.id == _KEYS.c.project_id)
        .where(_KEYS.c.key_hash == key_hash, _PROJECTS.c.archived_at.is_(None))
    )
    row = conn.execute(stmt).first()
    return None if row is None else _key(row)


_KEY_COLUMNS = ("id", "project_id", "name", "redacted_value", "created_at", "last_used_at")


def _mark_used(conn: Connection, used: Mapping[str, int]) -> None:
    stmt = (
        _KEYS.update().where(_KEYS.c.id == bindparam("key_id")).values(last_used_at=bindparam("at"))
    )
    conn.execute(stmt, [{"key_id": key_id, "at": at} for key_id, at in sorted(used.items())])


def _project_of(conn: Connection, table_name: str, object_id: str) -> str | None:
    table = schema.metadata.tables[table_name]
    found = conn.execute(select(table.c.project_id).where(table.c.id == object_id)).scalar()
    return None if found is None else str(found)


class SqlProjects(SqlStoreBase, Projects):
    """The projects part of `SqlStore`."""

    async def create_project(self, project: Project) -> None:
        values = {
            "id": project.id,
            "name": project.name,
            "created_at": project.created_at,
            "archived_at": project.archived_at,
        }
        await self._db.inner.write(lambda conn: conn.execute(_PROJECTS.insert().values(values)))

    async def get_project(self, project_id: str) -> Project | None:
        def get(conn: Connection) -> Project | None:
            row = conn.execute(select(_PROJECTS).where(_PROJECTS.c.id == project_id)).first()
            return None if row is None else _project(row)

        return await self._db.inner.read(get, bounded=True)

    async def projects_named(self, name: str) -> list[Project]:
        def named(conn: Connection) -> list[Project]:
            stmt = select(_PROJECTS).where(_PROJECTS.c.name == name)
            stmt = stmt.order_by(_PROJECTS.c.created_at, _PROJECTS.c.id)
            return [_project(row) for row in conn.execute(stmt)]

        return await self._db.inner.read(named, bounded=True)

    async def list_projects(
        self, after: Project | None, limit: int, include_archived: bool
    ) -> list[Project]:
        def listed(conn: Connection) -> list[Project]:
            stmt = select(_PROJECTS)
            if after is not None:
                stmt = stmt.where(
                    tuple_(_PROJECTS.c.created_at, _PROJECTS.c.id)
                    > tuple_(literal(after.created_at), literal(after.id))
                )
            if not include_archived:
                stmt = stmt.where(_PROJECTS.c.archived_at.is_(None))
            stmt = stmt.order_by(_PROJECTS.c.created_at, _PROJECTS.c.id).limit(limit)
            return [_project(row) for row in conn.execute(stmt)]

        return await self._db.inner.read(listed, bounded=True)

    async def rename_project(self, project_id: str, name: str) -> Project | None:
        def rename(conn: Connection) -> Project | None:
            where = _PROJECTS.c.id == project_id
            conn.execute(_PROJECTS.update().where(where).values(name=name))
            row = conn.execute(select(_PROJECTS).where(where)).first()
            return None if row is None else _project(row)

        return await self._db.inner.write(rename)

    async def archive_project(self, project_id: str, archived_at: int) -> list[str] | None:
        def archive(conn: Connection) -> list[str] | None:
            where = _PROJECTS.c.id == project_id
            found = conn.execute(select(_PROJECTS.c.id).where(where)).first()
            if found is None:
                return None
            conn.execute(
                _PROJECTS.update()
                .where(where, _PROJECTS.c.archived_at.is_(None))
                .values(archived_at=archived_at)
            )
            keys = select(_KEYS.c.id).where(_KEYS.c.project_id == project_id)
            key_ids = [str(key_id) for key_id in conn.execute(keys).scalars()]
            sql_events.notify(conn, sql_events.KEYS_CHANNEL, key_ids)
            return key_ids

        return await self._db.inner.write(archive)

    async def create_api_key(self, key: ApiKey, key_hash: str) -> None:
        values = {
            "id": key.id,
            "project_id": key.project_id,
            "name": key.name,
            "key_hash": key_hash,
            "redacted_value": key.redacted_value,
            "created_at": key.created_at,
            "last_used_at": key.last_used_at,
        }
        await self._db.inner.write(lambda conn: conn.execute(_KEYS.insert().values(values)))

    async def api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        return await self._db.inner.read(lambda conn: _key_by_hash(conn, key_hash), bounded=True)

    async def any_api_keys(self) -> bool:
        def any_keys(conn: Connection) -> bool:
            return conn.execute(select(_KEYS.c.id).limit(1)).first() is not None

        return await self._db.inner.read(any_keys, bounded=True)

    async def list_api_keys(self, project_id: str) -> list[ApiKey]:
        def listed(conn: Connection) -> list[ApiKey]:
            stmt = (
                select(*(_KEYS.c[name] for name in _KEY_COLUMNS))
                .where(_KEYS.c.project_id == project_id)
                .order_by(_KEYS.c.created_at, _KEYS.c.id)
            )
            return [_key(row) for row in conn.execute(stmt)]

        return await self._db.inner.read(listed, bounded=True)

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        def get(conn: Connection) -> ApiKey | None:
            stmt = select(*(_KEYS.c[name] for name in _KEY_COLUMNS)).where(_KEYS.c.id == key_id)
            row = conn.execute(stmt).first()
            return None if row is None else _key(row)

        return await self._db.inner.read(get, bounded=True)

    async def delete_api_key(self, key_id: str) -> bool:
        def delete(conn: Connection) -> bool:
            deleted = conn.execute(_KEYS.delete().where(_KEYS.c.id == key_id)).rowcount > 0
            if deleted:
                sql_events.notify(conn, sql_events.KEYS_CHANNEL, [key_id])
            return deleted

        return await self._db.inner.write(delete)

    def on_key_revoked(self, watcher: Callable[[str], None]) -> None:
        self._revocation_watchers.append(watcher)

    async def mark_api_keys_used(self, used: Mapping[str, int]) -> None:
        if used:
            await self._db.inner.write(lambda conn: _mark_used(conn, used))

    async def project_of_run(self, run_id: str) -> str | None:
        return await self._db.read_across(
            lambda conn: _project_of(conn, schema.runs.name, run_id), bounded=True
        )

    async def project_of_vector_store(self, vector_store_id: str) -> str | None:
        return await self._db.read_across(
            lambda conn: _project_of(conn, schema.vector_stores.name, vector_store_id),
            bounded=True,
        )
