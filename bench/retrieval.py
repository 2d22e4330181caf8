"""Section 7, retrieval (issue 16): ingest throughput, search latency and search quality.

- Ingest (`retrieval_ingest`): text and PDF files through the SDK's `upload_and_poll`, in
  MB/s and chunks/s, beside the same extraction and chunking in-process.
- Latency (`retrieval_latency`): `POST …/search` on one store of N chunks, p50/p99, beside
  the bare full-text query on the same database (datasets: `retrieval_dataset`); hybrid and
  dense (`retrieval_dense_latency`) on the same store with vectors, beside the bare queries.
- Quality (`retrieval_quality`): recall@5 and MRR@10 of each search mode on a set made from
  the standard library's docstrings (`retrieval_corpus`), beside plain BM25.

Dense and hybrid search use the bench's own offline embedding model (`embedding_model`, a
`dev` extra) behind its own `/v1/embeddings` upstream; without it their rows say n/a.

The database is a fresh SQLite file, or with `--database-url postgresql://…` that server
(the latency datasets then live in databases of their own beside the one named).
"""

from __future__ import annotations

from bench import (
    retrieval_corpus,
    retrieval_dense_latency,
    retrieval_ingest,
    retrieval_latency,
    retrieval_quality,
)
from bench.config import Context
from bench.report import Row
from bench.retrieval_latency import LEXICAL_ENV


async def run(ctx: Context) -> list[Row]:
    corpus = retrieval_corpus.load(ctx.cache_dir)
    rows: list[Row] = []
    async with ctx.children("retrieval-ingest") as children:
        server = await children.spawn(
            "ours",
            ["-m", "bench.ours", "--database-url", ctx.database_for("retrieval")],
            env=LEXICAL_ENV,
            profile=True,
        )
        rows += await retrieval_ingest.run(ctx, server, corpus)
    rows += await retrieval_latency.run(ctx, corpus)
    rows += await retrieval_dense_latency.run(ctx, corpus)
    rows += await retrieval_quality.run(ctx, corpus)
    return rows


async def quality(ctx: Context) -> list[Row]:
    """The quality part alone (`--only retrieval_quality`): minutes, where the whole section
    also builds and searches stores of 100,000 chunks."""
    return await retrieval_quality.run(ctx, retrieval_corpus.load(ctx.cache_dir))
