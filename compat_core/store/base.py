"""The storage interface the services use, whatever the database behind it.

Objects are stored as their protobuf messages (the contract is the domain model), beside the
columns that queries need: ID, parent IDs, creation time and an insertion sequence that gives
a total order for keyset paging. Every method is one transaction.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Generic, Literal, NamedTuple, TypeVar

from compat_core.retrieval.filters import Filter
from compat_core.v1 import (
    assistants_pb2,
    files_pb2,
    messages_pb2,
    runs_pb2,
    threads_pb2,
    vector_stores_pb2,
)

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


class Store(ABC):
    """All persistent state of the core. Implementations: `SqlStore` on SQLite (the embedded
    default) or on PostgreSQL (the store a scaled-out deployment shares).

    Lists are in storage order, and `created_at` never decreases along a list: an object
    inserted at the end of a list whose newest object was created later is given that
    `created_at`, set in place on the object passed in (so what a caller hands back is what was
    stored). Objects are stamped before they reach the store, and concurrent creates (on
    PostgreSQL) or replicas with different clocks could otherwise store them in the other order.
    Replacing an object (`save_progress`) keeps its place and the `created_at` given.
    """

    @abstractmethod
    async def open(self) -> None:
        """Connect and apply pending migrations; idempotent and safe for concurrent starts."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections and threads; pending transactions finish first."""

    # Assistants

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

    # Vector stores

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

    # Chunks of vector store files (file_search)

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

    # Files of vector stores and their ingestion leases (see `sql_vector_files`)

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

    # Dense vectors of chunks (file_search with an embedding model)

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

    # Batches of vector store files (see `sql_vector_batches`). A batch's counts and status are
    # worked out from its files at each read; `now_ms` tells which ingestion leases still run.

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

    # Threads

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

    # Messages

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
        """Delete a file object and take it out of every vector store that holds it (its
        entries and chunks, the stores recounted) in one transaction; False if unknown."""

    # Runs and run steps

    @abstractmethod
    async def create_run(
        self,
        run: runs_pb2.Run,
        messages: Sequence[messages_pb2.Message] = (),
        thread: threads_pb2.Thread | None = None,
        lease: Lease | None = None,
        reply: tuple[messages_pb2.Message, runs_pb2.RunStep] | None = None,
        vector_stores: VectorStoreWrites | None = None,
    ) -> bool:
        """Start a run, in one transaction.

        Inserts `thread` first when given (create-thread-and-run, its first messages are in
        `messages`), with `vector_stores` as `create_thread` writes them; then checks the run's
        thread exists (False if not) and has no active run (raises ThreadBusy); then, for an
        existing thread, writes `vector_stores` as `create_message` does, and inserts
        `messages` (a run's additional messages) at the end of the thread and the run, with
        `lease` (else an unowned one any core may claim).
        `reply`, a message of the run and the step that creates it, is inserted last: the reply
        of a run that starts as it is created.
        """

    @abstractmethod
    async def get_run(self, thread_id: str, run_id: str) -> runs_pb2.Run | None:
        """The run if it belongs to that thread, else None."""

    @abstractmethod
    async def find_run(self, run_id: str) -> runs_pb2.Run | None:
        """The run by ID alone, else None."""

    @abstractmethod
    async def list_runs(self, thread_id: str, query: PageQuery) -> Page[runs_pb2.Run] | None:
        """A page of a thread's runs; None if no thread."""

    @abstractmethod
    async def update_run(
        self,
        thread_id: str,
        run_id: str,
        mutate: Callable[[runs_pb2.Run], None],
        lease: Lease | None = None,
    ) -> runs_pb2.Run | None:
        """As `update_assistant`, for a run of a thread.

        If `mutate` makes an idle run execute again (tool outputs, a cancel while it waited
        for them), the run gets `lease`, else an unowned one; a held lease stays its holder's.
        """

    @abstractmethod
    async def save_progress(
        self,
        run: runs_pb2.Run | None = None,
        steps: Sequence[runs_pb2.RunStep] = (),
        messages: Sequence[messages_pb2.Message] = (),
        guard: Callable[[runs_pb2.Run], None] | None = None,
        holder: str | None = None,
    ) -> None:
        """Insert or replace (by ID) a run, steps and messages in one transaction.

        `guard`, when given, is called with the run as stored (locked) before anything is
        written; whatever it raises aborts the whole save. It makes "end this run and its open
        step, unless the run moved meanwhile" a single atomic change. `holder`, when given,
        must hold the run's lease, else the save raises LeaseLost and writes nothing.

        The run engine calls this before it announces each transition, so what a client is
        told has always been stored. A replaced object keeps its place in its list.
        """

    @abstractmethod
    async def delete_run_output(self, step_ids: Sequence[str], message_ids: Sequence[str]) -> None:
        """Delete steps and messages a run wrote but must write again (resumption)."""

    @abstractmethod
    async def runs_with_status(
        self, statuses: Collection[int], limit: int = 1000
    ) -> list[runs_pb2.Run]:
        """Runs in any of `statuses`, oldest first (restart recovery, expiry sweeps)."""

    @abstractmethod
    async def list_steps(
        self, thread_id: str, run_id: str, query: PageQuery
    ) -> Page[runs_pb2.RunStep] | None:
        """A page of a run's steps; None if no such run in that thread."""

    @abstractmethod
    async def get_step(self, thread_id: str, run_id: str, step_id: str) -> runs_pb2.RunStep | None:
        """One step of a run of a thread, else None."""

    @abstractmethod
    async def run_steps(self, run_id: str) -> list[runs_pb2.RunStep]:
        """Every step of a run, oldest first."""

    @abstractmethod
    async def thread_messages(self, thread_id: str) -> list[messages_pb2.Message]:
        """Every message of a thread, oldest first (what the model reads)."""

    # Which core executes which run

    @abstractmethod
    def pending_transactions(self) -> int:
        """Transactions submitted and not yet taken up or done: how far the database lags
        behind the core (a gauge of the metrics, read when scraped)."""

    @property
    @abstractmethod
    def shared(self) -> bool:
        """Whether other core processes may share this database (PostgreSQL).

        Cores that share it keep a stored event log and notify each other; a core alone on
        its database (SQLite) needs neither.
        """

    @abstractmethod
    async def claim_runs(
        self, owner: str, expired_before_ms: int, expires_at_ms: int, limit: int
    ) -> list[runs_pb2.Run]:
        """Take up to `limit` runs whose lease ran out before `expired_before_ms`, leasing them
        until `expires_at_ms`; their current state."""

    @abstractmethod
    async def renew_leases(self, owner: str, expires_at_ms: int) -> LeaseRenewal:
        """Extend every lease `owner` holds."""

    @abstractmethod
    async def release_leases(self, owner: str) -> None:
        """Let any core claim `owner`'s runs at once (a graceful stop)."""

    @abstractmethod
    async def request_cancel(self, run_id: str) -> None:
        """Tell the core executing the run, wherever it is, that a cancel was stored."""

    # The stored event log (only used when `shared`)

    @abstractmethod
    async def append_events(self, events: Sequence[StoredEvent]) -> None:
        """Append events to their runs' logs and wake the cores watching them."""

    @abstractmethod
    async def read_events(self, run_id: str, after: int, limit: int) -> list[runs_pb2.RunEvent]:
        """A run's stored events after sequence `after`, oldest first."""

    @abstractmethod
    async def last_event_sequence(self, run_id: str) -> int:
        """The sequence of a run's newest stored event, 0 if none."""

    @abstractmethod
    async def purge_events(self, created_before: int) -> int:
        """Drop stored events older than `created_before` (unix seconds); how many went."""

    @abstractmethod
    async def listen(self, on_notice: Callable[[str, str], None]) -> None:
        """Call `on_notice(channel, payload)` for every notification other cores send.

        Returns once listening; a no-op on a database no other core shares. Delivery is best
        effort (a dropped connection loses notices until it is back): callers also poll.
        """
