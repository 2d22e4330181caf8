"""The dense vectors of chunks in `Store`, and their re-embedding leases."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence

from compat_core.retrieval.filters import Filter
from compat_core.store.base_types import ChunkMatch, ChunkVectors, StoredChunk


class DenseVectors(ABC):
    """Dense vectors of chunks (file_search with an embedding model)."""

    @abstractmethod
    async def enable_vectors(self) -> None:
        """Make the database hold vectors (PostgreSQL: pgvector's extension and table; raises
        VectorsUnavailable if it cannot), and mark every store with chunks that lack vectors
        for re-embedding. Idempotent; a core calls it at start when a model is configured."""

    @abstractmethod
    async def has_vectors(self, vector_store_ids: Collection[str], model: str) -> bool:
        """Whether any of those stores has vectors of `model`, so a dense search can find
        anything (and embedding the query is worth an upstream call)."""

    @abstractmethod
    async def search_chunks_dense(
        self,
        vector_store_ids: Collection[str],
        model: str,
        vector: Sequence[float],
        limit: int,
        filters: Filter | None = None,
    ) -> list[ChunkMatch]:
        """At most `limit` chunks of those stores nearest `vector` (a unit vector of `model`)
        by cosine similarity, best first, of files the stores hold now whose attributes pass
        `filters`; stores with vectors of another model, or none, contribute nothing."""

    @abstractmethod
    async def claim_reindex(
        self, owner: str, model: str, now_ms: int, expires_at_ms: int
    ) -> str | None:
        """Lease one store whose vectors are not all of `model` (its model changed, or some
        chunks have none) and whose lease ran out; a store of another model has its vectors
        dropped first. Its ID, or None if no store needs work."""

    @abstractmethod
    async def reindex_claimable(self, model: str, now_ms: int) -> bool:
        """Whether `claim_reindex` at `now_ms` would find a store: a read, so that an idle
        core can look for work without a write transaction."""

    @abstractmethod
    async def chunks_without_vectors(self, vector_store_id: str, limit: int) -> list[StoredChunk]:
        """Up to `limit` of the store's chunks that have no vector, oldest first."""

    @abstractmethod
    async def add_chunk_vectors(
        self, owner: str, vector_store_id: str, chunk_ids: Sequence[int], vectors: ChunkVectors
    ) -> bool:
        """Store vectors for chunks of a store `owner` is re-embedding (chunks deleted since
        are skipped); False, writing nothing, if it no longer holds the store's lease or the
        store moved to another model."""

    @abstractmethod
    async def finish_reindex(self, owner: str, vector_store_id: str, model: str) -> None:
        """Release the store's lease, marking it complete if every chunk now has a vector."""

    @abstractmethod
    async def renew_reindex(self, owner: str, expires_at_ms: int) -> None:
        """Extend the leases `owner` holds on stores it re-embeds."""

    @abstractmethod
    async def release_reindex(self, owner: str) -> None:
        """Let any core take `owner`'s re-embedding at once (it is stopping)."""
