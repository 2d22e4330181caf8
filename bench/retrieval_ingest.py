"""Ingest throughput: files uploaded into a vector store until every one is `completed`.

Ours: the official `openai` SDK's own helper, `vector_stores.files.upload_and_poll` (upload
the file, add it to the store, poll until it is processed), for every file at once up to
`UPLOADS_AT_ONCE`, timed from the first upload to the last file done. The SDK polls every
`POLL_MS` (its default, one second, would measure the polling rather than the server); the
core's worker is woken by each add, and ingests `ingestion.BATCH` files side by side.
Baseline: the work itself, in the benchmark's process on one thread: the same files through
`compat_core.retrieval.extract.extract_text` and `chunking.chunk` (`auto`), the two calls
ingestion makes. The ratio says how much of the bare work's throughput is left after the
HTTP uploads, blob writes, the durable queue, the database writes and the index updates.

MB/s counts the files' own bytes (what a client uploads); for PDFs these are fewer than the
bytes of text they hold (fpdf2 compresses page streams). The stores' `usage_bytes` (the bytes
of their chunks) are checked against the baseline's chunks, so both did the same work.
"""

from __future__ import annotations

import asyncio
import io
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from openai import AsyncOpenAI

from bench.config import Context
from bench.procs import Child
from bench.report import Row, ratio
from bench.retrieval_corpus import Corpus
from bench.retrieval_text import Babbler, pdf_of
from compat_core.retrieval.chunking import ChunkingStrategy, chunk
from compat_core.retrieval.extract import extract_text

SECTION: Final = "7 retrieval"
UPLOADS_AT_ONCE: Final = 8
POLL_MS: Final = 20
WAIT_SECONDS: Final = 600.0
SEED: Final = 7


@dataclass(frozen=True)
class Throughput:
    seconds: float
    file_bytes: int
    chunks: int
    chunk_bytes: int

    def summary(self) -> str:
        return f"{self.mb_per_s:,.2f} MB/s · {self.chunks_per_s:,.0f} chunks/s"

    @property
    def mb_per_s(self) -> float:
        return self.file_bytes / 1e6 / self.seconds if self.seconds > 0 else math.nan

    @property
    def chunks_per_s(self) -> float:
        return self.chunks / self.seconds if self.seconds > 0 else math.nan


Files = Sequence[tuple[str, bytes]]


def _in_process(files: Files) -> Throughput:
    started = time.perf_counter()
    chunks = 0
    chunk_bytes = 0
    for name, data in files:
        text = extract_text(name, io.BytesIO(data))
        pieces = chunk(text, ChunkingStrategy.auto())
        chunks += len(pieces)
        chunk_bytes += sum(len(piece.text.encode()) for piece in pieces)
    seconds = time.perf_counter() - started
    return Throughput(seconds, sum(len(data) for _, data in files), chunks, chunk_bytes)


async def _through_server(client: AsyncOpenAI, kind: str, files: Files, chunks: int) -> Throughput:
    store = await client.vector_stores.create(name=f"bench ingest {kind}")
    gate = asyncio.Semaphore(UPLOADS_AT_ONCE)

    async def one(name: str, data: bytes) -> str:
        async with gate:
            done = await client.vector_stores.files.upload_and_poll(
                vector_store_id=store.id, file=(name, data), poll_interval_ms=POLL_MS
            )
        return done.status

    started = time.perf_counter()
    async with asyncio.timeout(WAIT_SECONDS):
        statuses = await asyncio.gather(*(one(name, data) for name, data in files))
    seconds = time.perf_counter() - started
    if any(status != "completed" for status in statuses):
        raise RuntimeError(f"{kind} ingest ended {sorted(set(statuses))}, not all completed")
    finished = await client.vector_stores.retrieve(store.id)
    await client.vector_stores.delete(store.id)
    return Throughput(seconds, sum(len(data) for _, data in files), chunks, finished.usage_bytes)


def _files(ctx: Context, corpus: Corpus) -> tuple[Files, Files]:
    babbler = Babbler(corpus.word_counts, SEED)
    config = ctx.config
    texts = [
        babbler.text(config.retrieval_ingest_chars) for _ in range(config.retrieval_ingest_files)
    ]
    text_files = [(f"document-{i:03d}.txt", text.encode()) for i, text in enumerate(texts)]
    pdf_files = [(f"document-{i:03d}.pdf", pdf_of(text)) for i, text in enumerate(texts)]
    return text_files, pdf_files


def _row(kind: str, files: Files, ours: Throughput, base: Throughput) -> Row:
    count = len(files)
    size = sum(len(data) for _, data in files) / count / 1024
    same = ours.chunk_bytes == base.chunk_bytes
    note = "" if same else f" · **chunks differ: {ours.chunk_bytes:,} vs {base.chunk_bytes:,} B**"
    return Row(
        SECTION,
        f"ingest {kind} · {count} files of {size:,.0f} KiB, {UPLOADS_AT_ONCE} at once "
        f"(upload_and_poll) · {base.chunks:,} chunks",
        ours.summary() + note,
        base.summary() + " (extract + chunk in-process)",
        ratio(ours.mb_per_s, base.mb_per_s) + " MB/s",
    )


async def _warm_up(client: AsyncOpenAI, files: Files) -> None:
    """One file of each kind through the server and in-process, untimed: the first use of the
    tokenizer loads its ranks (about a second), in each process."""
    await asyncio.to_thread(_in_process, files)
    await _through_server(client, "warm-up", files, 0)


async def run(ctx: Context, server: Child, corpus: Corpus) -> list[Row]:
    text_files, pdf_files = await asyncio.to_thread(_files, ctx, corpus)
    client = AsyncOpenAI(base_url=f"{server.ready['http']}/v1", api_key="bench", max_retries=0)
    rows: list[Row] = []
    try:
        await _warm_up(client, [text_files[0], pdf_files[0]])
        for kind, files in (("text", text_files), ("PDF", pdf_files)):
            base = await asyncio.to_thread(_in_process, files)
            ours = await _through_server(client, kind, files, base.chunks)
            rows.append(_row(kind, files, ours, base))
    finally:
        await client.close()
    return rows
