"""Alembic environment: migrations run only on a connection the caller hands over.

`Database.migrate()` opens the transaction (on SQLite a `BEGIN IMMEDIATE`, which takes the
write lock before the current revision is even read) and passes the connection in
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
            "compat_core migrations run through compat_core.store.database.Database.migrate(), "
            "which passes a connection in config.attributes['connection']"
        )
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


_run()
