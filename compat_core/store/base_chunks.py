"""The chunks of vector store files in `Store`, and their lexical search (file_search)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence

from compat_core.retrieval.filters import Filter
from compat_core.store.base_types import ChunkMatch, NewChunk


class Chunks(ABC):
    """Chunks of vector store files (file_search)."""

    @abstractmethod
    async def add_chunks(
        self, vector_store_id: str, file_id: str, chunks: Sequence[NewChunk], created_at: int
    ) -> list[int]:
        """Store a file's chunks for a vector store in one transaction; their IDs in index
        order. A file's chunks are added once: a chunk index already stored for the file in
        that store raises IntegrityError (re-ingesting deletes the file's chunks first)."""

    @abstractmethod
    async def delete_file_chunks(self, vector_store_id: str, file_id: str) -> int:
        """Delete a file's chunks from a vector store; how many there were."""

    @abstractmethod
    async def delete_store_chunks(self, vector_store_id: str) -> int:
        """Delete every chunk of a vector store; how many there were."""

    @abstractmethod
    async def search_chunks_lexical(
        self,
        vector_store_ids: Collection[str],
        query: str,
        limit: int,
        filters: Filter | None = None,
    ) -> list[ChunkMatch]:
        """At most `limit` chunks of those vector stores that share words with `query`, best
        first, of files the stores hold now whose attributes pass `filters`. Any text is a
        valid query: one with no word to search finds nothing."""
