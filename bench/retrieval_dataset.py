"""The vector stores that search latency is measured on: one store of N chunks per database.

Ingesting 100,000 chunks through uploads would take longer than the whole benchmark, and the
point here is search, so the store is written through the core's own Store API, as ingestion
leaves it: the file objects, the store's files marked `completed`, and each file's chunks
cut from synthetic text (`retrieval_text`) by the real chunker (`auto`, 800 tokens overlapping
by 400) and stored with `Store.add_chunks`, the call ingestion makes, so the full-text index
is filled by the same triggers (SQLite) or generated column (PostgreSQL). The files have no
bytes in the blob store: search never reads them.

Each size has a database of its own, holding that store and nothing else, because the
full-text index is one per database (FTS5 table, GIN index), not one per store: a 10,000-chunk
store in a database that also held a 100,000-chunk one would be searched through the bigger
index. SQLite files are cached under `bench/.cache/` (keyed by the schema's Alembic head, this
module's dataset version and the Python version, whose library the words come from) and
copied for each run; on PostgreSQL, each size is a database of its own beside the one
`--database-url` names (`<name>_bench_rag_v<version>_<size>`), built once and found there on
later runs.

With an embedding model, the dataset is the same store with a vector for every chunk
(`retrieval_vectors`), for the dense and hybrid figures: a dataset of its own (SQLite
`retrieval-dense-*.db`, PostgreSQL `<name>_bench_rag_dense_v<version>_<size>`), so that the
lexical figures are measured on a database that holds no vectors, as a deployment without a
model has. Its cache key does not name the model: the benchmark has one (`embedding_model`),
and changing it means bumping `DATASET_VERSION`.
"""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bench.datasets import (
    postgres_analyze,
    postgres_databases,
    postgres_drop,
    postgres_name,
    postgres_recreate,
    postgres_rename,
    postgres_sibling,
    remove_sqlite,
    schema_revision,
    seal_sqlite,
)
from bench.retrieval_corpus import Corpus
from bench.retrieval_text import Babbler
from bench.retrieval_vectors import add_vectors
from compat_core import tenancy
from compat_core.retrieval.chunking import ChunkingStrategy, chunk
from compat_core.retrieval.embeddings import Embedder
from compat_core.store import Store, create_store
from compat_core.store.base import NewChunk
from compat_core.v1 import files_pb2, vector_stores_pb2

# Bump when the rows this module writes change, so that a stale dataset is not reused.
DATASET_VERSION: Final = 2
CREATED_AT: Final = 1767225600
# Characters of synthetic text per file: about 100 chunks each.
FILE_CHARS: Final = 170_000
# File objects and store entries are written this many at a time.
FILE_BATCH: Final = 100
SEED: Final = 20260101


def _fixed_id(prefix: str, name: str) -> str:
    """An ID in OpenAI's shape (24 alphanumerics after the prefix), the same in every build."""
    return prefix + (name + "0" * 24)[:24]


STORE_ID: Final = _fixed_id("vs_", "benchRetrieval")


@dataclass(frozen=True)
class Dataset:
    """A database holding the store: its URL, the store's ID, and how it came to be."""

    url: str
    store_id: str
    chunks: int
    provenance: str
    # The SQLite file's size (0 on PostgreSQL).
    size_bytes: int = 0


def _file_chunks(babbler: Babbler) -> list[NewChunk]:
    pieces = chunk(babbler.text(FILE_CHARS), ChunkingStrategy.auto())
    return [NewChunk(p.index, p.text, p.token_count) for p in pieces]


def _file_object(index: int, chunks: Sequence[NewChunk]) -> files_pb2.File:
    return files_pb2.File(
        id=_fixed_id("file-", f"rag{index:012d}"),
        created_at=CREATED_AT,
        filename=f"document-{index:05d}.txt",
        purpose="assistants",
        status=files_pb2.FILE_STATUS_PROCESSED,
        bytes=sum(len(c.text.encode()) for c in chunks),
    )


def _store_file(
    file: files_pb2.File, chunks: Sequence[NewChunk]
) -> vector_stores_pb2.VectorStoreFile:
    entry = vector_stores_pb2.VectorStoreFile(
        id=file.id,
        created_at=CREATED_AT,
        vector_store_id=STORE_ID,
        status=vector_stores_pb2.VECTOR_STORE_FILE_STATUS_COMPLETED,
        usage_bytes=sum(len(c.text.encode()) for c in chunks),
    )
    entry.chunking_strategy.auto.SetInParent()
    return entry


async def _fill(store: Store, size: int, corpus: Corpus) -> None:
    """`size` chunks in files of about 100 each; the next file is cut while this one is
    written."""
    babbler = Babbler(corpus.word_counts, SEED)
    await store.create_vector_store(
        vector_stores_pb2.VectorStore(
            id=STORE_ID,
            created_at=CREATED_AT,
            last_active_at=CREATED_AT,
            name=f"bench retrieval {size}",
            status=vector_stores_pb2.VECTOR_STORE_STATUS_COMPLETED,
        )
    )
    pending: list[tuple[files_pb2.File, list[NewChunk]]] = []
    remaining = size
    index = 0
    upcoming = asyncio.ensure_future(asyncio.to_thread(_file_chunks, babbler))
    while remaining > 0:
        chunks = (await upcoming)[:remaining]
        remaining -= len(chunks)
        if remaining > 0:
            upcoming = asyncio.ensure_future(asyncio.to_thread(_file_chunks, babbler))
        file = _file_object(index, chunks)
        index += 1
        await store.add_chunks(STORE_ID, file.id, chunks, CREATED_AT)
        pending.append((file, chunks))
        if len(pending) == FILE_BATCH or remaining <= 0:
            await _add_files(store, pending)
            pending = []


async def _add_files(store: Store, files: Sequence[tuple[files_pb2.File, list[NewChunk]]]) -> None:
    for file, _ in files:
        await store.create_file(file)
    added = await store.add_vector_store_files(STORE_ID, [_store_file(f, c) for f, c in files])
    if added is None:
        raise RuntimeError(f"the benchmark's vector store {STORE_ID} vanished while it was built")


async def _build(url: str, size: int, corpus: Corpus, embedder: Embedder | None) -> float:
    """Build into the empty database at `url` (with `embedder`'s vectors, if given); seconds
    it took."""
    started = time.perf_counter()
    store = create_store(url)
    await store.open()
    try:
        # The objects of the clients the bench then searches as: the default project's.
        with tenancy.project(tenancy.DEFAULT_PROJECT):
            await _fill(store, size, corpus)
            if embedder is not None:
                await add_vectors(store, embedder)
    finally:
        await store.close()
    return time.perf_counter() - started


def _kind(embedder: Embedder | None) -> str:
    """What names a dataset's files and databases: with vectors or without."""
    return "retrieval" if embedder is None else "retrieval-dense"


def _sqlite_name(size: int, kind: str) -> str:
    python = platform.python_version()
    return f"{kind}-r{schema_revision()}-v{DATASET_VERSION}-py{python}-{size}.db"


def _building(path: Path) -> Path:
    """A fresh scratch name for building `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    building = path.with_name(f"{path.name}.building-{os.getpid()}")
    remove_sqlite(building)
    return building


def _publish(building: Path, path: Path, size: int, kind: str) -> None:
    """Give the built file its name, and drop this size's datasets of other versions."""
    seal_sqlite(building)
    os.replace(building, path)
    for stale in path.parent.glob(f"{kind}-r*-{size}.db"):
        if stale != path:
            stale.unlink(missing_ok=True)


async def _cached_sqlite(
    cache_dir: Path, size: int, corpus: Corpus, embedder: Embedder | None
) -> tuple[Path, str]:
    kind = _kind(embedder)
    path = cache_dir / _sqlite_name(size, kind)
    if await asyncio.to_thread(path.exists):
        return path, "cached"
    building = await asyncio.to_thread(_building, path)
    seconds = await _build(f"sqlite:///{building}", size, corpus, embedder)
    await asyncio.to_thread(_publish, building, path, size, kind)
    return path, f"built in {seconds:.0f} s"


async def sqlite_dataset(
    cache_dir: Path, work_dir: Path, size: int, corpus: Corpus, embedder: Embedder | None = None
) -> Dataset:
    """A copy of the cached file (the server writes to its database) in `work_dir`; with
    `embedder`, the dataset with its vectors."""
    cached, provenance = await _cached_sqlite(cache_dir, size, corpus, embedder)
    target = work_dir / f"{_kind(embedder)}-{size}.db"
    await asyncio.to_thread(shutil.copyfile, cached, target)
    return Dataset(f"sqlite:///{target}", STORE_ID, size, provenance, cached.stat().st_size)


async def postgres_dataset(
    url: str, size: int, corpus: Corpus, embedder: Embedder | None = None
) -> Dataset:
    """The database of this size beside `url`'s, built now unless it is there; with
    `embedder`, the dataset with its vectors."""
    dense = "" if embedder is None else "dense_"
    prefix = f"{postgres_name(url)}_bench_rag_{dense}v"
    name = f"{prefix}{DATASET_VERSION}_{size}"
    # LIKE's `_` matches any one character: escaped, it matches only itself.
    pattern = f"{prefix}%_{size}".replace("_", "\\_")
    existing = await postgres_databases(url, pattern)
    for stale in existing:
        if stale != name:
            await postgres_drop(url, stale)
    if name in existing:
        return Dataset(postgres_sibling(url, name), STORE_ID, size, f"found in database {name}")
    building = f"{name}_building"
    await postgres_recreate(url, building)
    seconds = await _build(postgres_sibling(url, building), size, corpus, embedder)
    await postgres_analyze(postgres_sibling(url, building))
    await postgres_rename(url, building, name)
    return Dataset(
        postgres_sibling(url, name), STORE_ID, size, f"built in {seconds:.0f} s as {name}"
    )
