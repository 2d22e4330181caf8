"""The files of vector stores in `Store`, and their ingestion leases."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

from compat_core.store.base_types import ChunkVectors, NewChunk, Page, PageQuery
from compat_core.v1 import vector_stores_pb2


class VectorStoreFiles(ABC):
    """Files of vector stores and their ingestion leases (see `sql_vector_files`)."""

    @abstractmethod
    async def add_vector_store_files(
        self, vector_store_id: str, files: Sequence[vector_stores_pb2.VectorStoreFile]
    ) -> list[vector_stores_pb2.VectorStoreFile] | None:
        """Add the files the store does not hold yet (in one transaction, recounting the
        store); each file as stored, so one it held already is returned unchanged. None if
        there is no such store."""

    @abstractmethod
    async def get_vector_store_file(
        self, vector_store_id: str, file_id: str
    ) -> vector_stores_pb2.VectorStoreFile | None:
        """The file of the store, or None if the store does not hold it."""

    @abstractmethod
    async def list_vector_store_files(
        self, vector_store_id: str, query: PageQuery, status: int
    ) -> Page[vector_stores_pb2.VectorStoreFile]:
        """A page of the store's files (only those with `status`, unless it is 0). Raises
        CursorNotFound for an unknown cursor."""

    @abstractmethod
    async def update_vector_store_file(
        self,
        vector_store_id: str,
        file_id: str,
        mutate: Callable[[vector_stores_pb2.VectorStoreFile], None],
    ) -> vector_stores_pb2.VectorStoreFile | None:
        """As `update_assistant`; `mutate` must leave status and usage alone."""

    @abstractmethod
    async def delete_vector_store_file(self, vector_store_id: str, file_id: str) -> bool:
        """Remove the file and its chunks from the store; False if it did not hold it."""

    @abstractmethod
    async def claim_vector_store_files(
        self, owner: str, now_ms: int, expires_at_ms: int, limit: int
    ) -> list[vector_stores_pb2.VectorStoreFile]:
        """Lease up to `limit` in_progress files whose lease ran out to `owner`."""

    @abstractmethod
    async def vector_store_files_claimable(self, now_ms: int) -> bool:
        """Whether `claim_vector_store_files` at `now_ms` would find a file: a read, so that
        an idle core can look for work without a write transaction."""

    @abstractmethod
    async def renew_vector_store_files(self, owner: str, expires_at_ms: int) -> None:
        """Extend every ingestion lease `owner` holds."""

    @abstractmethod
    async def release_vector_store_files(self, owner: str) -> None:
        """Let any core claim the files `owner` was ingesting at once."""

    @abstractmethod
    async def finish_vector_store_file(
        self,
        owner: str,
        outcome: vector_stores_pb2.VectorStoreFile,
        chunks: Sequence[NewChunk],
        created_at: int,
        vectors: ChunkVectors | None = None,
    ) -> bool:
        """End an ingestion `owner` holds in one transaction: the file's chunks are replaced
        by `chunks` (with `vectors`, one per chunk, when an embedding model is configured)
        and it takes `outcome`'s status, usage and error. False, writing nothing, if the file
        left the store or `owner` no longer holds it.

        Vectors of another model than the store's replace all of the store's: its other
        chunks then wait, searched lexically, for the re-embedding (`claim_reindex`)."""
