"""Batches of vector store files: creating one with its files, reading and cancelling it.

A batch's counts and status are never stored: each read works them out from the batch's file
rows (one aggregate over the `(batch_id, seq)` index), so they cannot disagree with the files,
whichever core ingested them. What is stored is the batch as created and, once asked for, its
cancel (see `schema.vector_store_file_batches`).

Writes lock the store's row first, as every write to a store's files does
(`sql_vector_files`): creating a batch, cancelling one and a core ending a file's ingestion are
so applied one after the other. Cancelling marks the batch's `in_progress` files `cancelled`
and leaves their lease columns alone: a core still working on one then finds, when it comes to
store its outcome, a file that is no longer `in_progress`, stores nothing and lets go of it
(`sql_vector_files.finish`). Until it has, or its lease ran out, the batch is still being
processed and answers `in_progress`.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, and_, bindparam, case, func, select

from compat_core.store import schema, sql_chunks, sql_file_attributes, sql_scope, sql_vector_files
from compat_core.v1 import vector_stores_pb2

VectorStoreFile = vector_stores_pb2.VectorStoreFile
VectorStoreFileBatch = vector_stores_pb2.VectorStoreFileBatch
_BATCHES = schema.vector_store_file_batches
_FILES = schema.vector_store_files
_FILE_IN_PROGRESS = vector_stores_pb2.VECTOR_STORE_FILE_STATUS_IN_PROGRESS
_FILE_CANCELLED = vector_stores_pb2.VECTOR_STORE_FILE_STATUS_CANCELLED
_FILE_FAILED = vector_stores_pb2.VECTOR_STORE_FILE_STATUS_FAILED
_FILE_COMPLETED = vector_stores_pb2.VECTOR_STORE_FILE_STATUS_COMPLETED
IN_PROGRESS = vector_stores_pb2.VECTOR_STORE_FILE_BATCH_STATUS_IN_PROGRESS
COMPLETED = vector_stores_pb2.VECTOR_STORE_FILE_BATCH_STATUS_COMPLETED
CANCELLED = vector_stores_pb2.VECTOR_STORE_FILE_BATCH_STATUS_CANCELLED
FAILED = vector_stores_pb2.VECTOR_STORE_FILE_BATCH_STATUS_FAILED
_where = sql_scope.where


def create(
    conn: Connection,
    batch: VectorStoreFileBatch,
    files: Sequence[VectorStoreFile],
    now_ms: int,
) -> VectorStoreFileBatch | None:
    """Store a batch and its files `in_progress`; the batch as it now reads. None: no store.

    A file the store holds already is replaced, chunks and all, as OpenAI re-adds it: it joins
    this batch at the end of the store's list, to be ingested again. A core ingesting its old
    row no longer holds the new one (its lease columns start empty), so it stores nothing.
    """
    store = sql_vector_files.lock_store(conn, batch.vector_store_id)
    if store is None:
        return None
    stored = VectorStoreFileBatch()
    stored.CopyFrom(batch)
    stored.ClearField("file_counts")
    stored.status = IN_PROGRESS
    conn.execute(
        _BATCHES.insert().values(
            sql_scope.stamp(
                {
                    "id": stored.id,
                    "vector_store_id": stored.vector_store_id,
                    "created_at": stored.created_at,
                    "body": stored.SerializeToString(),
                }
            )
        )
    )
    file_ids = [f.id for f in files]
    replaced = conn.execute(
        _FILES.delete()
        .where(_FILES.c.vector_store_id == store.id, _FILES.c.id.in_(file_ids), *_where(_FILES))
        .returning(_FILES.c.id)
    ).scalars()
    for file_id in list(replaced):
        sql_chunks.delete_file(conn, store.id, file_id)
        sql_file_attributes.delete_file(conn, store.id, file_id)
    newest = conn.execute(
        select(func.max(_FILES.c.created_at)).where(
            _FILES.c.vector_store_id == store.id, *_where(_FILES)
        )
    ).scalar()
    rows: list[dict[str, object]] = []
    for f in files:
        if newest is not None and f.created_at < newest:
            f.created_at = int(newest)
        newest = f.created_at
        rows.append(sql_scope.stamp({**sql_vector_files.columns(f), "body": f.SerializeToString()}))
    if rows:
        conn.execute(_FILES.insert(), rows)
        sql_file_attributes.add(conn, files)
    sql_vector_files.recount(conn, store)
    return _as_read(conn, stored, now_ms)


def get(
    conn: Connection, vector_store_id: str, batch_id: str, now_ms: int
) -> VectorStoreFileBatch | None:
    """The batch of that store with its counts and status as of `now_ms`; None if unknown."""
    stored = _stored(conn, vector_store_id, batch_id)
    return None if stored is None else _as_read(conn, stored, now_ms)


def exists(conn: Connection, vector_store_id: str, batch_id: str) -> bool:
    return _stored(conn, vector_store_id, batch_id) is not None


def cancel(
    conn: Connection, vector_store_id: str, batch_id: str, now_ms: int
) -> VectorStoreFileBatch | None:
    """Cancel the batch's files still `in_progress`; the batch as it now reads, or None if the
    store has no such batch. A batch with nothing left to cancel is answered unchanged: one
    that `completed` or `failed` stays so."""
    store = sql_vector_files.lock_store(conn, vector_store_id)
    if store is None:
        return None
    stored = _stored(conn, vector_store_id, batch_id)
    if stored is None:
        return None
    # Locked as read: a concurrent change of a file's attributes (which locks only the file's
    # row) must not be overwritten by the body written back here.
    pending = conn.execute(
        select(_FILES.c.seq, _FILES.c.body)
        .where(_FILES.c.batch_id == batch_id, _FILES.c.status == _FILE_IN_PROGRESS, *_where(_FILES))
        .with_for_update()
    ).all()
    if not pending:
        # Files join a batch only as it is created, so this one is cancelled already, or
        # every file of it is processed (or gone).
        return _as_read(conn, stored, now_ms)
    rows = []
    for seq, body in pending:
        f = VectorStoreFile.FromString(body)
        f.status = _FILE_CANCELLED
        rows.append({"p_seq": seq, "status": int(f.status), "body": f.SerializeToString()})
    conn.execute(_FILES.update().where(_FILES.c.seq == bindparam("p_seq"), *_where(_FILES)), rows)
    stored.status = CANCELLED
    conn.execute(
        _BATCHES.update()
        .where(_BATCHES.c.id == batch_id, *_where(_BATCHES))
        .values(body=stored.SerializeToString())
    )
    sql_vector_files.recount(conn, store)
    return _as_read(conn, stored, now_ms)


def delete_store(conn: Connection, vector_store_id: str) -> None:
    """Drop every batch of a store (as the store itself is deleted)."""
    conn.execute(
        _BATCHES.delete().where(_BATCHES.c.vector_store_id == vector_store_id, *_where(_BATCHES))
    )


def _stored(conn: Connection, vector_store_id: str, batch_id: str) -> VectorStoreFileBatch | None:
    body = conn.execute(
        select(_BATCHES.c.body).where(
            _BATCHES.c.id == batch_id,
            _BATCHES.c.vector_store_id == vector_store_id,
            *_where(_BATCHES),
        )
    ).scalar()
    return None if body is None else VectorStoreFileBatch.FromString(body)


def _as_read(conn: Connection, stored: VectorStoreFileBatch, now_ms: int) -> VectorStoreFileBatch:
    """The stored batch with the counts and status its files give it as of `now_ms`."""
    # A file counts as being worked on while a core holds a lease on it that has not run out:
    # after a cancel, that core may still be busy with a file that now reads `cancelled`.
    held = case(
        (and_(_FILES.c.claimed_by != "", _FILES.c.lease_expires_at_ms >= now_ms), 1), else_=0
    )
    stmt = (
        select(_FILES.c.status, func.count(), func.coalesce(func.sum(held), 0))
        .where(_FILES.c.batch_id == stored.id, *_where(_FILES))
        .group_by(_FILES.c.status)
    )
    by_status: dict[int, int] = {}
    busy = 0
    for status, n, n_held in conn.execute(stmt):
        by_status[int(status)] = int(n)
        busy += int(n_held)
    batch = VectorStoreFileBatch()
    batch.CopyFrom(stored)
    counts = batch.file_counts
    counts.in_progress = by_status.get(_FILE_IN_PROGRESS, 0)
    counts.completed = by_status.get(_FILE_COMPLETED, 0)
    counts.failed = by_status.get(_FILE_FAILED, 0)
    counts.cancelled = by_status.get(_FILE_CANCELLED, 0)
    counts.total = sum(by_status.values())
    if counts.in_progress or busy:
        batch.status = IN_PROGRESS
    elif stored.status == CANCELLED:
        batch.status = CANCELLED
    elif counts.total and counts.failed == counts.total:
        batch.status = FAILED
    else:
        batch.status = COMPLETED
    return batch
