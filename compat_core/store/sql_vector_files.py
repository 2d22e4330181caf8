"""The files of vector stores: their ingestion leases and their stores' counts.

Every write that changes which files a store holds, or their status, locks the store's row
first and recounts the store's `file_counts` and `usage_bytes` from its file rows before it
commits, so the counts can never disagree with the files (the lock orders such writes on one
store one after the other). Leases work as the runs' do (`sql_claims`): a core holds an
`in_progress` file while the row names it and its lease has not run out, and any core may
claim rows whose lease ran out (`FOR UPDATE SKIP LOCKED` on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, Connection, and_, func, select

from compat_core.store import schema, sql_chunks, sql_file_attributes, sql_scope, sql_vectors
from compat_core.store.base import ChunkVectors, NewChunk
from compat_core.v1 import vector_stores_pb2

VectorStoreFile = vector_stores_pb2.VectorStoreFile
_FILES = schema.vector_store_files
_STORES = schema.vector_stores
_IN_PROGRESS = vector_stores_pb2.VECTOR_STORE_FILE_STATUS_IN_PROGRESS
_where = sql_scope.where


def lock_store(conn: Connection, vector_store_id: str) -> vector_stores_pb2.VectorStore | None:
    """The store, its row locked until the transaction ends; None if there is no such store."""
    stmt = (
        select(_STORES.c.body)
        .where(_STORES.c.id == vector_store_id, *_where(_STORES))
        .with_for_update()
    )
    body = conn.execute(stmt).scalar()
    return None if body is None else vector_stores_pb2.VectorStore.FromString(body)


def recount(conn: Connection, store: vector_stores_pb2.VectorStore) -> None:
    """Set the (locked) store's counts and usage from its file rows, and write it."""
    stmt = (
        select(_FILES.c.status, func.count(), func.coalesce(func.sum(_FILES.c.usage_bytes), 0))
        .where(_FILES.c.vector_store_id == store.id, *_where(_FILES))
        .group_by(_FILES.c.status)
    )
    by_status = {int(status): (int(n), int(used)) for status, n, used in conn.execute(stmt)}
    counts = store.file_counts
    counts.in_progress = by_status.get(_IN_PROGRESS, (0, 0))[0]
    counts.completed = by_status.get(vector_stores_pb2.VECTOR_STORE_FILE_STATUS_COMPLETED, (0, 0))[
        0
    ]
    counts.failed = by_status.get(vector_stores_pb2.VECTOR_STORE_FILE_STATUS_FAILED, (0, 0))[0]
    counts.cancelled = by_status.get(vector_stores_pb2.VECTOR_STORE_FILE_STATUS_CANCELLED, (0, 0))[
        0
    ]
    counts.total = sum(n for n, _ in by_status.values())
    store.usage_bytes = sum(used for _, used in by_status.values())
    if store.status != vector_stores_pb2.VECTOR_STORE_STATUS_EXPIRED:
        store.status = (
            vector_stores_pb2.VECTOR_STORE_STATUS_IN_PROGRESS
            if counts.in_progress
            else vector_stores_pb2.VECTOR_STORE_STATUS_COMPLETED
        )
    conn.execute(
        _STORES.update()
        .where(_STORES.c.id == store.id, *_where(_STORES))
        .values(body=store.SerializeToString())
    )


def columns(f: VectorStoreFile) -> dict[str, object]:
    return {
        "id": f.id,
        "vector_store_id": f.vector_store_id,
        "status": int(f.status),
        "usage_bytes": f.usage_bytes,
        "created_at": f.created_at,
        "batch_id": f.batch_id,
    }


def _existing(conn: Connection, vector_store_id: str, file_ids: Sequence[str]) -> dict[str, bytes]:
    stmt = select(_FILES.c.id, _FILES.c.body).where(
        _FILES.c.vector_store_id == vector_store_id,
        _FILES.c.id.in_(list(file_ids)),
        *_where(_FILES),
    )
    return {str(file_id): bytes(body) for file_id, body in conn.execute(stmt)}


def add(
    conn: Connection, vector_store_id: str, files: Sequence[VectorStoreFile]
) -> list[VectorStoreFile] | None:
    """Add the files the store does not hold yet; each file as stored. None: no such store."""
    store = lock_store(conn, vector_store_id)
    if store is None:
        return None
    existing = _existing(conn, vector_store_id, [f.id for f in files])
    result: list[VectorStoreFile] = []
    new_rows: list[dict[str, object]] = []
    added: list[VectorStoreFile] = []
    newest = conn.execute(
        select(func.max(_FILES.c.created_at)).where(
            _FILES.c.vector_store_id == vector_store_id, *_where(_FILES)
        )
    ).scalar()
    for f in files:
        if f.id in existing:
            result.append(VectorStoreFile.FromString(existing[f.id]))
            continue
        if newest is not None and f.created_at < newest:
            f.created_at = int(newest)
        newest = f.created_at
        existing[f.id] = f.SerializeToString()
        new_rows.append(sql_scope.stamp({**columns(f), "body": existing[f.id]}))
        added.append(f)
        result.append(f)
    if new_rows:
        conn.execute(_FILES.insert(), new_rows)
        sql_file_attributes.add(conn, added)
        recount(conn, store)
    return result


def delete(conn: Connection, vector_store_id: str, file_id: str) -> bool:
    """Remove a file, its attributes and its chunks from a store; False if the store does not
    hold it."""
    store = lock_store(conn, vector_store_id)
    if store is None:
        return False
    gone = conn.execute(
        _FILES.delete().where(
            _FILES.c.vector_store_id == vector_store_id, _FILES.c.id == file_id, *_where(_FILES)
        )
    ).rowcount
    if not gone:
        return False
    sql_file_attributes.delete_file(conn, vector_store_id, file_id)
    sql_chunks.delete_file(conn, vector_store_id, file_id)
    recount(conn, store)
    return True


def remove_file(conn: Connection, file_id: str) -> None:
    """Take a file out of every store that holds it, as the file itself is deleted: its rows
    and chunks go and each store is recounted (the stores locked in ID order)."""
    stmt = select(_FILES.c.vector_store_id).where(_FILES.c.id == file_id, *_where(_FILES))
    for vector_store_id in sorted({str(i) for i in conn.execute(stmt).scalars()}):
        delete(conn, vector_store_id, file_id)


def delete_store(conn: Connection, vector_store_id: str) -> None:
    """Drop every file row, attribute and chunk of a store (as the store itself is deleted)."""
    conn.execute(
        _FILES.delete().where(_FILES.c.vector_store_id == vector_store_id, *_where(_FILES))
    )
    sql_file_attributes.delete_store(conn, vector_store_id)
    sql_chunks.delete_store(conn, vector_store_id)


def _free(now_ms: int) -> ColumnElement[bool]:
    """Files any core may claim at `now_ms`: in progress, their lease run out."""
    return and_(_FILES.c.status == _IN_PROGRESS, _FILES.c.lease_expires_at_ms < now_ms)


def claimable(conn: Connection, now_ms: int) -> bool:
    """Whether `claim` would take a file now: at most one entry of the (status, lease) index."""
    return conn.execute(select(_FILES.c.seq).where(_free(now_ms)).limit(1)).first() is not None


def claim(
    conn: Connection, owner: str, now_ms: int, expires_at_ms: int, limit: int
) -> list[VectorStoreFile]:
    """Take up to `limit` in_progress files whose lease ran out, oldest first."""
    stmt = (
        select(_FILES.c.seq)
        .where(_free(now_ms))
        .order_by(_FILES.c.seq.asc())
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    seqs = list(conn.execute(stmt).scalars())
    if not seqs:
        return []
    bodies = conn.execute(
        _FILES.update()
        .where(_FILES.c.seq.in_(seqs), _free(now_ms))
        .values(claimed_by=owner, lease_expires_at_ms=expires_at_ms)
        .returning(_FILES.c.body)
    ).scalars()
    return [VectorStoreFile.FromString(body) for body in bodies]


def renew(conn: Connection, owner: str, expires_at_ms: int) -> None:
    """Extend every lease `owner` holds on an in_progress file."""
    conn.execute(
        _FILES.update()
        .where(_FILES.c.claimed_by == owner, _FILES.c.status == _IN_PROGRESS)
        .values(lease_expires_at_ms=expires_at_ms)
    )


def release(conn: Connection, owner: str) -> None:
    """Let any core claim `owner`'s files at once (it is stopping); files of a cancelled
    batch that it held stop counting as being worked on."""
    conn.execute(
        _FILES.update()
        .where(_FILES.c.claimed_by == owner)
        .values(claimed_by="", lease_expires_at_ms=0)
    )


def finish(
    conn: Connection,
    owner: str,
    outcome: VectorStoreFile,
    chunks: Sequence[NewChunk],
    created_at: int,
    vectors: ChunkVectors | None = None,
) -> bool:
    """End an ingestion `owner` holds: its chunks (and their `vectors`) replace any earlier
    attempt's, and the file takes `outcome`'s status, usage and error (its other fields as
    stored now, so attributes changed meanwhile stay). False, and nothing of `outcome` written,
    if the file is gone or not held.

    Ending the file is conditional on it being `in_progress` and held by `owner`, in the
    UPDATE itself, so it does not rest on the locks taken before: a file whose batch was
    cancelled while `owner` worked on it is not completed after all, and its chunks are not
    stored; `owner` only lets go of it, so that the batch can end `cancelled`."""
    store = lock_store(conn, outcome.vector_store_id)
    if store is None:
        return False
    held = (
        _FILES.c.vector_store_id == outcome.vector_store_id,
        _FILES.c.id == outcome.id,
        _FILES.c.claimed_by == owner,
        *_where(_FILES),
    )
    row = conn.execute(
        select(_FILES.c.seq, _FILES.c.body)
        .where(*held, _FILES.c.status == _IN_PROGRESS)
        .with_for_update()
    ).first()
    if row is None:
        conn.execute(_FILES.update().where(*held).values(claimed_by="", lease_expires_at_ms=0))
        return False
    seq, body = row
    current = VectorStoreFile.FromString(body)
    current.status = outcome.status
    current.usage_bytes = outcome.usage_bytes
    if outcome.HasField("last_error"):
        current.last_error.CopyFrom(outcome.last_error)
    ended = conn.execute(
        _FILES.update()
        .where(_FILES.c.seq == seq, *held, _FILES.c.status == _IN_PROGRESS)
        .values(
            status=int(current.status),
            usage_bytes=current.usage_bytes,
            body=current.SerializeToString(),
            claimed_by="",
            lease_expires_at_ms=0,
        )
    ).rowcount
    if not ended:
        return False
    sql_chunks.delete_file(conn, current.vector_store_id, current.id)
    # An expired store keeps no chunks (the sweep dropped them): none are added after it.
    if store.status != vector_stores_pb2.VECTOR_STORE_STATUS_EXPIRED:
        chunk_ids = sql_chunks.add(conn, current.vector_store_id, current.id, chunks, created_at)
        sql_vectors.file_chunks_added(conn, current.vector_store_id, chunk_ids, vectors)
    recount(conn, store)
    return True
