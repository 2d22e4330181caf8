"""What `SqlStore` needs from a database: somewhere to run one transaction at a time.

The store's operations are synchronous functions of a `sqlalchemy.Connection` that know
nothing of the dialect. How a transaction is opened, on which thread or event loop it runs,
how it is isolated and how migrations are serialised across processes differs per database,
so each database module (`database.py` for SQLite, `postgres.py` for PostgreSQL) provides a
class of this shape and the store depends on nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from sqlalchemy import Connection

T = TypeVar("T")


class TransactionRunner(Protocol):
    """Runs store functions as whole transactions, and owns the schema's migrations."""

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` in one read-write transaction; commit unless it raises (then roll back).

        Once submitted, the transaction runs to its end even if the awaiting task is
        cancelled: the caller cannot know whether it committed, so it must not be cut short
        half-way either.
        """
        ...

    async def read(self, fn: Callable[[Connection], T], *, bounded: bool = False) -> T:
        """Run `fn` in one read-only transaction that sees one consistent snapshot.

        `bounded`: `fn` reads a few rows by key, or one page of a list. A runner may then run
        it at once on the caller's thread, where handing it to another thread would cost more
        than the read itself.
        """
        ...

    def pending(self) -> int:
        """Transactions submitted and not yet taken up (or, where each runs at once, not yet
        done); read by the metrics, from any thread."""
        ...

    async def run_migrations(self) -> None:
        """Bring the schema to the newest revision; safe when several processes start at once."""
        ...

    async def close(self) -> None:
        """Let submitted transactions finish, then release every connection.

        Idempotent; submitting work afterwards raises RuntimeError.
        """
        ...
