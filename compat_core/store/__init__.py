"""Persistent state: objects in a SQL database, file bytes in a blob directory."""

from __future__ import annotations

from compat_core.store.base import CursorNotFound, Page, PageQuery, Store
from compat_core.store.blobs import BlobStore, BlobTooLarge
from compat_core.store.database import Database
from compat_core.store.notify import PostgresListener
from compat_core.store.postgres import PostgresDatabase
from compat_core.store.runner import TransactionRunner
from compat_core.store.sql_store import SqlStore

__all__ = [
    "BlobStore",
    "BlobTooLarge",
    "CursorNotFound",
    "Database",
    "Page",
    "PageQuery",
    "PostgresDatabase",
    "SqlStore",
    "Store",
    "TransactionRunner",
    "create_store",
    "open_database",
]


def open_database(database_url: str) -> TransactionRunner:
    """The database for `COMPAT_DATABASE_URL`: SQLite for `sqlite:///PATH`, PostgreSQL for
    `postgresql://…` or `postgresql+asyncpg://…` (both run on asyncpg).

    Nothing connects yet; raises ValueError for any other scheme.
    """
    if database_url.startswith("sqlite:"):
        return Database(database_url)
    if database_url.startswith("postgresql"):
        return PostgresDatabase(database_url)
    # Only the scheme: the rest of a URL may hold a password.
    scheme = database_url.partition(":")[0]
    raise ValueError(
        f"unsupported database URL scheme {scheme!r}: use sqlite:///PATH or postgresql://…"
    )


def create_store(database_url: str) -> Store:
    """The store for `COMPAT_DATABASE_URL`; call `open()` on it before use.

    On PostgreSQL, which several cores may share, the store also listens for their notices.
    """
    database = open_database(database_url)
    if isinstance(database, PostgresDatabase):
        return SqlStore(database, PostgresListener(database.url))
    return SqlStore(database)
