"""The dense vectors of vector store chunks: which model each store's vectors are of, writing
them, and the durable re-embedding of stores whose vectors are missing or of another model.

Every vector of a store is of the model its `vector_store_embeddings` row names, so a query
embedded with that model compares with all of them. A write of vectors of another model (the
configured model changed) first drops all of the store's vectors and records the new model:
a store never mixes two models' vectors, and its chunks without vectors are still found by
lexical search until the re-embedding (`claim`, `missing`, `add`, `finish`) gives them new
ones. That work is durable because it is nothing but the database's state (a store whose row
is not `complete` or names another model): a core that dies half-way leaves the rest for the
next claim once its lease runs out, and vectors already written stay.

Writes lock the store's `vector_stores` row before this row, as every write to a store's files
does (`sql_vector_files`), so that two of them always lock in the same order. The vectors'
own table is each database's (`pg_vectors` on PostgreSQL; a BLOB table searched in the core on
SQLite, `vector_cache`); this module only touches what both have in common.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Connection, and_, column, exists, insert, or_, select, table, update
from sqlalchemy.dialects import postgresql, sqlite

# `sql_vector_files` calls this module inside its own transactions, and this one calls its
# `lock_store`: a module import (not a name import) lets the two refer to each other.
from compat_core.retrieval.filters import Filter
from compat_core.store import pg_vectors, schema, sql_chunks, sql_vector_files, vector_cache
from compat_core.store.base import ChunkMatch, ChunkVectors, StoredChunk

_RECORDS = schema.vector_store_embeddings
FILTERED_DEPTH = 8
"""How many times deeper a filtered dense search asks the index (see `search`)."""
_CHUNKS = schema.vector_store_chunks
_VECTORS = table(schema.CHUNK_VECTORS, column("chunk_id"), column("vector_store_id"))


def _postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def enable(conn: Connection) -> None:
    """Make the database hold vectors (PostgreSQL: see `pg_vectors.enable`), then give every
    store with chunks a row, and mark those with a chunk that has no vector incomplete: they
    were filled while no model was configured, or by a core that had none."""
    if _postgres(conn):
        pg_vectors.enable(conn)
    with_chunks = select(_CHUNKS.c.vector_store_id).distinct()
    known = select(_RECORDS.c.vector_store_id)
    # Only stores that still exist: a chunk may outlive its store for the moment a delete
    # takes, and the row's foreign key would refuse it.
    stores = select(schema.vector_stores.c.id).where(
        schema.vector_stores.c.id.in_(with_chunks), schema.vector_stores.c.id.not_in(known)
    )
    conn.execute(insert(_RECORDS).from_select(["vector_store_id"], stores))
    lacking = select(_CHUNKS.c.vector_store_id).where(~_has_vector(_CHUNKS.c.id))
    conn.execute(
        update(_RECORDS)
        .where(_RECORDS.c.complete.is_(True), _RECORDS.c.vector_store_id.in_(lacking))
        .values(complete=False)
    )


def ensure_dimension(conn: Connection, dimensions: int) -> None:
    """Make vectors of this length searchable by an index (PostgreSQL); a no-op on SQLite.
    Its own transaction: see `pg_vectors.ensure_index`."""
    if _postgres(conn):
        pg_vectors.ensure_index(conn, dimensions)


def _has_vector(chunk_id: Any) -> Any:
    return exists().where(_VECTORS.c.chunk_id == chunk_id)


def _record(conn: Connection, vector_store_id: str) -> Any:
    """The store's row, created if missing, locked until the transaction ends."""
    values = {"vector_store_id": vector_store_id}
    upsert = (
        postgresql.insert(_RECORDS).values(values).on_conflict_do_nothing()
        if _postgres(conn)
        else sqlite.insert(_RECORDS).values(values).on_conflict_do_nothing()
    )
    conn.execute(upsert)
    return conn.execute(
        select(_RECORDS).where(_RECORDS.c.vector_store_id == vector_store_id).with_for_update()
    ).one()


def _switch(conn: Connection, vector_store_id: str, model: str, dimensions: int) -> None:
    """Drop the store's vectors and record that its vectors are now of `model`."""
    conn.execute(_VECTORS.delete().where(_VECTORS.c.vector_store_id == vector_store_id))
    conn.execute(
        update(_RECORDS)
        .where(_RECORDS.c.vector_store_id == vector_store_id)
        .values(model=model, dimensions=dimensions, complete=False)
    )


def _insert(
    conn: Connection, vector_store_id: str, chunk_ids: Sequence[int], vectors: ChunkVectors
) -> None:
    if not chunk_ids:
        return
    if _postgres(conn):
        pg_vectors.insert(conn, vector_store_id, chunk_ids, vectors.vectors)
    else:
        vector_cache.insert(conn, vector_store_id, chunk_ids, vectors.vectors)


def _align(conn: Connection, vector_store_id: str, vectors: ChunkVectors) -> None:
    """Make the (locked) store's row agree with `vectors`: a first dimension is recorded, and
    another model or dimension switches the store to these."""
    row = _record(conn, vector_store_id)
    if row.model == vectors.model and row.dimensions == vectors.dimensions:
        return
    if row.model == vectors.model and row.dimensions == 0:
        conn.execute(
            update(_RECORDS)
            .where(_RECORDS.c.vector_store_id == vector_store_id)
            .values(dimensions=vectors.dimensions)
        )
        return
    _switch(conn, vector_store_id, vectors.model, vectors.dimensions)


def file_chunks_added(
    conn: Connection, vector_store_id: str, chunk_ids: Sequence[int], vectors: ChunkVectors | None
) -> None:
    """After ingestion stored a file's chunks (the store's row already locked): their vectors,
    or, without any, the store marked incomplete so that a core with a model embeds them."""
    if not chunk_ids:
        return
    if vectors is None:
        conn.execute(
            update(_RECORDS)
            .where(_RECORDS.c.vector_store_id == vector_store_id)
            .values(complete=False)
        )
        return
    if len(vectors.vectors) != len(chunk_ids):
        raise ValueError(f"{len(vectors.vectors)} vectors for {len(chunk_ids)} chunks")
    _align(conn, vector_store_id, vectors)
    _insert(conn, vector_store_id, chunk_ids, vectors)


def has_vectors(conn: Connection, vector_store_ids: Collection[str], model: str) -> bool:
    if not vector_store_ids:
        return False
    return bool(conn.execute(select(_ready(vector_store_ids, model).exists())).scalar())


def _ready(vector_store_ids: Collection[str], model: str) -> Any:
    r = _RECORDS.c
    return select(r.vector_store_id, r.dimensions).where(
        r.vector_store_id.in_(list(vector_store_ids)), r.model == model, r.dimensions > 0
    )


def search(
    conn: Connection,
    cache: vector_cache.VectorCache,
    vector_store_ids: Collection[str],
    model: str,
    vector: Sequence[float],
    limit: int,
    filters: Filter | None = None,
) -> list[ChunkMatch]:
    """The nearest chunks, answered in the scope of a lexical search (`sql_chunks`). With
    `filters` the index is asked for `FILTERED_DEPTH` times as many neighbours, which the
    database then filters: the nearest-neighbour step knows no attributes, so a filter that
    keeps few files can leave fewer than `limit` (the lexical list, filtered before its limit,
    still finds those files' chunks)."""
    if not vector_store_ids or limit <= 0:
        return []
    ready = [
        str(store_id)
        for store_id, dimensions in conn.execute(_ready(vector_store_ids, model))
        if dimensions == len(vector)
    ]
    if not ready:
        return []
    depth = limit if filters is None else limit * FILTERED_DEPTH
    if _postgres(conn):
        cosine = pg_vectors.search(conn, ready, vector, depth)
    else:
        cosine = cache.search(conn, ready, vector, depth)
    return sql_chunks.nearest_answered(conn, cosine, filters)[:limit]


def _needs_work(model: str, now_ms: int) -> Any:
    """A store whose vectors are not all of `model` and whose lease ran out."""
    r = _RECORDS.c
    return and_(or_(r.model != model, r.complete.is_(False)), r.lease_expires_at_ms < now_ms)


def claimable(conn: Connection, model: str, now_ms: int) -> bool:
    """Whether `claim` would take a store now."""
    r = _RECORDS.c
    found = conn.execute(select(r.vector_store_id).where(_needs_work(model, now_ms)).limit(1))
    return found.first() is not None


def claim(conn: Connection, owner: str, model: str, now_ms: int, expires_at_ms: int) -> str | None:
    """Lease one store that needs vectors of `model` (see `Store.claim_reindex`)."""
    r = _RECORDS.c
    needs_work = _needs_work(model, now_ms)
    candidate = conn.execute(
        select(r.vector_store_id).where(needs_work).order_by(r.vector_store_id).limit(1)
    ).scalar()
    if candidate is None:
        return None
    # The store's row first (the lock order of every write to a store), then the row again,
    # now locked: another core may have claimed it meanwhile.
    if sql_vector_files.lock_store(conn, candidate) is None:
        return None
    row = conn.execute(
        select(_RECORDS).where(r.vector_store_id == candidate, needs_work).with_for_update()
    ).first()
    if row is None:
        return None
    if row.model != model:
        _switch(conn, candidate, model, 0)
    conn.execute(
        update(_RECORDS)
        .where(r.vector_store_id == candidate)
        .values(claimed_by=owner, lease_expires_at_ms=expires_at_ms)
    )
    return str(candidate)


def missing(conn: Connection, vector_store_id: str, limit: int) -> list[StoredChunk]:
    c = _CHUNKS.c
    stmt = (
        select(c.id, c.text)
        .where(c.vector_store_id == vector_store_id, ~_has_vector(c.id))
        .order_by(c.id)
        .limit(limit)
    )
    return [StoredChunk(int(i), text) for i, text in conn.execute(stmt)]


def _held(conn: Connection, owner: str, vector_store_id: str, model: str) -> bool:
    """Whether `owner` holds the store's lease for `model`, the rows locked (store first)."""
    if sql_vector_files.lock_store(conn, vector_store_id) is None:
        return False
    r = _RECORDS.c
    row = conn.execute(
        select(r.vector_store_id)
        .where(r.vector_store_id == vector_store_id, r.claimed_by == owner, r.model == model)
        .with_for_update()
    ).first()
    return row is not None


def add(
    conn: Connection,
    owner: str,
    vector_store_id: str,
    chunk_ids: Sequence[int],
    vectors: ChunkVectors,
) -> bool:
    if len(vectors.vectors) != len(chunk_ids):
        raise ValueError(f"{len(vectors.vectors)} vectors for {len(chunk_ids)} chunks")
    if not _held(conn, owner, vector_store_id, vectors.model):
        return False
    _align(conn, vector_store_id, vectors)
    # Chunks deleted meanwhile (their file left the store) or embedded by ingestion meanwhile.
    c = _CHUNKS.c
    wanted = conn.execute(
        select(c.id).where(
            c.vector_store_id == vector_store_id,
            c.id.in_(list(chunk_ids)),
            ~_has_vector(c.id),
        )
    ).scalars()
    keep = {int(i) for i in wanted}
    chosen = [(i, v) for i, v in zip(chunk_ids, vectors.vectors, strict=True) if i in keep]
    _insert(
        conn,
        vector_store_id,
        [i for i, _ in chosen],
        ChunkVectors(vectors.model, [v for _, v in chosen]),
    )
    return True


def finish(conn: Connection, owner: str, vector_store_id: str, model: str) -> None:
    r = _RECORDS.c
    values: dict[str, Any] = {"claimed_by": "", "lease_expires_at_ms": 0}
    if _held(conn, owner, vector_store_id, model) and not missing(conn, vector_store_id, 1):
        values["complete"] = True
    conn.execute(
        update(_RECORDS)
        .where(r.vector_store_id == vector_store_id, r.claimed_by == owner)
        .values(values)
    )


def renew(conn: Connection, owner: str, expires_at_ms: int) -> None:
    conn.execute(
        update(_RECORDS)
        .where(_RECORDS.c.claimed_by == owner)
        .values(lease_expires_at_ms=expires_at_ms)
    )


def release(conn: Connection, owner: str) -> None:
    conn.execute(
        update(_RECORDS)
        .where(_RECORDS.c.claimed_by == owner)
        .values(claimed_by="", lease_expires_at_ms=0)
    )
