"""`Store` on SQL through SQLAlchemy Core.

Every operation is a synchronous function of a `Connection` that a `TransactionRunner` (SQLite's
`Database`, `PostgresDatabase`) runs as one transaction; none of them knows which database it
talks to. The async methods of `SqlStore` only choose the function and whether it reads or
writes.

`SqlStore` is put together from one mixin per domain (`sql_store_assistants`, `sql_store_runs`,
…), each implementing the abstract part of `Store` of the same name (`base_assistants`, …), on
`SqlStoreBase`, which holds what they share. A domain's methods so sit beside the transaction
functions they run, and no file holds every domain. Objects map onto tables through
`sql_kinds`; the row operations that all domains use are `sql_rows`, over statements built once
in `sql_statements`. Imports run one way: a domain module may call another's transaction
functions (messages and runs those of threads, threads and assistants those of vector stores),
and only this module imports every mixin.

Concurrency. SQLite runs one write transaction at a time; PostgreSQL runs them side by side
(and several replicas may share it), so every decision a write makes on what it read must hold
the rows it read:

- A write that decides on a thread's state (the one-active-run rule), or appends to the
  thread's lists, first locks the thread's row (`sql_rows.lock_thread`). Writes to one thread
  are so serialised, and its messages, runs and steps get their `seq` in commit order: a
  reader paging a thread never skips an object committed later with a smaller `seq`, and the
  newest `created_at` of a list is known when an object is appended (`sql_rows.append`).
- A list with no parent row (assistants, files, vector stores) has a row of its own in
  `list_locks` that its inserts lock, with the same effect.
- A read-modify-write (`update_*`, the replace half of an upsert) locks the row it rewrites, so
  two concurrent mutations apply one after the other instead of one silently losing.
- Locks are taken in one order, the thread before anything in it (and several threads in ID
  order), so that two transactions cannot each hold what the other waits for.

`with_for_update()` renders nothing on SQLite, whose write lock already covers all of this.

`mutate` callbacks of the `update_*` methods run inside the write transaction, on SQLite's
writer thread or inside PostgreSQL's `run_sync` on the event loop thread: they must be quick
and must not touch the event loop.
"""

from __future__ import annotations

from compat_core.store.base import Store
from compat_core.store.sql_store_assistants import SqlAssistants
from compat_core.store.sql_store_chunks import SqlChunks
from compat_core.store.sql_store_coordination import SqlCoordination
from compat_core.store.sql_store_files import SqlFiles
from compat_core.store.sql_store_limits import SqlLimitsAndUsage
from compat_core.store.sql_store_messages import SqlMessages
from compat_core.store.sql_store_projects import SqlProjects
from compat_core.store.sql_store_runs import FEW_MESSAGES, SqlRuns
from compat_core.store.sql_store_threads import SqlThreads
from compat_core.store.sql_store_vector_batches import SqlVectorStoreFileBatches
from compat_core.store.sql_store_vector_files import SqlVectorStoreFiles
from compat_core.store.sql_store_vector_stores import SqlVectorStores
from compat_core.store.sql_store_vectors import SqlDenseVectors

# FEW_MESSAGES is named here too: the store's tests size threads around it.
__all__ = ["FEW_MESSAGES", "SqlStore"]


class SqlStore(
    SqlAssistants,
    SqlVectorStores,
    SqlChunks,
    SqlVectorStoreFiles,
    SqlDenseVectors,
    SqlVectorStoreFileBatches,
    SqlThreads,
    SqlMessages,
    SqlFiles,
    SqlRuns,
    SqlCoordination,
    SqlProjects,
    SqlLimitsAndUsage,
    Store,
):
    """The store on a SQL database; its `TransactionRunner` decides how transactions run."""

    async def open(self) -> None:
        await self._db.run_migrations()

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()
        await self._db.close()
