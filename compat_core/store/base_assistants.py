"""The assistants of `Store` (see `base` for how its parts make one interface)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from compat_core.store.base_types import Page, PageQuery, VectorStoreWrites
from compat_core.v1 import assistants_pb2


class Assistants(ABC):
    """Assistants, a list of their own."""

    @abstractmethod
    async def create_assistant(
        self,
        assistant: assistants_pb2.Assistant,
        vector_stores: VectorStoreWrites | None = None,
    ) -> None:
        """Insert a new assistant (ID and created_at already set), creating the stores of
        `vector_stores.new` first; `thread_files` must be None."""

    @abstractmethod
    async def get_assistant(self, assistant_id: str) -> assistants_pb2.Assistant | None:
        """The assistant, or None if unknown."""

    @abstractmethod
    async def list_assistants(self, query: PageQuery) -> Page[assistants_pb2.Assistant]:
        """A page of assistants. Raises CursorNotFound for an unknown cursor."""

    @abstractmethod
    async def update_assistant(
        self, assistant_id: str, mutate: Callable[[assistants_pb2.Assistant], None]
    ) -> assistants_pb2.Assistant | None:
        """Read, apply `mutate` in place, write back, in one transaction; None if unknown.

        `mutate` may raise (an ApiError, say); the transaction then rolls back and the error
        propagates unchanged.
        """

    @abstractmethod
    async def delete_assistant(self, assistant_id: str) -> bool:
        """Delete; False if it did not exist."""
