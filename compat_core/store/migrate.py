"""Running the Alembic migrations on a connection that a database module has prepared.

Both databases run the same revisions (`migrations/versions/`) through this function; what
differs is how each makes it safe for several processes to start at once, which the caller
arranges before handing the connection over (see `Database.migrate` and
`PostgresDatabase.migrate`).
"""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")

# Alembic installs the running migration's `context` and `op` as module-level proxies, so two
# migrations at once in one process would trample each other. Across processes each database
# serialises them with a lock of its own; within one process, every caller holds this lock.
ALEMBIC_LOCK = threading.Lock()


def alembic_config(conn: Connection) -> Config:
    """An in-memory Alembic configuration that runs on `conn` (see `migrations/env.py`)."""
    config = Config()
    # Config values go through ConfigParser interpolation: a literal % must be doubled.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = conn
    return config


def upgrade_to_head(conn: Connection) -> None:
    """Apply every pending revision inside the transaction open on `conn`.

    The caller holds `ALEMBIC_LOCK` and has already taken its database's cross-process lock
    in that transaction, so Alembic reads the current revision only once no other migration
    can be half-way through.
    """
    command.upgrade(alembic_config(conn), "head")
