"""The values and errors that the storage interface (`base`) takes and gives."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Generic, Literal, NamedTuple, TypeVar

from compat_core.v1 import runs_pb2, vector_stores_pb2

T = TypeVar("T")
Order = Literal["asc", "desc"]


@dataclass(frozen=True)
class PageQuery:
    """A keyset page request, as OpenAI's list endpoints take it (already validated)."""

    limit: int
    order: Order = "desc"
    after: str = ""
    before: str = ""


class Page(Generic[T]):
    """One page of a list, in the requested order, as the store holds it: each object's
    serialized protobuf message, parsed only when `items` is first read.

    A list call hands its page on unchanged, and parsing each object only to copy it into the
    response cost about 16 µs for 20 messages, twice what one parse of them all takes:
    `wire()` lets the service build its response that way (`services.support.list_response`).

    `has_more` is exact: with `before`, it says whether more objects lie before the page's
    first one; otherwise whether more lie after its last one.
    """

    def __init__(
        self, bodies: Sequence[bytes], parse: Callable[[bytes], T], has_more: bool = False
    ) -> None:
        self.bodies = bodies
        self.has_more = has_more
        self._parse = parse

    @functools.cached_property
    def items(self) -> list[T]:
        return [self._parse(body) for body in self.bodies]

    def wire(self) -> bytes:
        """The objects as the wire form of a repeated message field numbered 1, the `data` of
        every List…Response: parsing it as that response gives the objects, in order."""
        parts: list[bytes] = []
        for body in self.bodies:
            parts += (_DATA_TAG, _varint(len(body)), body)
        return b"".join(parts)


# Field 1, wire type 2 (length-delimited): the key of each element of a list's `data`.
_DATA_TAG: Final = b"\n"


def _varint(value: int) -> bytes:
    """`value` (not negative) as a protobuf base-128 varint."""
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class CursorNotFound(Exception):
    """`after` or `before` names no object of the list being paged."""

    def __init__(self, param: str, object_id: str) -> None:
        super().__init__(f"{param}={object_id!r} names no object in this list")
        self.param = param
        self.object_id = object_id


class ThreadBusy(Exception):
    """The thread has an active run (queued, in progress, requires action or cancelling)."""

    def __init__(self, thread_id: str, run_id: str) -> None:
        super().__init__(f"Thread {thread_id} already has an active run {run_id}.")
        self.thread_id = thread_id
        self.run_id = run_id


class ActiveRunsLimited(Exception):
    """The project already has as many active runs as its limit allows (`create_run`)."""

    def __init__(self, limit: int, active: int) -> None:
        super().__init__(f"{active} active runs, at a limit of {limit}")
        self.limit = limit
        self.active = active


ACTIVE_RUN_STATUSES = frozenset(
    {
        runs_pb2.RUN_STATUS_QUEUED,
        runs_pb2.RUN_STATUS_IN_PROGRESS,
        runs_pb2.RUN_STATUS_REQUIRES_ACTION,
        runs_pb2.RUN_STATUS_CANCELLING,
    }
)


# The statuses in which some core must be executing the run (and so holds its lease).
EXECUTING_RUN_STATUSES = frozenset(
    {
        runs_pb2.RUN_STATUS_QUEUED,
        runs_pb2.RUN_STATUS_IN_PROGRESS,
        runs_pb2.RUN_STATUS_CANCELLING,
    }
)


@dataclass(frozen=True)
class Lease:
    """A core's claim on executing a run: its replica ID, and when the claim runs out."""

    owner: str
    expires_at_ms: int


@dataclass(frozen=True)
class LeaseRenewal:
    """What a core learns when it renews its leases."""

    # The runs whose lease it still holds (a run missing here was taken over or ended).
    held: frozenset[str]
    # Those of them a client asked to cancel.
    cancelling: frozenset[str]


@dataclass(frozen=True)
class StoredEvent:
    """One event of a run as the stored event log keeps it."""

    run_id: str
    event: runs_pb2.RunEvent
    created_at: int


class NewChunk(NamedTuple):
    """One chunk of a file as ingestion cut it, to be stored for a vector store."""

    # Its place among the file's chunks, from 0.
    chunk_index: int
    text: str
    token_count: int


class ChunkMatch(NamedTuple):
    """A chunk a search found, with the database's own score for it: SQLite's bm25 (negative,
    more negative is better), PostgreSQL's ts_rank (positive, larger is better), or a dense
    search's cosine similarity, for `ranking.Hit.from_bm25` / `from_ts_rank` / `from_cosine`
    to put on one scale. `scale` says which the score is, so a caller need not know which
    database the store runs on. The file's name and attributes come with it, read in the same
    query."""

    chunk_id: int
    vector_store_id: str
    file_id: str
    chunk_index: int
    text: str
    raw_score: float
    scale: Literal["bm25", "ts_rank", "cosine"]
    # The file's name in the Files API; "" when the file was deleted there since.
    filename: str
    # The file's attributes in the vector store.
    attributes: Mapping[str, vector_stores_pb2.VectorStoreFileAttribute]


class StoredChunk(NamedTuple):
    """A stored chunk to embed: its ID and text."""

    chunk_id: int
    text: str


class ChunkVectors(NamedTuple):
    """Unit-length vectors from one embedding model, one per chunk, in the chunks' order."""

    model: str
    vectors: Sequence[Sequence[float]]

    @property
    def dimensions(self) -> int:
        return len(self.vectors[0]) if self.vectors else 0


class VectorsUnavailable(Exception):
    """The database cannot hold vectors (PostgreSQL without pgvector, or without the right to
    enable it); the message says what is missing."""


@dataclass(frozen=True)
class NewVectorStore:
    """A vector store that an assistant or a thread creates inline, with its first files
    (`in_progress`), written in the transaction that writes the object naming it: a create
    that fails leaves no store behind."""

    store: vector_stores_pb2.VectorStore
    files: Sequence[vector_stores_pb2.VectorStoreFile]


@dataclass(frozen=True)
class ThreadFiles:
    """Files that messages attached for file_search, for their thread's vector store.

    That is the store the thread's `tool_resources.file_search.vector_store_ids` names, if it
    exists and has not expired; otherwise `fallback` is created and the thread names it
    instead. Decided in the transaction that locks the thread, so that two messages written
    at once cannot each give it a store. Each file takes the chosen store's ID as it is added.
    """

    files: Sequence[vector_stores_pb2.VectorStoreFile]
    fallback: vector_stores_pb2.VectorStore


@dataclass(frozen=True)
class VectorStoreWrites:
    """What a create writes to vector stores in its own transaction: stores to create
    (`new`), and files for the thread's store (`thread_files`, on a thread's writes only).
    The thread's store is marked active at `moment` (unix seconds; see `retrieval.expiry`)."""

    moment: int
    new: Sequence[NewVectorStore] = ()
    thread_files: ThreadFiles | None = None


class LeaseLost(Exception):
    """The writer no longer holds the run's lease: another core executes it now."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"this core no longer holds the lease of run {run_id}")
        self.run_id = run_id
