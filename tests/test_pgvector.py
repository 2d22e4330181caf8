"""pgvector on the PostgreSQL pass's server, which file_search's dense search will keep its
vectors in (`make test` runs `../shared/tools/install-pgvector` first when the server is local).

Skipped on SQLite, and on PostgreSQL when the server does not offer the extension, unless
`COMPAT_TEST_REQUIRE_PGVECTOR` is set (CI sets it through `REQUIRE_POSTGRES`): there a missing
pgvector fails the build instead of hiding behind a skip.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from harness.server import database_url, drop_database, postgres_admin_url
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from compat_core.store.postgres import async_url

pytestmark = pytest.mark.skipif(
    postgres_admin_url() is None, reason="pgvector is PostgreSQL's (the PostgreSQL pass)"
)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = database_url(tmp_path)
    engine = create_async_engine(async_url(url), poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            offered = await conn.scalar(
                text("select count(*) from pg_available_extensions where name = 'vector'")
            )
        if not offered:
            if os.environ.get("COMPAT_TEST_REQUIRE_PGVECTOR"):
                pytest.fail("the PostgreSQL server does not offer pgvector (install-pgvector)")
            pytest.skip("the PostgreSQL server does not offer pgvector")
        yield engine
    finally:
        await engine.dispose()
        drop_database(url)


async def test_vectors_are_stored_and_found_nearest_first(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
        await conn.execute(text("CREATE TABLE chunks (id text PRIMARY KEY, embedding vector(3))"))
        await conn.execute(text("CREATE INDEX ON chunks USING hnsw (embedding vector_ip_ops)"))
        await conn.execute(
            text(
                "INSERT INTO chunks VALUES ('a', '[1,0,0]'), ('b', '[0,1,0]'), ('c', '[0.6,0.8,0]')"
            )
        )
        nearest = await conn.scalars(
            text("SELECT id FROM chunks ORDER BY embedding <#> '[0.8,0.6,0]' LIMIT 3")
        )
        assert list(nearest) == ["c", "a", "b"]
