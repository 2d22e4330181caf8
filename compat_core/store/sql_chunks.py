"""The chunks of vector store files and their lexical (full-text) search.

The chunks table is the same on both databases; the full-text index is not (see migration
0006), so the search is the one function here that asks which dialect it runs on. A query
reaches either database only as `compat_core.retrieval.lexical` made it: words as quoted
literals, so no user text is ever parsed as query syntax. Both searches rank and cut to
`limit` in the database, so a search never carries more rows out than it returns; and both
count only chunks of files their store holds and whose attributes pass the search's filter
(`sql_filters`), so neither a deleted file nor a filter leaves a search short of `limit`.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Connection,
    Delete,
    Float,
    Insert,
    Select,
    Subquery,
    and_,
    bindparam,
    column,
    delete,
    func,
    insert,
    literal_column,
    select,
    table,
)
from sqlalchemy.dialects.postgresql import TSVECTOR

from compat_core.retrieval import lexical
from compat_core.retrieval.filters import Filter
from compat_core.store import prepared, schema, sql_filters
from compat_core.store.base import ChunkMatch, NewChunk
from compat_core.v1 import files_pb2, vector_stores_pb2

_CHUNKS = schema.vector_store_chunks
Scale = Literal["bm25", "ts_rank", "cosine"]
_STORE_FILES = schema.vector_store_files
VectorStoreFile = vector_stores_pb2.VectorStoreFile
Attribute = vector_stores_pb2.VectorStoreFileAttribute


@functools.cache
def _insert_stmt() -> Insert:
    return insert(_CHUNKS)


@functools.cache
def _ids_stmt() -> Select[Any]:
    c = _CHUNKS.c
    return (
        select(c.id)
        .where(c.vector_store_id == bindparam("vector_store_id"), c.file_id == bindparam("file_id"))
        .order_by(c.chunk_index)
    )


@functools.cache
def _delete_file_stmt() -> Delete:
    c = _CHUNKS.c
    return delete(_CHUNKS).where(
        c.vector_store_id == bindparam("vector_store_id"), c.file_id == bindparam("file_id")
    )


@functools.cache
def _delete_store_stmt() -> Delete:
    return delete(_CHUNKS).where(_CHUNKS.c.vector_store_id == bindparam("vector_store_id"))


def add(
    conn: Connection,
    vector_store_id: str,
    file_id: str,
    chunks: Sequence[NewChunk],
    created_at: int,
) -> list[int]:
    if not chunks:
        return []
    rows = [
        {
            "vector_store_id": vector_store_id,
            "file_id": file_id,
            "chunk_index": chunk.chunk_index,
            # PostgreSQL refuses NUL in text; extraction drops it already, and this keeps a
            # caller that did not from failing a whole file (and both stores storing alike).
            "text": chunk.text.replace("\x00", ""),
            "token_count": chunk.token_count,
            "created_at": created_at,
        }
        for chunk in chunks
    ]
    prepared.insert(conn, _insert_stmt(), rows)
    params = {"vector_store_id": vector_store_id, "file_id": file_id}
    return [int(i) for i in prepared.scalars(conn, _ids_stmt(), params)]


def delete_file(conn: Connection, vector_store_id: str, file_id: str) -> int:
    params = {"vector_store_id": vector_store_id, "file_id": file_id}
    return prepared.execute(conn, _delete_file_stmt(), params)


def delete_store(conn: Connection, vector_store_id: str) -> int:
    return prepared.execute(conn, _delete_store_stmt(), {"vector_store_id": vector_store_id})


def _in_scope(stmt: Select[Any], filters: Filter | None) -> Select[Any]:
    """`stmt` over the chunks, kept to those of files their store holds now that pass
    `filters`: the join drops chunks a deletion left behind before they are ranked or counted,
    and the filter runs in the same query, so `limit` is spent only on chunks that are
    answered."""
    c = _CHUNKS.c
    scoped = stmt.join(_STORE_FILES, _in_its_store()).where(
        c.vector_store_id.in_(bindparam("vector_store_ids", expanding=True))
    )
    if filters is None:
        return scoped
    return scoped.where(sql_filters.clause(filters, c.vector_store_id, c.file_id))


def _in_its_store() -> ColumnElement[bool]:
    """The join of a chunk with its file's row in the store."""
    files, c = _STORE_FILES.c, _CHUNKS.c
    return and_(files.vector_store_id == c.vector_store_id, files.id == c.file_id)


def _answered(ranked: Subquery, best_first: ColumnElement[Any]) -> Select[Any]:
    """What a search answers for the ranked chunk IDs and scores of `ranked`: each chunk with
    its file's entry in the store and in the Files API (whose name is "" once deleted there),
    in one query. Only `limit` rows come back out of `ranked`, so texts and bodies are read
    for those alone, not carried through the ranking of every match."""
    c = _CHUNKS.c
    return (
        select(
            c.id,
            c.vector_store_id,
            c.file_id,
            c.chunk_index,
            c.text,
            ranked.c.score,
            _STORE_FILES.c.body,
            schema.files.c.body,
        )
        .select_from(
            ranked.join(_CHUNKS, c.id == ranked.c.id)
            .join(_STORE_FILES, _in_its_store())
            .outerjoin(schema.files, schema.files.c.id == c.file_id)
        )
        .order_by(best_first, c.id)
    )


def _sqlite_ranked(filters: Filter | None) -> Select[Any]:
    fts = table(schema.CHUNKS_FTS, column("rowid"))
    fts_table: ColumnElement[Any] = literal_column(schema.CHUNKS_FTS)
    # bm25: more negative is a better match.
    score = func.bm25(fts_table, type_=Float).label("score")
    return (
        _in_scope(
            select(_CHUNKS.c.id, score).select_from(fts).join(_CHUNKS, _CHUNKS.c.id == fts.c.rowid),
            filters,
        )
        .where(fts_table.op("MATCH")(bindparam("match")))
        .order_by(score.asc(), _CHUNKS.c.id)
        .limit(bindparam("limit"))
    )


def _postgres_ranked(filters: Filter | None) -> Select[Any]:
    vector = column(schema.CHUNKS_TEXT_SEARCH, TSVECTOR)
    query = lexical.or_tsquery(bindparam("query_text"))
    score = func.ts_rank(vector, query, type_=Float).label("score")
    return (
        _in_scope(select(_CHUNKS.c.id, score).select_from(_CHUNKS), filters)
        .where(vector.op("@@")(query))
        .order_by(score.desc(), _CHUNKS.c.id)
        .limit(bindparam("limit"))
    )


def _search_stmt(dialect: str, filters: Filter | None) -> Select[Any]:
    if dialect == "sqlite":
        ranked = _sqlite_ranked(filters).subquery("ranked")
        return _answered(ranked, ranked.c.score.asc())
    ranked = _postgres_ranked(filters).subquery("ranked")
    return _answered(ranked, ranked.c.score.desc())


@functools.cache
def _unfiltered_stmt(dialect: str) -> Select[Any]:
    """Unfiltered searches, the common case, reuse one statement per dialect."""
    return _search_stmt(dialect, None)


def search_lexical(
    conn: Connection,
    vector_store_ids: Collection[str],
    query: str,
    limit: int,
    filters: Filter | None = None,
) -> list[ChunkMatch]:
    if not vector_store_ids or limit <= 0:
        return []
    params: dict[str, Any] = {"vector_store_ids": list(vector_store_ids), "limit": limit}
    dialect = conn.dialect.name
    scale: Scale
    if dialect == "sqlite":
        scale = "bm25"
        match = lexical.fts5_match(query)
        if match is None:
            return []
        params["match"] = match
    else:
        scale = "ts_rank"
        query_text = lexical.postgres_query_text(query)
        if query_text is None:
            return []
        params["query_text"] = query_text
    stmt = _unfiltered_stmt(dialect) if filters is None else _search_stmt(dialect, filters)
    return _as_matches(conn.execute(stmt, params), scale)


def _as_matches(rows: Iterable[Any], scale: Scale) -> list[ChunkMatch]:
    """Rows of `_answered` as matches, each file's bodies parsed once."""
    files: dict[tuple[str, str], tuple[str, Mapping[str, Attribute]]] = {}
    found: list[ChunkMatch] = []
    for i, store_id, file_id, index, text, score, entry, upload in rows:
        key = (store_id, file_id)
        if key not in files:
            files[key] = (
                "" if upload is None else files_pb2.File.FromString(upload).filename,
                dict(VectorStoreFile.FromString(entry).attributes),
            )
        found.append(
            ChunkMatch(
                int(i), store_id, file_id, int(index), text, float(score), scale, *files[key]
            )
        )
    return found


def nearest_answered(
    conn: Connection,
    vector_store_ids: Collection[str],
    cosine: Mapping[int, float],
    filters: Filter | None,
) -> list[ChunkMatch]:
    """The chunks a dense search found nearest (`cosine` by chunk ID) as matches, best first:
    the same scope as a lexical search (files their store holds now, whose attributes pass
    `filters`, in the database), read in one query."""
    if not cosine:
        return []
    c = _CHUNKS.c
    stmt = (
        _in_scope(
            select(
                c.id,
                c.vector_store_id,
                c.file_id,
                c.chunk_index,
                c.text,
                _STORE_FILES.c.body,
                schema.files.c.body,
            ).select_from(_CHUNKS),
            filters,
        )
        .outerjoin(schema.files, schema.files.c.id == c.file_id)
        .where(c.id.in_(bindparam("chunk_ids", expanding=True)))
    )
    params = {"vector_store_ids": list(vector_store_ids), "chunk_ids": list(cosine)}
    rows = [
        (i, store_id, file_id, index, text, cosine[int(i)], entry, upload)
        for i, store_id, file_id, index, text, entry, upload in conn.execute(stmt, params)
    ]
    rows.sort(key=lambda row: (-row[5], row[0]))
    return _as_matches(rows, "cosine")
