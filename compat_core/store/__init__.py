"""Persistent state: objects in a SQL database, file bytes in a blob directory."""

from __future__ import annotations

from compat_core.store.base import CursorNotFound, Page, PageQuery, Store
from compat_core.store.blobs import BlobStore, BlobTooLarge
from compat_core.store.database import Database
from compat_core.store.lock import DatabaseInUse
from compat_core.store.notify import PostgresListener
from compat_core.store.postgres import PostgresDatabase
from compat_core.store.runner import TransactionRunner
from compat_core.store.sql_store import SqlStore

__all__ = [
    "BlobStore",
    "BlobTooLarge",
    "CursorNotFound",
    "Database",
    "DatabaseInUse",
    "Page",
    "PageQuery",
    "PostgresDatabase",
    "SqlStore",
    "Store",
    "TransactionRunner",
    "create_store",
    "open_database",
]


def open_database(database_url: str, *, exclusive: bool = False) -> TransactionRunner:
    """The database for `COMPAT_DATABASE_URL`: SQLite for `sqlite:///PATH`, PostgreSQL for
    `postgresql://…` or `postgresql+asyncpg://…` (both run on asyncpg).

    Nothing connects yet; raises ValueError for any other scheme. `exclusive` (a server's
    own database): a SQLite file is claimed for this process until closed, DatabaseInUse if
    another server holds it; PostgreSQL is shared by design and ignores it.
    """
    if database_url.startswith("sqlite:"):
        return Database(database_url, exclusive=exclusive)
    if database_url.startswith("postgresql"):
        return PostgresDatabase(database_url)
    # Only the scheme: the rest of a URL may hold a password.
    scheme = database_url.partition(":")[0]
    raise ValueError(
        f"unsupported database URL scheme {scheme!r}: use sqlite:///PATH or postgresql://…"
    )


def create_store(database_url: str, *, exclusive: bool = False) -> Store:
    """The store for `COMPAT_DATABASE_URL`; call `open()` on it before use.

    On PostgreSQL, which several cores may share, the store also listens for their notices.
    `exclusive`: as for `open_database`.
    """
    database = open_database(database_url, exclusive=exclusive)
    if isinstance(database, PostgresDatabase):
        return SqlStore(database, PostgresListener(database.url))
    return SqlStore(database)
