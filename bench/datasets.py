"""Datasets that take minutes to build, built once and kept: SQLite files under `bench/.cache/`,
PostgreSQL databases on the server they were built on.

A dataset is built under a temporary name and given its real name only when it is whole (a
file renamed, a database renamed), so a build that was interrupted is never mistaken for a
dataset: the next run builds it again.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from compat_core.store.database import MIGRATIONS_DIR


def schema_revision() -> str:
    """The Alembic head of the migrations the server will find (part of a cache key)."""
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    head = ScriptDirectory.from_config(config).get_current_head()
    return head or "none"


def seal_sqlite(path: Path) -> None:
    """Fold the WAL into the file, so that the file alone is the whole database."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")
    finally:
        conn.close()


def remove_sqlite(path: Path) -> None:
    """The database file and whatever SQLite keeps beside it."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def postgres_sibling(url: str, database: str) -> str:
    """`url` with another database name, as a URL the server and asyncpg both accept."""
    return (
        make_url(url)
        .set(drivername="postgresql", database=database)
        .render_as_string(hide_password=False)
    )


def postgres_name(url: str) -> str:
    """The database a PostgreSQL URL names (PostgreSQL's default: the user's name)."""
    parsed = make_url(url)
    return parsed.database or parsed.username or "postgres"


async def _admin(url: str) -> Any:
    """A connection to the database `url` names, for statements about other databases."""
    import asyncpg

    return await asyncpg.connect(postgres_sibling(url, postgres_name(url)))


async def postgres_databases(url: str, pattern: str) -> list[str]:
    """The databases on `url`'s server whose names are LIKE `pattern`."""
    conn = await _admin(url)
    try:
        rows = await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE $1", pattern)
    finally:
        await conn.close()
    return sorted(str(row[0]) for row in rows)


async def postgres_drop(url: str, database: str) -> None:
    conn = await _admin(url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}"')
    finally:
        await conn.close()


async def postgres_recreate(url: str, database: str) -> None:
    """Drop `database` if it is there, and create it empty (on the server `url` names)."""
    await postgres_drop(url, database)
    conn = await _admin(url)
    try:
        await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()


async def postgres_rename(url: str, old: str, new: str) -> None:
    conn = await _admin(url)
    try:
        await conn.execute(f'ALTER DATABASE "{old}" RENAME TO "{new}"')
    finally:
        await conn.close()


async def postgres_analyze(url: str) -> None:
    """Update the planner's statistics after a bulk load, as autovacuum would have by the
    time anyone searched: without them it plans for an empty table."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
