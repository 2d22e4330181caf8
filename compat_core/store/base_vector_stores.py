"""The vector stores of `Store`: the stores themselves, their activity and expiry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection

from compat_core.store.base_types import Page, PageQuery
from compat_core.v1 import vector_stores_pb2


class VectorStores(ABC):
    """Vector stores, a list of their own."""

    @abstractmethod
    async def create_vector_store(self, store: vector_stores_pb2.VectorStore) -> None:
        """Insert a new vector store (ID and created_at already set)."""

    @abstractmethod
    async def get_vector_store(self, store_id: str) -> vector_stores_pb2.VectorStore | None:
        """The vector store, or None if unknown."""

    @abstractmethod
    async def list_vector_stores(self, query: PageQuery) -> Page[vector_stores_pb2.VectorStore]:
        """A page of vector stores. Raises CursorNotFound for an unknown cursor."""

    @abstractmethod
    async def update_vector_store(
        self, store_id: str, mutate: Callable[[vector_stores_pb2.VectorStore], None]
    ) -> vector_stores_pb2.VectorStore | None:
        """As `update_assistant`, for a vector store."""

    @abstractmethod
    async def delete_vector_store(self, store_id: str) -> bool:
        """Delete the vector store; False if it was unknown."""

    @abstractmethod
    async def touch_vector_stores(self, store_ids: Collection[str], moment: int) -> None:
        """Mark the stores used at `moment` (unix seconds), moving their expiry with it (see
        `retrieval.expiry`); unknown and expired ones are left alone. What a search of them
        calls: the search endpoint, and a run's file_search."""

    @abstractmethod
    async def expire_vector_stores(self, moment: int, limit: int) -> list[str]:
        """Mark up to `limit` stores whose `expires_at` passed by `moment` `expired` and drop
        their chunks (their files stay listed); the IDs of those it expired. Each is checked
        again under its lock, so a store used meanwhile is left alone."""
