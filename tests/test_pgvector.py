"""pgvector on the PostgreSQL pass's server, which file_search's dense search keeps its vectors
in (`make test` runs `../shared/tools/install-pgvector` first when the server is local), and a
PostgreSQL server that runs without it as long as no embedding model is configured.

Skipped on SQLite, and on PostgreSQL when the server does not offer the extension, unless
`COMPAT_TEST_REQUIRE_PGVECTOR` is set (CI sets it through `REQUIRE_POSTGRES`): there a missing
pgvector fails the build instead of hiding behind a skip.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from harness import MakeClient
from harness.server import ServerThread, database_url, drop_database, postgres_admin_url
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from compat_core.config import ConfigError, ProviderConfig
from compat_core.store import PostgresDatabase, SqlStore, pg_vectors
from compat_core.store.base import NewChunk
from compat_core.store.migrate import MIGRATIONS_DIR
from compat_core.store.postgres import async_url
from compat_core.v1 import vector_stores_pb2

# The newest migration: a server without a model migrates all the way, pgvector or not.
HEAD = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
EXTENSIONS = "SELECT count(*) FROM pg_extension WHERE extname = 'vector'"
VECTOR_TABLE = "SELECT to_regclass('vector_store_chunk_vectors')"

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


async def test_the_dense_search_uses_the_hnsw_index_of_its_dimension(engine: AsyncEngine) -> None:
    database = PostgresDatabase(engine.url)
    store = SqlStore(database)
    await store.open()
    try:
        await store.enable_vectors()
        await store.create_vector_store(vector_stores_pb2.VectorStore(id="vs_1", created_at=1))
        ids = await store.add_chunks("vs_1", "file-1", [NewChunk(0, "a", 1)], 1)

        def explain(conn: Connection) -> str:
            pg_vectors.ensure_index(conn, 3)
            pg_vectors.insert(conn, "vs_1", ids, [[1.0, 0.0, 0.0]])
            # A table this small is cheaper to scan: forbid that to see that the index serves.
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            conn.execute(text("SET LOCAL enable_bitmapscan = off"))
            statement = pg_vectors.search_statement(3)
            plan = conn.execute(
                text(f"EXPLAIN {statement.text}"),
                {"query": "[1,0,0]", "stores": ["vs_1"], "limit": 5},
            )
            return "\n".join(str(row[0]) for row in plan)

        plan = await database.write(explain)
        assert "ix_vector_store_chunk_vectors_hnsw_3" in plan
    finally:
        await store.close()


# Without an embedding model a PostgreSQL server needs no pgvector: the role below may not
# create extensions (pgvector is not a trusted one), as on a managed server without it.


@pytest.fixture
async def unprivileged_url(tmp_path: Path) -> AsyncIterator[str]:
    """A fresh database owned by a role that cannot create the vector extension."""
    admin = postgres_admin_url()
    assert admin is not None
    name = f"t_{uuid.uuid4().hex}"
    engine = create_async_engine(async_url(admin), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f"CREATE ROLE {name} LOGIN"))
            await conn.execute(text(f"CREATE DATABASE {name} OWNER {name} TEMPLATE template0"))
        yield (
            make_url(admin)
            .set(username=name, password=None, database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        async with engine.connect() as conn:
            await conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            await conn.execute(text(f"DROP ROLE IF EXISTS {name}"))
        await engine.dispose()


async def _as_admin(url: str, query: str) -> object:
    admin = postgres_admin_url()
    assert admin is not None
    database = make_url(url).database
    engine = create_async_engine(
        async_url(make_url(admin).set(database=database)), poolclass=NullPool
    )
    try:
        async with engine.connect() as conn:
            return await conn.scalar(text(query))
    finally:
        await engine.dispose()


async def test_without_a_model_a_server_never_touches_pgvector(
    unprivileged_url: str, tmp_path: Path, make_client: MakeClient
) -> None:
    server = ServerThread(database_url=unprivileged_url, files_dir=str(tmp_path / "files"))
    await asyncio.to_thread(server.start)
    try:
        client = make_client(server)

        def search() -> list[str]:
            store_id = client.vector_stores.create().id
            done = client.vector_stores.files.upload_and_poll(
                vector_store_id=store_id, file=("sam.md", b"Sam bakes bread."), poll_interval_ms=50
            )
            assert done.status == "completed"
            return [r.filename for r in client.vector_stores.search(store_id, query="bread")]

        assert await asyncio.to_thread(search) == ["sam.md"]
    finally:
        await asyncio.to_thread(server.stop)
    assert (
        await _as_admin(
            unprivileged_url, "SELECT count(*) FROM pg_extension WHERE extname = 'vector'"
        )
        == 0
    )
    assert await _as_admin(unprivileged_url, VECTOR_TABLE) is None
    assert await _as_admin(unprivileged_url, "SELECT version_num FROM alembic_version") == HEAD


async def test_a_model_without_pgvector_stops_the_start_naming_the_fix(
    unprivileged_url: str, tmp_path: Path
) -> None:
    providers = {"emb": ProviderConfig(name="emb", base_url="http://127.0.0.1:9/v1")}
    server = ServerThread(
        database_url=unprivileged_url,
        files_dir=str(tmp_path / "files"),
        embedding_model="emb/alpha-64",
        extra_providers=providers,
    )
    with pytest.raises(ConfigError) as raised:
        await asyncio.to_thread(server.start)
    message = str(raised.value)
    assert message.startswith("COMPAT_EMBEDDING_MODEL='emb/alpha-64': dense search cannot start")
    assert "CREATE EXTENSION vector" in message
    assert "unset COMPAT_EMBEDDING_MODEL" in message
    assert (
        await _as_admin(
            unprivileged_url, "SELECT count(*) FROM pg_extension WHERE extname = 'vector'"
        )
        == 0
    )
