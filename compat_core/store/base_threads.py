"""The threads of `Store`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from compat_core.store.base_types import VectorStoreWrites
from compat_core.v1 import messages_pb2, threads_pb2


class Threads(ABC):
    """Threads, each the parent of its messages, runs and run steps."""

    @abstractmethod
    async def create_thread(
        self,
        thread: threads_pb2.Thread,
        messages: list[messages_pb2.Message],
        vector_stores: VectorStoreWrites | None = None,
    ) -> None:
        """Insert a thread and its first messages (in list order) in one transaction, with
        `vector_stores` (a store made for `thread_files` is set on `thread` in place)."""

    @abstractmethod
    async def get_thread(self, thread_id: str) -> threads_pb2.Thread | None:
        """The thread, or None if unknown."""

    @abstractmethod
    async def update_thread(
        self, thread_id: str, mutate: Callable[[threads_pb2.Thread], None]
    ) -> threads_pb2.Thread | None:
        """As `update_assistant`, for a thread."""

    @abstractmethod
    async def delete_thread(self, thread_id: str) -> bool:
        """Delete a thread with all its messages, runs and run steps; False if unknown."""
