"""Hybrid and dense search latency on a store of N chunks that all have vectors, beside bare
queries on the same database.

The dataset is the lexical figures' store (the same synthetic chunks) with a vector of the
bench's model for every chunk (`retrieval_dataset`, `retrieval_vectors`), and the server runs
with that model behind the bench's embeddings upstream (`embedding_model`).

- Hybrid: `POST /v1/vector_stores/{id}/search` with `ranking_options.ranker` `auto`, over HTTP
  at concurrency 1, the retrieval set's queries in turn. Ours includes the round trip to the
  upstream that embeds each query (run while the lexical list is searched), and both lists go
  `retrieval.search.CANDIDATES` (50) deep before they are fused. Baseline: the bare full-text
  query of the lexical figures (`retrieval_latency`, 10 results), on this database.
- Dense: no ranker asks the endpoint for dense search alone, so it is measured one layer
  down: `Store.search_chunks_dense`, the call a hybrid search makes, from the benchmark's
  process on the same database (no HTTP, no gRPC), 10 results, with the query vectors made
  beforehand (the model's time is the upstream's, not the store's). Baseline: the bare
  nearest-neighbour query, on PostgreSQL pgvector's `<#>` ordered by the HNSW index (the
  statement `pg_vectors` sends, with its settings) through asyncpg; on SQLite the matrix
  product over the store's vectors held in memory, which is what the store's cache does
  without the SQL that reads the chunks' text and files around it.

Each pair is measured in turns (`load.alternate`), as the lexical figures are.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt
import orjson

from bench import embedding_model
from bench.config import Context
from bench.load import LoadResult, alternate
from bench.report import Row, mib, ratio
from bench.retrieval_corpus import Corpus
from bench.retrieval_dataset import Dataset
from bench.retrieval_latency import (
    LIMIT,
    SECTION,
    bare_query,
    latency_dataset,
    point_http,
    point_queries,
    summary,
)
from compat_core import tenancy
from compat_core.store import create_store, schema
from compat_core.store.base import Store
from compat_core.store.pg_vectors import EF_SEARCH

DIMENSIONS: Final = embedding_model.DIMENSIONS
POSTGRES_NEAREST: Final = f"""
SELECT chunk_id, embedding::vector({DIMENSIONS}) <#> CAST($1 AS vector({DIMENSIONS})) AS distance
FROM {schema.CHUNK_VECTORS}
WHERE dimensions = {DIMENSIONS} AND vector_store_id = ANY(CAST($2 AS VARCHAR[]))
ORDER BY distance
LIMIT $3
"""
SQLITE_VECTORS: Final = (
    f"SELECT chunk_id, embedding FROM {schema.CHUNK_VECTORS} "
    "WHERE vector_store_id = ? ORDER BY chunk_id"
)
Vectors = dict[str, list[float]]
# What makes `bench.ours` embed through the upstream: its arguments and environment.
Model = tuple[list[str], dict[str, str]]


class Nearest(Protocol):
    """A dense search by query text (its vector made beforehand); how many chunks it found."""

    async def search(self, query: str) -> int: ...

    async def close(self) -> None: ...


class StoreNearest:
    """Ours: the store's dense search, as hybrid search calls it."""

    def __init__(self, store: Store, store_id: str, vectors: Vectors) -> None:
        self._store = store
        self._store_id = store_id
        self._vectors = vectors

    @classmethod
    async def open(cls, dataset: Dataset, vectors: Vectors) -> StoreNearest:
        store = create_store(dataset.url)
        await store.open()
        return cls(store, dataset.store_id, vectors)

    async def search(self, query: str) -> int:
        with tenancy.project(tenancy.DEFAULT_PROJECT):
            found = await self._store.search_chunks_dense(
                [self._store_id], embedding_model.EMBEDDING_MODEL, self._vectors[query], LIMIT
            )
        return len(found)

    async def close(self) -> None:
        await self._store.close()


class MatrixNearest:
    """SQLite's baseline: the store's vectors read once into one matrix; a search is its
    product with the query and a partial sort, on the benchmark's event loop."""

    def __init__(self, url: str, store_id: str, vectors: Vectors) -> None:
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            rows = conn.execute(SQLITE_VECTORS, (store_id,)).fetchall()
        self._ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
        matrix = np.frombuffer(b"".join(row[1] for row in rows), dtype="<f4")
        self._matrix = matrix.reshape(len(rows), DIMENSIONS)
        self._vectors = {query: np.asarray(v, dtype=np.float32) for query, v in vectors.items()}

    async def search(self, query: str) -> int:
        scores: npt.NDArray[np.float32] = self._matrix @ self._vectors[query]
        top = np.argpartition(-scores, LIMIT - 1)[:LIMIT]
        nearest = {int(self._ids[i]): float(scores[i]) for i in top}
        return len(nearest)

    async def close(self) -> None:
        return None


class PostgresNearest:
    """PostgreSQL's baseline: the nearest-neighbour statement alone, on one connection."""

    def __init__(self, conn: Any, store_id: str, vectors: Vectors) -> None:
        self._conn = conn
        self._store_id = store_id
        self._literals = {
            query: "[" + ",".join(format(value, ".9g") for value in vector) + "]"
            for query, vector in vectors.items()
        }

    @classmethod
    async def connect(cls, url: str, store_id: str, vectors: Vectors) -> PostgresNearest:
        import asyncpg

        conn = await asyncpg.connect(url)
        # The store sets these per transaction (`pg_vectors.search`); here, once for the session.
        await conn.execute("SET hnsw.iterative_scan = relaxed_order")
        await conn.execute(f"SET hnsw.ef_search = {EF_SEARCH}")
        return cls(conn, store_id, vectors)

    async def search(self, query: str) -> int:
        rows = await self._conn.fetch(
            POSTGRES_NEAREST, self._literals[query], [self._store_id], LIMIT
        )
        return len(rows)

    async def close(self) -> None:
        await self._conn.close()


async def _bare_nearest(dataset: Dataset, vectors: Vectors) -> Nearest:
    if dataset.url.startswith("sqlite"):
        return MatrixNearest(dataset.url, dataset.store_id, vectors)
    return await PostgresNearest.connect(dataset.url, dataset.store_id, vectors)


async def _hybrid(
    ctx: Context, dataset: Dataset, queries: Sequence[str], model: Model, duration: float
) -> tuple[LoadResult, LoadResult]:
    args, env = model
    body = {"max_num_results": LIMIT, "ranking_options": {"ranker": "auto"}}
    bodies = [orjson.dumps({"query": query, **body}) for query in queries]
    async with ctx.children(f"retrieval-hybrid-{dataset.chunks}") as children:
        ours = await children.spawn(
            "ours",
            ["-m", "bench.ours", "--database-url", dataset.url, *args],
            env=env,
            profile=True,
        )
        url = f"{ours.ready['http']}/v1/vector_stores/{dataset.store_id}/search"
        bare = await bare_query(dataset)
        try:
            return await alternate(
                functools.partial(point_http, ctx, ours.pid, url, bodies, duration),
                functools.partial(point_queries, ctx, bare.search, queries, duration),
                ctx.config.retrieval_rounds,
            )
        finally:
            await bare.close()


async def _dense(
    ctx: Context, dataset: Dataset, queries: Sequence[str], vectors: Vectors, duration: float
) -> tuple[LoadResult, LoadResult]:
    ours = await StoreNearest.open(dataset, vectors)
    try:
        bare = await _bare_nearest(dataset, vectors)
        try:
            return await alternate(
                functools.partial(point_queries, ctx, ours.search, queries, duration),
                functools.partial(point_queries, ctx, bare.search, queries, duration),
                ctx.config.retrieval_rounds,
            )
        finally:
            await bare.close()
    finally:
        await ours.close()


async def _measure(
    ctx: Context,
    dataset: Dataset,
    queries: Sequence[str],
    vectors: Vectors,
    model: Model,
    database: str,
) -> list[Row]:
    duration = ctx.config.retrieval_duration / ctx.config.retrieval_rounds
    built = dataset.provenance + (f", {mib(dataset.size_bytes)}" if dataset.size_bytes else "")
    where = f"{dataset.chunks:,} chunks in one store · {database}"
    hybrid, lexical = await _hybrid(ctx, dataset, queries, model, duration)
    dense, nearest = await _dense(ctx, dataset, queries, vectors, duration)
    bare_nearest = "HNSW `<#>` query" if database == "PostgreSQL" else "matrix product in memory"
    return [
        Row(
            SECTION,
            f"search · hybrid · {where} (dataset with vectors {built}; ranker auto: the query "
            "embedded by the bench's upstream, lexical and dense lists 50 deep, fused)",
            summary(hybrid),
            summary(lexical) + " (bare full-text query)",
            ratio(hybrid.p50_ms, lexical.p50_ms) + " p50",
        ),
        Row(
            SECTION,
            f"search · dense · {where} (`Store.search_chunks_dense` in the bench's process: "
            "no ranker asks the endpoint for dense alone; query vectors made beforehand)",
            summary(dense),
            summary(nearest) + f" (bare nearest neighbours: {bare_nearest})",
            ratio(dense.p50_ms, nearest.p50_ms) + " p50",
        ),
    ]


async def run(ctx: Context, corpus: Corpus) -> list[Row]:
    reason = embedding_model.unavailable()
    if reason is not None:
        return [Row(SECTION, "search · hybrid and dense", reason, "—")]
    queries = [item.query for item in corpus.retrieval_set(ctx.config.retrieval_queries)]
    embedder = embedding_model.WordLlamaEmbedder()
    vectors = dict(zip(queries, await embedder.embed(queries), strict=True))
    database = (
        "PostgreSQL"
        if ctx.database_url is not None and ctx.database_url.startswith("postgresql")
        else "SQLite"
    )
    rows: list[Row] = []
    async with ctx.children("retrieval-embeddings") as children:
        _, args, env = await embedding_model.spawn_upstream(children)
        for size in ctx.config.retrieval_store_chunks:
            dataset = await latency_dataset(ctx, size, corpus, embedder)
            rows += await _measure(ctx, dataset, queries, vectors, (args, env), database)
    return rows
