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
from typing import Any, Final, Literal

from sqlalchemy import (
    ColumnElement,
    Connection,
    Delete,
    Float,
    Insert,
    Select,
    Subquery,
    Text,
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
from sqlalchemy.dialects.postgresql import ARRAY, REAL, TSQUERY, TSVECTOR

from compat_core.retrieval import lexical, lexical_plan
from compat_core.retrieval.filters import Filter
from compat_core.store import prepared, schema, sql_filters, sql_scope, sql_term_counts
from compat_core.store.base import ChunkMatch, NewChunk
from compat_core.v1 import files_pb2, vector_stores_pb2

_CHUNKS = schema.vector_store_chunks
_TEXTS = ARRAY(Text)
_WEIGHTS = ARRAY(REAL)
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
    """The join of a chunk with its file's row in the store, a row of the scope's project
    (chunks carry none of their own: the searched stores were found in the project first, and
    this keeps the search itself to the project as well)."""
    files, c = _STORE_FILES.c, _CHUNKS.c
    return and_(
        files.vector_store_id == c.vector_store_id,
        files.id == c.file_id,
        *sql_scope.where(_STORE_FILES),
    )


def _its_upload() -> ColumnElement[bool]:
    """The join of a chunk with its file in the Files API, in the scope's project."""
    files = schema.files
    return and_(files.c.id == _CHUNKS.c.file_id, *sql_scope.where(files))


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
            .outerjoin(schema.files, _its_upload())
        )
        .order_by(best_first, c.id)
    )


def _sqlite_step(filters: Filter | None) -> Select[Any]:
    """A plan step on SQLite: the first `budget` in-scope chunks matching `match` (in rowid
    order, which FTS5 reads in and so stops at `budget`), each scored by bm25 over that same
    expression, which names every word of the query (see `_sqlite_match`); the best `limit`."""
    fts = table(schema.CHUNKS_FTS, column("rowid"))
    fts_table: ColumnElement[Any] = literal_column(schema.CHUNKS_FTS)
    # bm25: more negative is a better match.
    score = func.bm25(fts_table, type_=Float).label("score")
    candidates = (
        _in_scope(
            select(_CHUNKS.c.id, score).select_from(fts).join(_CHUNKS, _CHUNKS.c.id == fts.c.rowid),
            filters,
        )
        .where(fts_table.op("MATCH")(bindparam("match")))
        .order_by(fts.c.rowid)
        .limit(bindparam("budget"))
    ).subquery("candidates")
    top = (
        select(candidates.c.id, candidates.c.score)
        .order_by(candidates.c.score.asc(), candidates.c.id)
        .limit(bindparam("limit"))
        .subquery("ranked")
    )
    return _answered(top, top.c.score.asc())


def _postgres_step(filters: Filter | None) -> Select[Any]:
    """A plan step on PostgreSQL: the first `budget` in-scope chunks whose vector matches
    `match`, each scored by `ts_rank` over every word of the query (`rank_query`) with the
    query's words relabelled by IDF class (A to C; the rest stay D) and `weights` giving each
    label its class's IDF; the best `limit`. See `_postgres_params`."""
    vector = column(schema.CHUNKS_TEXT_SEARCH, TSVECTOR)
    labelled: ColumnElement[Any] = vector
    for label in "ABC":
        labelled = func.setweight(
            labelled, literal_column(f"'{label}'"), bindparam(f"class_{label}", type_=_TEXTS)
        )
    rank = func.ts_rank(
        bindparam("weights", type_=_WEIGHTS),
        labelled,
        bindparam("rank_query", type_=Text).cast(TSQUERY),
        type_=Float,
    )
    score = (rank * bindparam("scale", type_=Float)).label("score")
    candidates = (
        _in_scope(select(_CHUNKS.c.id, score).select_from(_CHUNKS), filters)
        .where(vector.op("@@")(bindparam("match", type_=Text).cast(TSQUERY)))
        .limit(bindparam("budget"))
    ).subquery("candidates")
    top = (
        select(candidates.c.id, candidates.c.score)
        .order_by(candidates.c.score.desc(), candidates.c.id)
        .limit(bindparam("limit"))
        .subquery("ranked")
    )
    return _answered(top, top.c.score.desc())


def _step_stmt(dialect: str, filters: Filter | None) -> Select[Any]:
    return _sqlite_step(filters) if dialect == "sqlite" else _postgres_step(filters)


def _unfiltered_stmt(dialect: str) -> Select[Any]:
    """Unfiltered searches, the common case, reuse one statement per dialect (and scope)."""
    return _unfiltered_stmt_for(dialect, sql_scope.applies(_STORE_FILES))


@functools.cache
def _unfiltered_stmt_for(dialect: str, scoped: bool) -> Select[Any]:
    return _step_stmt(dialect, None)


def search_lexical(
    conn: Connection,
    vector_store_ids: Collection[str],
    query: str,
    limit: int,
    filters: Filter | None = None,
) -> list[ChunkMatch]:
    """The `limit` best chunks for `query`, by `lexical_plan`'s steps: each step ranks at most
    the store's budget of chunks (`lexical_plan.SQLITE_CANDIDATES`; on PostgreSQL
    `POSTGRES_CANDIDATES` for the rare words' step and `POSTGRES_COMMON_CANDIDATES` for the
    others; or `limit` if more, so that one step can fill it), and the next runs only while the
    search is short of `limit`."""
    if not vector_store_ids or limit <= 0:
        return []
    dialect = conn.dialect.name
    plan: Iterable[lexical_plan.Step]
    params: dict[str, Any]
    if dialect == "sqlite":
        scale: Scale = "bm25"
        budget = common = max(lexical_plan.SQLITE_CANDIDATES, limit)
        terms, total = sql_term_counts.sqlite_terms(conn, lexical.searched_words(query), budget)
        params = {}
    else:
        scale = "ts_rank"
        budget = max(lexical_plan.POSTGRES_CANDIDATES, limit)
        common = max(lexical_plan.POSTGRES_COMMON_CANDIDATES, limit)
        query_text = lexical.postgres_query_text(query)
        if query_text is None:
            return []
        # The word counts also keep the planner to the full-text index for the steps.
        terms, total = sql_term_counts.postgres_terms(conn, query_text, budget)
        if not terms:
            return []
        params = _postgres_params(terms, total)
    dfs = {term.key: term.df for term in terms}
    plan = lexical_plan.steps(
        terms,
        budget,
        lambda keys: lexical_plan.independent_count([dfs[k] for k in keys], total),
        common=common,
    )
    if not terms:
        return []
    params |= {"vector_store_ids": list(vector_store_ids), "limit": limit}
    stmt = _unfiltered_stmt(dialect) if filters is None else _step_stmt(dialect, filters)
    found: dict[int, ChunkMatch] = {}
    for step in plan:
        params["budget"] = lexical_plan.candidates(step, budget, common)
        if dialect == "sqlite":
            params["match"] = _sqlite_match(step, terms, total)
        else:
            params["match"] = (
                lexical.tsquery_all(step.required)
                if step.conjunctive
                else lexical.tsquery_any(step.required)
            )
        for match in _as_matches(conn.execute(stmt, params), scale):
            found.setdefault(match.chunk_id, match)
        if len(found) >= limit:
            break
    best = sorted(
        found.values(),
        key=lambda m: (m.raw_score if scale == "bm25" else -m.raw_score, m.chunk_id),
    )
    return best[:limit]


SCORING_READS: Final = 150_000
"""FTS5's bm25 reads every chunk of every word in the expression once per search (for the
word's IDF), about 0.09 µs a chunk: the words beyond the required ones that a SQLite search
scores with are the rarest that keep those reads under this many (about 14 ms)."""


def _sqlite_match(step: lexical_plan.Step, terms: Sequence[lexical_plan.Term], total: int) -> str:
    """The step's candidates as an FTS5 expression that also names the query's other words,
    so that bm25 scores each candidate on them: `(required) AND (required or other words)`,
    whose second half every candidate passes. bm25 counts the required words twice (once per
    mention), a tilt towards the words that chose the candidates. The other words are the
    rarest within `SCORING_READS`, leaving out words in half the chunks or more, which FTS5's
    IDF weighs at nothing."""
    required = (
        lexical.fts5_all(step.required) if step.conjunctive else lexical.fts5_any(step.required)
    )
    chosen = set(step.required)
    reads = sum(term.df for term in terms if term.key in chosen)
    others: list[str] = []
    for term in sorted(terms, key=lambda t: (t.df, t.key)):
        if term.key in chosen or 2 * term.df >= total or reads + term.df > SCORING_READS:
            continue
        others.append(term.key)
        reads += term.df
    if not others:
        return required
    return f"({required}) AND ({lexical.fts5_any([*step.required, *others])})"


# ts_rank's scale for a word matched once: (weight + weight/1 - weight) / (pi^2 / 6).
_TS_RANK_ONCE = 1.0 / 1.64493406685


def _postgres_params(terms: Sequence[lexical_plan.Term], total: int) -> dict[str, Any]:
    """The ranking's parameters: each IDF class's lexemes (labels A, B, C; the last class stays
    D, as every position of the vector is), the weights {D, C, B, A} as IDFs over the largest
    (ts_rank takes weights up to 1), and the scale that undoes that division and ts_rank's own
    (by the number of words, and `_TS_RANK_ONCE`), so that a chunk holding one word once scores
    about that word's IDF, as bm25 would score it."""
    classes = lexical_plan.weight_classes(terms, total)
    top = max(classes[0].idf, 1e-9)
    labels = ["A", "B", "C", "D"][: len(classes)]
    if len(classes) < 4:
        labels[-1] = "D"
    weights = {"A": 0.0, "B": 0.0, "C": 0.0, "D": 0.0}
    params: dict[str, Any] = {f"class_{label}": [] for label in "ABC"}
    for label, weight_class in zip(labels, classes, strict=True):
        weights[label] = min(weight_class.idf / top, 1.0)
        if label != "D":
            params[f"class_{label}"] = list(weight_class.keys)
    params["weights"] = [weights[label] for label in "DCBA"]
    params["rank_query"] = lexical.tsquery_any([term.key for term in terms])
    params["scale"] = len(terms) * top / _TS_RANK_ONCE
    return params


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
    conn: Connection, cosine: Mapping[int, float], filters: Filter | None
) -> list[ChunkMatch]:
    """The chunks a dense search found nearest (`cosine` by chunk ID) as
    matches, best first: the same scope as a lexical search (files their store holds now, whose
    attributes pass `filters`, in the database), read in one query."""
    if not cosine:
        return []
    c = _CHUNKS.c
    # The chunk IDs came from those stores' vectors, so no condition on the store is needed,
    # and one would mislead SQLite (no statistics) into reading the stores' whole chunk index
    # rather than looking the IDs up: 22 ms against 2.5 at 100,000 chunks.
    stmt = (
        select(
            c.id,
            c.vector_store_id,
            c.file_id,
            c.chunk_index,
            c.text,
            _STORE_FILES.c.body,
            schema.files.c.body,
        )
        .select_from(_CHUNKS)
        .join(_STORE_FILES, _in_its_store())
        .outerjoin(schema.files, _its_upload())
        .where(c.id.in_(bindparam("chunk_ids", expanding=True)))
    )
    if filters is not None:
        stmt = stmt.where(sql_filters.clause(filters, c.vector_store_id, c.file_id))
    params = {"chunk_ids": list(cosine)}
    rows = [
        (i, store_id, file_id, index, text, cosine[int(i)], entry, upload)
        for i, store_id, file_id, index, text, entry, upload in conn.execute(stmt, params)
    ]
    rows.sort(key=lambda row: (-row[5], row[0]))
    return _as_matches(rows, "cosine")
