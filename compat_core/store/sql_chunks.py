"""The chunks of vector store files and their lexical (full-text) search.

The chunks table is the same on both databases; the full-text index is not (see migration
0006), so the search is the one function here that asks which dialect it runs on. A query
reaches either database only as `compat_core.retrieval.lexical` made it: words as quoted
literals, so no user text is ever parsed as query syntax. Both searches rank and cut to
`limit` in the database, so a search never carries more rows out than it returns.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Connection,
    Delete,
    Float,
    Insert,
    Select,
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
from compat_core.store import prepared, schema
from compat_core.store.base import ChunkMatch, NewChunk

_CHUNKS = schema.vector_store_chunks


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


def _columns() -> tuple[Any, ...]:
    c = _CHUNKS.c
    return (c.id, c.vector_store_id, c.file_id, c.chunk_index, c.text)


def _store_filter() -> Any:
    return _CHUNKS.c.vector_store_id.in_(bindparam("vector_store_ids", expanding=True))


@functools.cache
def _sqlite_search_stmt() -> Select[Any]:
    fts = table(schema.CHUNKS_FTS, column("rowid"))
    fts_table: ColumnElement[Any] = literal_column(schema.CHUNKS_FTS)
    # bm25: more negative is a better match.
    score = func.bm25(fts_table, type_=Float).label("score")
    return (
        select(*_columns(), score)
        .select_from(fts.join(_CHUNKS, _CHUNKS.c.id == fts.c.rowid))
        .where(fts_table.op("MATCH")(bindparam("match")), _store_filter())
        .order_by(score.asc(), _CHUNKS.c.id)
        .limit(bindparam("limit"))
    )


@functools.cache
def _postgres_search_stmt() -> Select[Any]:
    vector = column(schema.CHUNKS_TEXT_SEARCH, TSVECTOR)
    query = lexical.or_tsquery(bindparam("query_text"))
    score = func.ts_rank(vector, query, type_=Float).label("score")
    return (
        select(*_columns(), score)
        .where(vector.op("@@")(query), _store_filter())
        .order_by(score.desc(), _CHUNKS.c.id)
        .limit(bindparam("limit"))
    )


def search_lexical(
    conn: Connection, vector_store_ids: Collection[str], query: str, limit: int
) -> list[ChunkMatch]:
    if not vector_store_ids or limit <= 0:
        return []
    params: dict[str, Any] = {"vector_store_ids": list(vector_store_ids), "limit": limit}
    scale: Literal["bm25", "ts_rank"]
    if conn.dialect.name == "sqlite":
        scale = "bm25"
        match = lexical.fts5_match(query)
        if match is None:
            return []
        stmt, params["match"] = _sqlite_search_stmt(), match
    else:
        scale = "ts_rank"
        query_text = lexical.postgres_query_text(query)
        if query_text is None:
            return []
        stmt, params["query_text"] = _postgres_search_stmt(), query_text
    return [
        ChunkMatch(int(i), store_id, file_id, int(index), text, float(score), scale)
        for i, store_id, file_id, index, text, score in conn.execute(stmt, params)
    ]
