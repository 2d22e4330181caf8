"""Fixtures of the store tests: a fresh database (SQLite file or PostgreSQL) and a store on it.

Registered as a plugin by `conftest.py`, so every store test module shares one definition.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from harness.server import database_url, drop_database

from compat_core.store import SqlStore, TransactionRunner, open_database


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    # A directory that does not exist yet: Database must create it.
    return tmp_path / "data" / "compat.db"


@pytest.fixture
def db_url(db_path: Path) -> Iterator[str]:
    """A fresh database: the SQLite file `db_path`, or a PostgreSQL database of its own."""
    url = database_url(db_path.parent)
    yield url
    drop_database(url)


# Async fixtures run in the test's own event loop: a PostgreSQL connection belongs to the loop
# that opened it.


@pytest_asyncio.fixture(loop_scope="function")
async def db(db_url: str) -> AsyncIterator[TransactionRunner]:
    database = open_database(db_url)
    yield database
    await database.close()


@pytest_asyncio.fixture(loop_scope="function")
async def store(db: TransactionRunner) -> AsyncIterator[SqlStore]:
    sql_store = SqlStore(db)
    await sql_store.open()
    yield sql_store
    await sql_store.close()
