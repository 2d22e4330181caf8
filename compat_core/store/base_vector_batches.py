"""The batches of vector store files in `Store`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from compat_core.store.base_types import Page, PageQuery
from compat_core.v1 import vector_stores_pb2


class VectorStoreFileBatches(ABC):
    """Batches of vector store files (see `sql_vector_batches`). A batch's counts and status are
    worked out from its files at each read; `now_ms` tells which ingestion leases still run."""

    @abstractmethod
    async def create_vector_store_file_batch(
        self,
        batch: vector_stores_pb2.VectorStoreFileBatch,
        files: Sequence[vector_stores_pb2.VectorStoreFile],
        now_ms: int,
    ) -> vector_stores_pb2.VectorStoreFileBatch | None:
        """Store the batch and its files (`in_progress`, `batch_id` set) in one transaction,
        replacing the files the store holds already, and recount the store; the batch as it
        now reads. None if there is no such store."""

    @abstractmethod
    async def get_vector_store_file_batch(
        self, vector_store_id: str, batch_id: str, now_ms: int
    ) -> vector_stores_pb2.VectorStoreFileBatch | None:
        """The batch of that store, or None if the store has no such batch."""

    @abstractmethod
    async def cancel_vector_store_file_batch(
        self, vector_store_id: str, batch_id: str, now_ms: int
    ) -> vector_stores_pb2.VectorStoreFileBatch | None:
        """Mark the batch's `in_progress` files `cancelled` and the batch cancelled, in one
        transaction; the batch as it now reads (unchanged if nothing of it was pending: it
        completed, failed or was cancelled before). None if the store has no such batch."""

    @abstractmethod
    async def list_vector_store_file_batch_files(
        self, vector_store_id: str, batch_id: str, query: PageQuery, status: int
    ) -> Page[vector_stores_pb2.VectorStoreFile] | None:
        """A page of the batch's files (only those with `status`, unless it is 0); None if the
        store has no such batch. Raises CursorNotFound for a cursor naming no file of the
        store."""
