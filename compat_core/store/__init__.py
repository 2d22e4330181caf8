"""Persistent state: objects in a SQL database, file bytes in a blob directory."""

from __future__ import annotations

from compat_core.store.base import CursorNotFound, Page, PageQuery, Store
from compat_core.store.blobs import BlobStore, BlobTooLarge
from compat_core.store.database import Database
from compat_core.store.sql_store import SqlStore

__all__ = [
    "BlobStore",
    "BlobTooLarge",
    "CursorNotFound",
    "Database",
    "Page",
    "PageQuery",
    "SqlStore",
    "Store",
    "create_store",
]


def create_store(database_url: str) -> Store:
    """The store for `COMPAT_DATABASE_URL`; call `open()` on it before use."""
    if database_url.startswith("sqlite:"):
        return SqlStore(Database(database_url))
    if database_url.startswith("postgresql"):
        raise ValueError(
            "PostgreSQL support arrives with the scale-out issue; "
            "use COMPAT_DATABASE_URL=sqlite:///PATH for now"
        )
    # Only the scheme: the rest of a URL may hold a password.
    scheme = database_url.partition(":")[0]
    raise ValueError(f"unsupported database URL scheme {scheme!r}: use sqlite:///PATH")
