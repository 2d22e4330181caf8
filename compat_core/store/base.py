"""The storage interface the services use, whatever the database behind it.

Objects are stored as their protobuf messages (the contract is the domain model), beside the
columns that queries need: ID, parent IDs, creation time and an insertion sequence that gives
a total order for keyset paging. Every method is one transaction.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

from compat_core.v1 import assistants_pb2, files_pb2, messages_pb2, threads_pb2

T = TypeVar("T")
Order = Literal["asc", "desc"]


@dataclass(frozen=True)
class PageQuery:
    """A keyset page request, as OpenAI's list endpoints take it (already validated)."""

    limit: int
    order: Order = "desc"
    after: str = ""
    before: str = ""


@dataclass
class Page(Generic[T]):
    """One page of a list, in the requested order.

    `has_more` is exact: with `before`, it says whether more objects lie before the page's
    first one; otherwise whether more lie after its last one.
    """

    items: list[T] = field(default_factory=list)
    has_more: bool = False


class CursorNotFound(Exception):
    """`after` or `before` names no object of the list being paged."""

    def __init__(self, param: str, object_id: str) -> None:
        super().__init__(f"{param}={object_id!r} names no object in this list")
        self.param = param
        self.object_id = object_id


class Store(ABC):
    """All persistent state of the core. Implementations: SQLite (embedded default)."""

    @abstractmethod
    async def open(self) -> None:
        """Connect and apply pending migrations; idempotent and safe for concurrent starts."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections and threads; pending transactions finish first."""

    # Assistants

    @abstractmethod
    async def create_assistant(self, assistant: assistants_pb2.Assistant) -> None:
        """Insert a new assistant (ID and created_at already set)."""

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

    # Threads

    @abstractmethod
    async def create_thread(
        self, thread: threads_pb2.Thread, messages: list[messages_pb2.Message]
    ) -> None:
        """Insert a thread and its first messages (in list order) in one transaction."""

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

    # Messages

    @abstractmethod
    async def create_message(self, message: messages_pb2.Message) -> bool:
        """Insert a message at the end of its thread; False if the thread is unknown."""

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

    # Files (objects only; bytes live in a BlobStore)

    @abstractmethod
    async def create_file(self, file: files_pb2.File) -> None:
        """Insert a file object once its bytes are stored."""

    @abstractmethod
    async def get_file(self, file_id: str) -> files_pb2.File | None:
        """The file, or None if unknown."""

    @abstractmethod
    async def list_files(self, query: PageQuery, purpose: str = "") -> Page[files_pb2.File]:
        """A page of files, only those of `purpose` if given."""

    @abstractmethod
    async def delete_file(self, file_id: str) -> bool:
        """Delete a file object; False if unknown."""
