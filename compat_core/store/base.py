"""The storage interface the services use, whatever the database behind it.

Objects are stored as their protobuf messages (the contract is the domain model), beside the
columns that queries need: ID, parent IDs, creation time and an insertion sequence that gives
a total order for keyset paging. Every method is one transaction.

`Store` is one interface, written as one abstract class per domain (`base_assistants`,
`base_runs`, …) that it joins, as `SqlStore` joins one mixin per domain (`sql_store_assistants`,
…): each part of the implementation answers to the part of the interface of the same name, and
neither side is one file of a thousand lines. The values and errors they speak in live in
`base_types` and are named here too, where callers import them from.
"""

from __future__ import annotations

from abc import abstractmethod

from compat_core.store.base_assistants import Assistants
from compat_core.store.base_chunks import Chunks
from compat_core.store.base_coordination import Coordination
from compat_core.store.base_files import Files
from compat_core.store.base_limits import DailyUsage, LimitsAndUsage, ProjectLimits, StoredBytes
from compat_core.store.base_messages import Messages
from compat_core.store.base_projects import ApiKey, Project, Projects
from compat_core.store.base_runs import Runs
from compat_core.store.base_threads import Threads
from compat_core.store.base_types import (
    ACTIVE_RUN_STATUSES,
    EXECUTING_RUN_STATUSES,
    ActiveRunsLimited,
    ChunkMatch,
    ChunkVectors,
    CursorNotFound,
    Lease,
    LeaseLost,
    LeaseRenewal,
    NewChunk,
    NewVectorStore,
    Order,
    Page,
    PageQuery,
    StoredChunk,
    StoredEvent,
    ThreadBusy,
    ThreadFiles,
    VectorStoreWrites,
    VectorsUnavailable,
)
from compat_core.store.base_vector_batches import VectorStoreFileBatches
from compat_core.store.base_vector_files import VectorStoreFiles
from compat_core.store.base_vector_stores import VectorStores
from compat_core.store.base_vectors import DenseVectors

__all__ = [
    "ACTIVE_RUN_STATUSES",
    "EXECUTING_RUN_STATUSES",
    "ActiveRunsLimited",
    "ApiKey",
    "ChunkMatch",
    "ChunkVectors",
    "CursorNotFound",
    "DailyUsage",
    "Lease",
    "LeaseLost",
    "LeaseRenewal",
    "NewChunk",
    "NewVectorStore",
    "Order",
    "Page",
    "PageQuery",
    "Project",
    "ProjectLimits",
    "Store",
    "StoredBytes",
    "StoredChunk",
    "StoredEvent",
    "ThreadBusy",
    "ThreadFiles",
    "VectorStoreWrites",
    "VectorsUnavailable",
]


class Store(
    Assistants,
    VectorStores,
    Chunks,
    VectorStoreFiles,
    DenseVectors,
    VectorStoreFileBatches,
    Threads,
    Messages,
    Files,
    Runs,
    Coordination,
    Projects,
    LimitsAndUsage,
):
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
