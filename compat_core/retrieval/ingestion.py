"""The background worker that turns a vector store's `in_progress` files into chunks.

Work is durable: the files table is the queue. The worker claims files whose lease is free
or ran out (a core that stopped or died mid-ingest leaves them so), renews its leases while
it works, and ends each file `completed` or `failed` in one transaction that replaces any
chunks an earlier attempt stored, so a retried file is never indexed twice. It is woken at
once when a file is added on this core, and polls (a read, until there is work to claim) for
files left over or added elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Final

from compat_core import tenancy
from compat_core.retrieval.chunking import ChunkingStrategy, chunk
from compat_core.retrieval.embeddings import Embedder, EmbeddingError
from compat_core.retrieval.extract import ExtractionError, extract_text
from compat_core.retrieval.leased_worker import LeasedWorker, now_ms
from compat_core.store import BlobStore
from compat_core.store.base import ChunkVectors, NewChunk, Store
from compat_core.v1 import common_pb2, vector_stores_pb2

log = logging.getLogger(__name__)

VectorStoreFile = vector_stores_pb2.VectorStoreFile
# Files ingested side by side by one core; parsing runs on threads.
BATCH: Final = 4


class Ingestion(LeasedWorker):
    """Owned by a core: `start` with it, `stop` before its store closes."""

    task_name = "vector-store-ingestion"
    work = "vector store ingestion"

    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        owner: str,
        lease_seconds: float,
        embedder: Embedder | None = None,
    ) -> None:
        super().__init__(owner, lease_seconds)
        self._store = store
        self._blobs = blobs
        # With an embedding model, a file's chunks are stored with their vectors, or not at all.
        self._embedder = embedder

    async def _round(self) -> bool:
        """Claim and ingest one batch; whether there was any.

        Claiming is a write, so a read asks first whether there is anything to claim: the
        idle poll, every second for good, must not queue on SQLite's one writer (nor take a
        PostgreSQL write transaction) to find nothing.
        """
        moment = now_ms()
        if not await self._store.vector_store_files_claimable(moment):
            return False
        files = await self._store.claim_vector_store_files(
            self._owner, moment, moment + self._lease_ms, BATCH
        )
        if not files:
            return False
        async with self._renewing():
            await asyncio.gather(*(self._ingest(f) for f in files))
        return True

    async def _renew(self, until_ms: int) -> None:
        await self._store.renew_vector_store_files(self._owner, until_ms)

    async def _release(self) -> None:
        await self._store.release_vector_store_files(self._owner)

    async def _ingest(self, file: VectorStoreFile) -> None:
        project = await self._store.project_of_vector_store(file.vector_store_id)
        if project is None:
            return  # the store is gone: its files went with it
        with tenancy.project(project):
            await self._ingest_in_project(file)

    async def _ingest_in_project(self, file: VectorStoreFile) -> None:
        outcome = VectorStoreFile(id=file.id, vector_store_id=file.vector_store_id)
        chunks: list[NewChunk] = []
        vectors: ChunkVectors | None = None
        try:
            made = await self._chunks(file)
            embedded = await self._embed(made)
        except ExtractionError as exc:
            _fail(outcome, exc.code, exc.message)
        except EmbeddingError as exc:
            # A file's `last_error.code` is one of OpenAI's three: whatever the upstream said
            # (a rate limit, a refused request), for the file it is the server's failure.
            log.warning("embedding %s for %s failed: %s", file.id, file.vector_store_id, exc)
            _fail(outcome, "server_error", f"The file's chunks could not be embedded: {exc}")
        except Exception:
            log.exception("ingesting %s into %s failed", file.id, file.vector_store_id)
            _fail(outcome, "server_error", "The file could not be processed.")
        else:
            chunks, vectors = made, embedded
            outcome.status = vector_stores_pb2.VECTOR_STORE_FILE_STATUS_COMPLETED
            outcome.usage_bytes = sum(len(c.text.encode()) for c in chunks)
        # False: the file left the store meanwhile (or another core took it over); the end
        # is quiet then, as there is nobody left to tell.
        await self._store.finish_vector_store_file(
            self._owner, outcome, chunks, int(time.time()), vectors
        )

    async def _embed(self, chunks: list[NewChunk]) -> ChunkVectors | None:
        if self._embedder is None or not chunks:
            return None
        vectors = await self._embedder.embed([c.text for c in chunks])
        return ChunkVectors(self._embedder.name, vectors)

    async def _chunks(self, file: VectorStoreFile) -> list[NewChunk]:
        upload = await self._store.get_file(file.id)
        if upload is None:
            raise ExtractionError("invalid_file", "The file was deleted before it was processed.")
        async with self._blobs.open(file.id) as source:
            text = await asyncio.to_thread(extract_text, upload.filename, source)
        strategy = _strategy(file.chunking_strategy)
        pieces = await asyncio.to_thread(chunk, text, strategy)
        return [NewChunk(p.index, p.text, p.token_count) for p in pieces]


def _strategy(given: common_pb2.ChunkingStrategy) -> ChunkingStrategy:
    """The stored strategy, which was checked when the file was added."""
    if given.WhichOneof("kind") == "static":
        return ChunkingStrategy.static(
            given.static.max_chunk_size_tokens, given.static.chunk_overlap_tokens
        )
    return ChunkingStrategy.auto()


def _fail(outcome: VectorStoreFile, code: str, message: str) -> None:
    outcome.status = vector_stores_pb2.VECTOR_STORE_FILE_STATUS_FAILED
    outcome.last_error.code = code
    outcome.last_error.message = message
