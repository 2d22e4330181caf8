"""Alembic environment: migrations run only on a connection the caller hands over.

`Database.migrate()` (SQLite) and `PostgresDatabase.migrate()` open the transaction, take
their database's cross-process lock in it before the current revision is even read (SQLite's
`BEGIN IMMEDIATE` write lock; a PostgreSQL advisory lock), and pass the connection in
`config.attributes["connection"]`; Alembic then runs inside that transaction and leaves commit
to the caller. That is what makes concurrent starts safe: the second process waits for the
first to commit and then finds nothing left to do. There is no URL and no offline mode here on
purpose, so a migration can never run outside that lock.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from compat_core.store.schema import metadata


def _run() -> None:
    connection = context.config.attributes.get("connection")
    if context.is_offline_mode() or not isinstance(connection, Connection):
        raise RuntimeError(
            "compat_core migrations run through Database.migrate() or "
            "PostgresDatabase.migrate() (compat_core.store), which pass a connection in "
            "config.attributes['connection']"
        )
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


_run()
