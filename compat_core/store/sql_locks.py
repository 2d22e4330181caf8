"""Locks on a project's name rather than on a row, for decisions that read many rows of the
project and insert one (its active runs, its open streams): no row exists to lock that every
such decision would read.

On PostgreSQL a transaction-scoped advisory lock, held until the transaction ends, so that a
decision's insert is committed before the next decision of the same project counts. Its key is
64 bits of a hash of what the lock is for and the project's ID: two projects sharing a key
would only wait for each other. On SQLite the single writer already runs one write transaction
at a time, and nothing is taken.

Taken before any row lock of the transaction, so that it adds no cycle to the store's lock
order (`sql_store`).
"""

from __future__ import annotations

import hashlib

from sqlalchemy import Connection, text

# What a lock is for: part of its key, so that one project's locks for two purposes differ.
ACTIVE_RUNS = "active-runs"
OPEN_STREAMS = "open-streams"

_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
# The same, in a transaction whose commit need not wait for the disk (`set_config(..., true)`
# is `SET LOCAL`): one round trip for both.
_LOCK_NOT_DURABLE = text(
    "SELECT pg_advisory_xact_lock(:key), set_config('synchronous_commit', 'off', true)"
)


def key(purpose: str, project_id: str) -> int:
    """The advisory lock key of `purpose` on a project (a signed 64-bit integer)."""
    digest = hashlib.blake2b(f"{purpose}\0{project_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_project(conn: Connection, purpose: str, project_id: str, *, durable: bool = True) -> None:
    """Hold the project's lock for `purpose` until the transaction ends (waiting for it).

    Not `durable`: the transaction's commit returns before it reaches the disk (PostgreSQL's
    `synchronous_commit = off`); a crash of the database may lose it, never half of it, and
    it is seen by others as soon as it returns. For what the cores rewrite anyway."""
    if conn.dialect.name == "postgresql":
        conn.execute(_LOCK if durable else _LOCK_NOT_DURABLE, {"key": key(purpose, project_id)})
