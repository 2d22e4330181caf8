"""Retrieval quality: recall@5 and MRR@10 of each search mode, beside plain BM25.

The set (`retrieval_corpus`): each query is a standard-library docstring's summary and its
one relevant document is the rest of that docstring. Every document is uploaded as a `.txt`
file into one vector store through the API (the SDK's upload, then add to the store; the
server chunks it as any file), and every query is sent to `POST /v1/vector_stores/{id}/search`
asking for 10 results. A query scores by the rank of the first result from its document's
file: recall@5 counts the queries whose file is among the first five, MRR@10 averages 1/rank
(0 past ten).

The set is split in two halves by a hash of each query's ID (`Item.half`): the search's
parameters (hybrid fusion's constants, `compat_core/retrieval/ranking.py`) were chosen on the
`dev` half only, and the `test` half is held out; each mode has a row for each half and one
for the whole set, and the issue's target is judged on the test half and the whole set.

Baseline, in the same run: Okapi BM25 (`bench.bm25`) over the very chunks the server stores
(the same chunker on the same text), a file ranked by its best chunk.

Search modes are the entries of `MODES`, all measured on one server and one ingest of the set.
With the bench's embedding model (`embedding_model`: wordllama behind the bench's own
`/v1/embeddings` upstream, so the server embeds every chunk as it ingests, through the wire
protocol), `ranking_options.ranker` `none` asks for lexical search and `auto` for hybrid. No
ranker asks the endpoint for dense search alone, so the dense row is the store's dense search,
`Store.search_chunks_dense` (the list hybrid search fuses with the lexical one), called from
the benchmark's process on the server's database, with each query embedded by the same model
in this process and 10 chunks asked for, as the endpoint asks. Without wordllama installed the
server runs with no model (lexical whatever the environment says) and dense and hybrid are
"n/a".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
from openai import AsyncOpenAI

from bench import embedding_model
from bench.api import bounded_gather, request_json
from bench.bm25 import Bm25
from bench.config import Context
from bench.procs import Children
from bench.report import Row, ratio
from bench.retrieval_corpus import HALVES, Corpus, Item
from bench.retrieval_latency import LEXICAL_ENV
from compat_core import tenancy
from compat_core.retrieval.chunking import ChunkingStrategy, chunk
from compat_core.store import create_store

SECTION: Final = "7 retrieval"
RECALL_AT: Final = 5
RESULTS: Final = 10
AT_ONCE: Final = 8
WAIT_SECONDS: Final = 900.0
POLL_SECONDS: Final = 0.1
Json = dict[str, Any]


@dataclass(frozen=True)
class Mode:
    """One way of searching, as one entry of the table.

    `request`: the fields of the search request (beside `query` and `max_num_results`) that
    ask for this mode; None for dense search, which no ranker asks the endpoint for (measured
    through the store, see the module doc).
    `needs_embedding_model`: the server must run with the bench's embedding model.
    `beats`: the modes whose recall@5 this one must exceed (the issue's target).
    """

    name: str
    request: Json | None
    needs_embedding_model: bool = False
    beats: tuple[str, ...] = ()

    def unavailable(self) -> str | None:
        """Why this mode cannot be measured here, or None."""
        return embedding_model.unavailable() if self.needs_embedding_model else None

    @property
    def how(self) -> str:
        """How the mode is asked for, for the table."""
        if self.request is None:
            return "the store's dense search, `Store.search_chunks_dense`"
        return f"ranker {self.request['ranking_options']['ranker']}"

    @property
    def target(self) -> str:
        return f"recall@{RECALL_AT} above {' and '.join(self.beats)}" if self.beats else "—"


MODES: Final = (
    Mode("lexical", {"ranking_options": {"ranker": "none"}}),
    Mode("dense", None, needs_embedding_model=True),
    Mode(
        "hybrid",
        {"ranking_options": {"ranker": "auto"}},
        needs_embedding_model=True,
        beats=("lexical", "dense"),
    ),
)


WHOLE: Final = "all"
"""The row of a mode over the whole set, beside its `HALVES` rows."""


@dataclass(frozen=True)
class Scores:
    recall: float
    mrr: float
    seconds: float = 0.0

    def summary(self) -> str:
        return f"recall@{RECALL_AT} {self.recall:.3f} · MRR@{RESULTS} {self.mrr:.3f}"


@dataclass(frozen=True)
class Ranks:
    """One mode's answer to every query: the 1-based rank of the query's document (None: not
    in the results), in the set's order, and the seconds all the searches took."""

    ranks: Sequence[int | None]
    seconds: float

    def scores(self, items: Sequence[Item], half: str) -> Scores:
        """Over the queries of one half (`HALVES`), or of the whole set (`WHOLE`)."""
        chosen = [
            rank for rank, item in zip(self.ranks, items, strict=True) if half in (WHOLE, item.half)
        ]
        count = len(chosen) or 1
        recall = sum(1 for rank in chosen if rank is not None and rank <= RECALL_AT) / count
        mrr = sum(1.0 / rank for rank in chosen if rank is not None and rank <= RESULTS) / count
        return Scores(recall, mrr, self.seconds)


def _rank(ranked_files: Sequence[str], wanted: str) -> int | None:
    """1-based rank of `wanted` among the distinct files, in order of first appearance."""
    distinct = list(dict.fromkeys(ranked_files))
    return distinct.index(wanted) + 1 if wanted in distinct else None


def bm25_ranks(items: Sequence[Item]) -> Ranks:
    """BM25 over the chunks the server stores for these documents, in this process."""
    started = time.perf_counter()
    owners: list[int] = []
    texts: list[str] = []
    for index, item in enumerate(items):
        for piece in chunk(item.document, ChunkingStrategy.auto()):
            owners.append(index)
            texts.append(piece.text)
    bm25 = Bm25(texts)
    ranks: list[int | None] = []
    for wanted, item in enumerate(items):
        # Every matching chunk: a document's several chunks must not crowd out the others.
        hits = bm25.search(item.query, len(texts))
        ranked = [str(owners[chunk_index]) for chunk_index, _ in hits]
        ranks.append(_rank(ranked, str(wanted)))
    return Ranks(ranks, time.perf_counter() - started)


async def _ingest(base_url: str, items: Sequence[Item]) -> tuple[str, list[str]]:
    """A vector store holding every document as a file of its own; (store, file IDs)."""
    client = AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
    try:
        store = await client.vector_stores.create(name="bench retrieval quality")

        async def upload(index: int) -> str:
            name = f"doc-{index:05d}.txt"
            data = items[index].document.encode()
            uploaded = await client.files.create(file=(name, data), purpose="assistants")
            await client.vector_stores.files.create(vector_store_id=store.id, file_id=uploaded.id)
            return uploaded.id

        file_ids = await bounded_gather(len(items), upload, AT_ONCE)
        async with asyncio.timeout(WAIT_SECONDS):
            while True:
                current = await client.vector_stores.retrieve(store.id)
                if current.file_counts.in_progress == 0:
                    break
                await asyncio.sleep(POLL_SECONDS)
        if current.file_counts.completed != len(items):
            raise RuntimeError(f"quality set ingest ended with {current.file_counts}")
        return store.id, file_ids
    finally:
        await client.close()


async def _search_ranks(
    base_url: str, store_id: str, file_ids: Sequence[str], items: Sequence[Item], request: Json
) -> Ranks:
    """Through the endpoint, the mode `request` asks for."""
    url = f"{base_url}/vector_stores/{store_id}/search"
    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:

        async def rank(index: int) -> int | None:
            body = {"query": items[index].query, "max_num_results": RESULTS, **request}
            page = await request_json(session, "POST", url, body)
            found = [str(result["file_id"]) for result in page["data"]]
            return _rank(found, file_ids[index])

        ranks = await bounded_gather(len(items), rank, AT_ONCE)
    return Ranks(ranks, time.perf_counter() - started)


async def _dense_ranks(
    database_url: str, store_id: str, file_ids: Sequence[str], items: Sequence[Item]
) -> Ranks:
    """Through the store: its dense search on the server's database, queries embedded here."""
    started = time.perf_counter()
    embedder = embedding_model.WordLlamaEmbedder()
    vectors = await embedder.embed([item.query for item in items])
    store = create_store(database_url)
    await store.open()
    try:

        async def rank(index: int) -> int | None:
            nearest = await store.search_chunks_dense(
                [store_id], embedder.name, vectors[index], RESULTS
            )
            return _rank([match.file_id for match in nearest], file_ids[index])

        # The store was filled through the API with no key: the default project's.
        with tenancy.project(tenancy.DEFAULT_PROJECT):
            ranks = await bounded_gather(len(items), rank, AT_ONCE)
    finally:
        await store.close()
    return Ranks(ranks, time.perf_counter() - started)


async def _measure(
    ctx: Context, children: Children, modes: Sequence[Mode], items: Sequence[Item]
) -> tuple[float, dict[str, Ranks]]:
    """Seconds the ingest of the set took, and each mode's ranks, on one server (with the
    bench's embedding model when a mode needs one, else without any)."""
    database_url = ctx.database_for("retrieval")
    args = ["-m", "bench.ours", "--database-url", database_url]
    env = LEXICAL_ENV
    if any(mode.needs_embedding_model for mode in modes):
        _, provider, env = await embedding_model.spawn_upstream(children)
        args += provider
    server = await children.spawn("ours", args, env=env)
    base_url = f"{server.ready['http']}/v1"
    started = time.perf_counter()
    store_id, file_ids = await _ingest(base_url, items)
    ingest_seconds = time.perf_counter() - started
    ranks: dict[str, Ranks] = {}
    for mode in modes:
        ranks[mode.name] = await (
            _dense_ranks(database_url, store_id, file_ids, items)
            if mode.request is None
            else _search_ranks(base_url, store_id, file_ids, items, mode.request)
        )
    client = AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
    try:
        await client.vector_stores.delete(store_id)
    finally:
        await client.close()
    return ingest_seconds, ranks


def _met(mode: Mode, measured: dict[str, Scores]) -> bool | None:
    if not mode.beats or any(name not in measured for name in (mode.name, *mode.beats)):
        return None
    return all(measured[mode.name].recall > measured[name].recall for name in mode.beats)


def _half_label(half: str, items: Sequence[Item]) -> str:
    count = sum(1 for item in items if half in (WHOLE, item.half))
    if half == WHOLE:
        return f"whole set, {count:,} queries"
    role = "parameters chosen here" if half == "dev" else "held out"
    return f"{half} half, {count:,} queries ({role})"


async def run(ctx: Context, corpus: Corpus) -> list[Row]:
    items = corpus.retrieval_set(ctx.config.retrieval_queries)
    baseline = await asyncio.to_thread(bm25_ranks, items)
    runnable = [mode for mode in MODES if mode.unavailable() is None]
    async with ctx.children("retrieval-quality") as children:
        ingested, measured = await _measure(ctx, children, runnable, items)
    rows: list[Row] = []
    for half in (*HALVES, WHOLE):
        bm25 = baseline.scores(items, half)
        scores = {name: ranks.scores(items, half) for name, ranks in measured.items()}
        judged = half != "dev"
        for mode in MODES:
            label = f"quality · {mode.name} ({mode.how}) · {_half_label(half, items)}"
            target = mode.target if judged else "—"
            reason = mode.unavailable()
            if reason is not None:
                rows.append(Row(SECTION, label, reason, bm25.summary() + " (BM25)", target=target))
                continue
            found = scores[mode.name]
            timing = f" (set ingested in {ingested:.0f} s, searched in {found.seconds:.0f} s)"
            rows.append(
                Row(
                    SECTION,
                    label + (timing if half == WHOLE else ""),
                    found.summary(),
                    bm25.summary() + " (BM25)",
                    ratio(found.recall, bm25.recall) + " recall",
                    target,
                    _met(mode, scores) if judged else None,
                )
            )
    rows.append(
        Row(
            SECTION,
            "quality set",
            f"{len(items):,} of {len(corpus.items):,} items from the {corpus.source}: "
            "query = a summary line, document = the rest of its docstring; "
            "halves by a hash of the query's ID",
            "—",
        )
    )
    return rows
