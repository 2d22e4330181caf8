"""The messages of threads in `Store`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from compat_core.store.base_types import Page, PageQuery, VectorStoreWrites
from compat_core.v1 import messages_pb2


class Messages(ABC):
    """Messages, each a child of its thread."""

    @abstractmethod
    async def create_message(
        self, message: messages_pb2.Message, vector_stores: VectorStoreWrites | None = None
    ) -> bool:
        """Insert a message at the end of its thread, with `vector_stores` (its file_search
        attachments); False if the thread is unknown.

        Raises ThreadBusy when the thread has an active run (checked in the same transaction).
        """

    @abstractmethod
    async def get_message(self, thread_id: str, message_id: str) -> messages_pb2.Message | None:
        """The message if it belongs to that thread, else None."""

    @abstractmethod
    async def list_messages(
        self, thread_id: str, query: PageQuery, run_id: str = ""
    ) -> Page[messages_pb2.Message] | None:
        """A page of a thread's messages (only `run_id`'s if given); None if no thread."""

    @abstractmethod
    async def update_message(
        self,
        thread_id: str,
        message_id: str,
        mutate: Callable[[messages_pb2.Message], None],
    ) -> messages_pb2.Message | None:
        """As `update_assistant`, for a message of a thread."""

    @abstractmethod
    async def delete_message(self, thread_id: str, message_id: str) -> bool:
        """Delete a message of a thread; False if no such message in that thread."""
