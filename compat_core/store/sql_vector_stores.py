"""Vector stores written beside other objects, and their activity and expiry.

- Inline stores (`tool_resources.file_search.vector_stores`) and the store a thread gets for
  its messages' file_search attachments are written in the transaction of the assistant,
  thread or message that names them, so a create that fails leaves no store behind and two
  messages written at once cannot each give their thread a store.
- `last_active_at` moves when a store is used (`touch`); a store whose `expires_at` passed is
  marked `expired` and its chunks dropped by the sweep (`expire`). The `expires_at` column
  holds when a store will expire, NULL once it has (see `retrieval.expiry.pending_expiry`),
  so the sweep reads only the stores whose time has come through its index.

Lock order: a thread's row before any store's, and stores in ID order.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Sequence
from typing import Any

from sqlalchemy import Connection, Integer, Select, Update, bindparam, select

from compat_core.retrieval import expiry
from compat_core.store import prepared, schema, sql_chunks, sql_scope, sql_vector_files
from compat_core.store.base import NewVectorStore, ThreadFiles
from compat_core.v1 import threads_pb2, vector_stores_pb2

VectorStore = vector_stores_pb2.VectorStore
# Inserts a new store at the end of the list of stores (the store module's own append).
Insert = Callable[[Connection, VectorStore], None]
_STORES = schema.vector_stores


def _locked_stmt() -> Select[Any]:
    return _locked_stmt_for(sql_scope.applies(_STORES))


@functools.cache
def _locked_stmt_for(scoped: bool) -> Select[Any]:
    stmt = select(_STORES.c.seq, _STORES.c.body, _STORES.c.expires_at)
    return stmt.where(_STORES.c.id == bindparam("id"), *_project(scoped)).with_for_update()


def _rewrite_stmt() -> Update:
    """Sets the columns its parameters name (`body`, `expires_at`) on the row at `:p_seq`."""
    return _rewrite_stmt_for(sql_scope.applies(_STORES))


@functools.cache
def _rewrite_stmt_for(scoped: bool) -> Update:
    return _STORES.update().where(_STORES.c.seq == bindparam("p_seq"), *_project(scoped))


def _project(scoped: bool) -> list[Any]:
    return [_STORES.c.project_id == sql_scope.project_param()] if scoped else []


@functools.cache
def _due_stmt() -> Select[Any]:
    expires_at = _STORES.c.expires_at
    return (
        select(_STORES.c.id)
        .where(expires_at.is_not(None), expires_at <= bindparam("moment"))
        .order_by(expires_at)
        .limit(bindparam("limit", type_=Integer))
    )


def create(conn: Connection, new: Sequence[NewVectorStore], insert: Insert) -> None:
    """Insert the stores and record their files `in_progress`."""
    for item in new:
        insert(conn, item.store)
        if item.files:
            sql_vector_files.add(conn, item.store.id, item.files)


def attach(
    conn: Connection, thread: threads_pb2.Thread, files: ThreadFiles, insert: Insert, moment: int
) -> bool:
    """Add `files` to the thread's store, or to `files.fallback`, which the thread then names
    (changed in place); True if the thread changed. The caller holds the thread (or is
    inserting it) and writes it."""
    search = thread.tool_resources.file_search
    target = None
    if search.vector_store_ids:
        current = sql_vector_files.lock_store(conn, search.vector_store_ids[0])
        if current is not None and not expiry.has_expired(current, moment):
            target = current.id
    changed = target is None
    if target is None:
        insert(conn, files.fallback)
        target = files.fallback.id
        del search.vector_store_ids[:]
        search.vector_store_ids.append(target)
    placed = []
    for given in files.files:
        f = vector_stores_pb2.VectorStoreFile()
        f.CopyFrom(given)
        f.vector_store_id = target
        placed.append(f)
    sql_vector_files.add(conn, target, placed)
    touch(conn, [target], moment)
    return changed


def touch(conn: Connection, store_ids: Collection[str], moment: int) -> None:
    """Mark the stores used at `moment`; unknown and expired ones are skipped, and a store
    already marked within that second is not written again."""
    for store_id in sorted(set(store_ids)):
        row = prepared.first(conn, _locked_stmt(), {"id": store_id})
        if row is None:
            continue
        seq, body, _ = row
        store = VectorStore.FromString(body)
        if expiry.touch(store, moment):
            _rewrite(conn, seq, store)


def expire(conn: Connection, moment: int, limit: int) -> list[str]:
    """Mark up to `limit` stores whose time passed by `moment` expired and drop their chunks.

    Each is read again under its lock: one that another sweep expired meanwhile (its column
    is NULL now) or that was used since (its expiry moved on) is left alone.
    """
    due = [str(i) for i in prepared.scalars(conn, _due_stmt(), {"moment": moment, "limit": limit})]
    expired = []
    for store_id in sorted(due):
        row = prepared.first(conn, _locked_stmt(), {"id": store_id})
        if row is None or row[2] is None:
            continue
        seq, body, _ = row
        store = VectorStore.FromString(body)
        if not expiry.mark_expired(store, moment):
            continue
        _rewrite(conn, seq, store)
        sql_chunks.delete_store(conn, store_id)
        expired.append(store_id)
    return expired


def _rewrite(conn: Connection, seq: int, store: VectorStore) -> None:
    params = {
        "body": store.SerializeToString(),
        "expires_at": expiry.pending_expiry(store),
        "p_seq": seq,
    }
    prepared.execute(conn, _rewrite_stmt(), params)
