"""Vectors on PostgreSQL: pgvector's table, its HNSW indexes and the nearest-neighbour search.

None of this is a migration: `CREATE EXTENSION vector` needs pgvector installed on the server
and a superuser (pgvector is not a trusted extension), and a deployment with lexical search
alone needs neither, so its database must migrate without them. A core configured with an
embedding model runs `enable` at start instead, idempotent and under the migrations' advisory
lock, so that cores starting together create each object once.

One table holds the vectors of every model, in an untyped `vector` column beside their
`dimensions`, because pgvector indexes only a column of one fixed dimension: each dimension
in use gets a partial HNSW index on the expression `embedding::vector(N)` restricted to
`dimensions = N` (`ensure_index`), and the search orders by that same expression, which is
what lets the planner use it. Past 2,000 dimensions (HNSW's limit for `vector`) the index and
the search cast to `halfvec` instead, indexable up to 4,000; beyond that the search is exact.

Vectors are unit length (`compat_core.retrieval.embeddings`), so the inner product is the
cosine and `<#>` (negative inner product), pgvector's cheapest operator, ranks them.
Vectors travel as pgvector's text form (`[0.1,0.2,…]`): asyncpg sends a parameter of a type
it has no codec for as text, and pgvector's binary codec would need registering on every
connection, which fails on a database without the extension.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from sqlalchemy import Connection, TextClause, text
from sqlalchemy.exc import DBAPIError

from compat_core.store import schema
from compat_core.store.base import VectorsUnavailable
from compat_core.store.postgres import MIGRATION_LOCK_KEY

_TABLE: Final = schema.CHUNK_VECTORS
MAX_VECTOR_INDEX_DIMENSIONS: Final = 2000
MAX_HALFVEC_INDEX_DIMENSIONS: Final = 4000
# HNSW visits this many candidates per search (pgvector's default is 40): enough for the
# deepest candidate list a hybrid search asks for (`ranking.MAX_RESULTS`) with room to spare.
EF_SEARCH: Final = 100
INSTALL_HINT: Final = (
    "install pgvector on the PostgreSQL server (its package, such as postgresql-16-pgvector, "
    "or from source) and run CREATE EXTENSION vector in the database as a superuser"
)

_CREATE = (
    f"CREATE TABLE IF NOT EXISTS {_TABLE} ("
    "chunk_id BIGINT PRIMARY KEY REFERENCES vector_store_chunks (id) ON DELETE CASCADE, "
    "vector_store_id VARCHAR(64) NOT NULL, "
    "dimensions INTEGER NOT NULL, "
    "embedding vector NOT NULL)",
    f"CREATE INDEX IF NOT EXISTS ix_{_TABLE}_vector_store_id ON {_TABLE} (vector_store_id)",
)


def _lock(conn: Connection) -> None:
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})


def enable(conn: Connection) -> None:
    """The extension (if the database lacks it), the table and its store index."""
    _lock(conn)
    installed = conn.execute(
        text("SELECT count(*) FROM pg_extension WHERE extname = 'vector'")
    ).scalar()
    if not installed:
        offered = conn.execute(
            text("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'")
        ).scalar()
        if not offered:
            raise VectorsUnavailable(
                f"the PostgreSQL server does not have the pgvector extension: {INSTALL_HINT}"
            )
        try:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
        except DBAPIError as exc:
            reason = str(exc.orig).strip().splitlines()[-1] if exc.orig else str(exc)
            raise VectorsUnavailable(
                f"pgvector is not enabled in this database and this user cannot enable it "
                f"({reason}): {INSTALL_HINT}"
            ) from None
    for statement in _CREATE:
        conn.execute(text(statement))


def _cast(dimensions: int) -> tuple[str, str] | None:
    """The type the index and search cast vectors of this length to, and its operator class;
    None past what any pgvector index takes."""
    if dimensions <= MAX_VECTOR_INDEX_DIMENSIONS:
        return f"vector({dimensions})", "vector_ip_ops"
    if dimensions <= MAX_HALFVEC_INDEX_DIMENSIONS:
        return f"halfvec({dimensions})", "halfvec_ip_ops"
    return None


def _dimensions(value: int) -> int:
    """`value` checked as a dimension before it is written into SQL (DDL takes no parameters)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"not a vector dimension: {value!r}")
    return value


def ensure_index(conn: Connection, dimensions: int) -> None:
    """The HNSW index for vectors of this length, if an index can hold them.

    Run as a transaction of its own before the first write of such vectors, never inside
    one: `CREATE INDEX` waits for every transaction writing the table, and one of those may
    be waiting for this one's advisory lock."""
    cast = _cast(_dimensions(dimensions))
    if cast is None:
        return
    type_, ops = cast
    _lock(conn)
    conn.execute(
        text(
            f"CREATE INDEX IF NOT EXISTS ix_{_TABLE}_hnsw_{dimensions} ON {_TABLE} "
            f"USING hnsw ((embedding::{type_}) {ops}) WHERE dimensions = {dimensions}"
        )
    )


def _literal(vector: Sequence[float]) -> str:
    return "[" + ",".join(format(float(value), ".9g") for value in vector) + "]"


def insert(
    conn: Connection,
    vector_store_id: str,
    chunk_ids: Sequence[int],
    vectors: Sequence[Sequence[float]],
) -> None:
    rows = [
        {
            "chunk_id": chunk_id,
            "vector_store_id": vector_store_id,
            "dimensions": len(vector),
            "embedding": _literal(vector),
        }
        for chunk_id, vector in zip(chunk_ids, vectors, strict=True)
    ]
    conn.execute(
        text(
            f"INSERT INTO {_TABLE} (chunk_id, vector_store_id, dimensions, embedding) "
            "VALUES (:chunk_id, :vector_store_id, :dimensions, CAST(:embedding AS vector))"
        ),
        rows,
    )


def search_statement(dimensions: int) -> TextClause:
    """The nearest-neighbour query for vectors of this length (parameters `query`, `stores`,
    `limit`): it orders by the indexed expression, so HNSW serves it. `relaxed_order` may return
    neighbours slightly out of order; the caller ranks them by score again."""
    dimensions = _dimensions(dimensions)
    type_ = (_cast(dimensions) or (f"vector({dimensions})", ""))[0]
    nearest = (
        f"SELECT chunk_id, embedding::{type_} <#> CAST(:query AS {type_}) AS distance "
        f"FROM {_TABLE} WHERE dimensions = {dimensions} "
        "AND vector_store_id = ANY(CAST(:stores AS VARCHAR[])) "
        "ORDER BY distance LIMIT :limit"
    )
    return text(nearest)


def search(
    conn: Connection, vector_store_ids: Sequence[str], vector: Sequence[float], limit: int
) -> dict[int, float]:
    """The cosine similarity to `vector` of the nearest chunks of those stores (whose vectors
    all have `vector`'s length), by chunk ID."""
    # Iterative scans (pgvector 0.8): with one index for all stores, a search of one store
    # goes on through the graph until it has `limit` of that store's chunks, rather than
    # filtering the first `ef_search` and returning fewer than asked.
    conn.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
    conn.execute(text(f"SET LOCAL hnsw.ef_search = {EF_SEARCH}"))
    params = {"query": _literal(vector), "stores": list(vector_store_ids), "limit": limit}
    # `<#>` is the negative inner product: the cosine of unit vectors, negated.
    return {
        int(chunk_id): -float(distance)
        for chunk_id, distance in conn.execute(search_statement(len(vector)), params)
    }
