"""Search latency: `POST /v1/vector_stores/{id}/search` on a store of N chunks, beside the bare
full-text query alone.

Ours: the search endpoint through HTTP at concurrency 1 (OpenAI's defaults: lexical, 10
results), each request the next of the retrieval set's queries (natural-language summaries,
stop words and punctuation included), so every figure is over the same mix of queries.
Baseline: the database work that finds those results, done from the benchmark's process
straight on the same database file or server: the store's own lexical search
(`compat_core.store.sql_chunks.search_lexical`: word counts, then the plan's ranked steps, see
`compat_core.retrieval.lexical_plan`) on a SQLAlchemy connection (sqlite3, or asyncpg), as the
core runs it inside a read. What ours adds on top is the HTTP and gRPC hops, the endpoint's
checks, the 0-1 scores and the store's read queue. (Until the search had a plan, the baseline
was the one OR query the store sent, written out here; the plan's several statements are the
store's code, so the baseline now calls it rather than copying it.) The two are measured in
turns (`load.alternate`).

The synthetic text spreads every word evenly over all chunks (it has no topics), so a query's
words match more chunks than they would in real documents, where words cluster by subject:
the figures lean pessimistic.
"""

from __future__ import annotations

import functools
import itertools
import math
import sqlite3
import statistics
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Protocol

import orjson
import sqlalchemy
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from bench.config import Context
from bench.load import Call, LoadResult, StatusError, alternate, http_session, run_load
from bench.report import Row, mib, ratio
from bench.retrieval_corpus import Corpus
from bench.retrieval_dataset import Dataset, postgres_dataset, sqlite_dataset
from compat_core import tenancy
from compat_core.retrieval import lexical
from compat_core.retrieval.embeddings import Embedder
from compat_core.store import sql_chunks
from compat_core.store.postgres import async_url

SECTION: Final = "7 retrieval"
LIMIT: Final = 10
TARGET_P99_MS: Final = 50.0
TARGET_CHUNKS: Final = 100_000
# Settings that keep the server lexical whatever the benchmark's own environment says.
LEXICAL_ENV: Final = {"COMPAT_EMBEDDING_MODEL": ""}

# The dataset's database holds one store: counting over the whole index counts its chunks.
SQLITE_COUNT: Final = (
    "SELECT count(*) FROM vector_store_chunks_fts WHERE vector_store_chunks_fts MATCH ?"
)

# The query's lexemes OR'ed into a tsquery, each quoted (`lexical.tsquery_any`): how many
# chunks share a word with the query.
_TSQUERY: Final = r"""
(SELECT coalesce(string_agg(
            '''' || replace(replace(lexeme, '\', '\\'), '''', '''''') || '''', ' | '
        ), '')::tsquery AS query
 FROM unnest(tsvector_to_array(to_tsvector('english'::regconfig, $1))) AS lexeme) AS q
"""
POSTGRES_COUNT: Final = (
    f"SELECT count(*) FROM vector_store_chunks AS c, {_TSQUERY} WHERE c.text_search @@ q.query"
)
# Queries whose matches are counted, to say what share of the store a query reads.
COUNTED_QUERIES: Final = 20


class BareQuery(Protocol):
    """The full-text query alone, on the dataset's database."""

    async def search(self, query: str) -> int: ...

    async def matches(self, query: str) -> int:
        """How many chunks share a word with the query (what the ranking reads)."""
        ...

    async def close(self) -> None: ...


class SqliteQuery:
    """On the benchmark's event loop, no thread hop: the search's own time and nothing else."""

    def __init__(self, url: str, store_id: str) -> None:
        self._conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        self._engine = sqlalchemy.create_engine(url, poolclass=NullPool)
        self._search = self._engine.connect()
        self._store_id = store_id

    async def search(self, query: str) -> int:
        with tenancy.project(tenancy.DEFAULT_PROJECT):
            found = sql_chunks.search_lexical(self._search, [self._store_id], query, LIMIT)
        self._search.rollback()
        return len(found)

    async def matches(self, query: str) -> int:
        match = lexical.fts5_match(query)
        if match is None:
            return 0
        return int(self._conn.execute(SQLITE_COUNT, (match,)).fetchone()[0])

    async def close(self) -> None:
        self._search.close()
        self._engine.dispose()
        self._conn.close()


class PostgresQuery:
    def __init__(
        self, conn: Any, engine: AsyncEngine, search: AsyncConnection, store_id: str
    ) -> None:
        self._conn = conn
        self._engine = engine
        self._search = search
        self._store_id = store_id

    @classmethod
    async def connect(cls, url: str, store_id: str) -> PostgresQuery:
        import asyncpg

        engine = create_async_engine(async_url(url), poolclass=NullPool)
        return cls(await asyncpg.connect(url), engine, await engine.connect(), store_id)

    async def search(self, query: str) -> int:
        store_ids = [self._store_id]
        with tenancy.project(tenancy.DEFAULT_PROJECT):
            found = await self._search.run_sync(
                lambda conn: sql_chunks.search_lexical(conn, store_ids, query, LIMIT)
            )
        await self._search.rollback()
        return len(found)

    async def matches(self, query: str) -> int:
        text = lexical.postgres_query_text(query)
        if text is None:
            return 0
        return int(await self._conn.fetchval(POSTGRES_COUNT, text))

    async def close(self) -> None:
        await self._search.close()
        await self._engine.dispose()
        await self._conn.close()


async def bare_query(dataset: Dataset) -> BareQuery:
    if dataset.url.startswith("sqlite"):
        return SqliteQuery(dataset.url, dataset.store_id)
    return await PostgresQuery.connect(dataset.url, dataset.store_id)


async def point_http(
    ctx: Context, pid: int, url: str, bodies: Sequence[bytes], duration: float
) -> LoadResult:
    cycle = itertools.cycle(bodies)

    async with http_session(1) as session:

        def make(_: int) -> Call:
            async def call() -> None:
                body = next(cycle)
                async with session.post(
                    url, data=body, headers={"Content-Type": "application/json"}
                ) as response:
                    payload = await response.read()
                    if response.status != 200:
                        raise StatusError(response.status, payload)

            return call

        return await run_load(
            make, concurrency=1, duration=duration, warmup=ctx.config.load_warmup, cpu_pids=(pid,)
        )


async def point_queries(
    ctx: Context,
    search: Callable[[str], Awaitable[object]],
    queries: Sequence[str],
    duration: float,
) -> LoadResult:
    """`search` called on the queries in turn, at concurrency 1, in the benchmark's process."""
    cycle = itertools.cycle(queries)

    def make(_: int) -> Call:
        async def call() -> None:
            await search(next(cycle))

        return call

    return await run_load(make, concurrency=1, duration=duration, warmup=ctx.config.load_warmup)


async def latency_dataset(
    ctx: Context, size: int, corpus: Corpus, embedder: Embedder | None = None
) -> Dataset:
    """The store of `size` chunks on the run's kind of database (with `embedder`'s vectors)."""
    if ctx.database_url is not None and ctx.database_url.startswith("postgresql"):
        return await postgres_dataset(ctx.database_url, size, corpus, embedder)
    directory = ctx.work_dir / "retrieval-latency"
    directory.mkdir(parents=True, exist_ok=True)
    return await sqlite_dataset(ctx.cache_dir, directory, size, corpus, embedder)


def summary(result: LoadResult) -> str:
    text = f"p50 {result.p50_ms:.2f} · p99 {result.p99_ms:.2f} ms · {result.requests:,} queries"
    if result.errors:
        text += f" · {result.errors} errors ({result.first_error[:80]})"
    return text


async def _measure(
    ctx: Context, dataset: Dataset, queries: Sequence[str], database: str
) -> list[Row]:
    duration = ctx.config.retrieval_duration / ctx.config.retrieval_rounds
    bodies = [orjson.dumps({"query": query, "max_num_results": LIMIT}) for query in queries]
    async with ctx.children(f"retrieval-{dataset.chunks}") as children:
        ours = await children.spawn(
            "ours",
            ["-m", "bench.ours", "--database-url", dataset.url],
            env=LEXICAL_ENV,
            profile=True,
        )
        url = f"{ours.ready['http']}/v1/vector_stores/{dataset.store_id}/search"
        bare = await bare_query(dataset)
        try:
            counted = [await bare.matches(query) for query in queries[:COUNTED_QUERIES]]
            mine, theirs = await alternate(
                functools.partial(point_http, ctx, ours.pid, url, bodies, duration),
                functools.partial(point_queries, ctx, bare.search, queries, duration),
                ctx.config.retrieval_rounds,
            )
        finally:
            await bare.close()
    targeted = dataset.chunks >= TARGET_CHUNKS
    built = dataset.provenance + (f", {mib(dataset.size_bytes)}" if dataset.size_bytes else "")
    share = statistics.median(counted) / dataset.chunks if counted else math.nan
    return [
        Row(
            SECTION,
            f"search · {dataset.chunks:,} chunks in one store · {database} (dataset {built}; "
            f"a query matches {share:.0%} of the chunks, median)",
            summary(mine),
            summary(theirs) + " (bare query)",
            ratio(mine.p50_ms, theirs.p50_ms) + " p50",
            f"p99 < {TARGET_P99_MS:g} ms" if targeted else "—",
            (mine.p99_ms < TARGET_P99_MS and not mine.errors) if targeted else None,
        )
    ]


async def run(ctx: Context, corpus: Corpus) -> list[Row]:
    queries = [item.query for item in corpus.retrieval_set(ctx.config.retrieval_queries)]
    database = (
        "PostgreSQL"
        if ctx.database_url is not None and ctx.database_url.startswith("postgresql")
        else "SQLite"
    )
    rows: list[Row] = []
    for size in ctx.config.retrieval_store_chunks:
        dataset = await latency_dataset(ctx, size, corpus)
        rows += await _measure(ctx, dataset, queries, database)
    return rows
