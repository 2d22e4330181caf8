"""How many chunks hold each word of a query: what `retrieval.lexical_plan` needs to tell the
rare words, which choose the chunks a search ranks, from the common ones, and on PostgreSQL
what its ranking weighs the words by.

A count must stay cheap when the word is in most chunks of a big index, so no count is exact
past the plan's budget:
- SQLite: each word is matched alone, and counting stops at `budget + 1` chunks (FTS5 reads a
  word's chunks in ID order, so that is all it reads); past that, the count is estimated from
  how far into the index those chunks reach (see `sqlite_terms`).
- PostgreSQL: a GIN index cannot stop early (it gathers all of a word's chunks before the
  table is read), so a word held by many chunks is not counted but looked up in the statistics
  ANALYZE keeps of the column, `pg_stats.most_common_elems`: the lexemes in more than a few per
  cent of the rows, with the share of rows holding each. Only the other lexemes are counted
  (up to `budget + 1`), and so is a lexeme the statistics put within the budget: they may be
  older than the rows (ANALYZE ran when a store held a few chunks), and a word's count from
  them beside another's counted now would weigh the two on different bases. A conjunction is
  estimated as if its words were independent. Before the first ANALYZE (autovacuum runs one
  soon after a big ingest) every lexeme is counted,
  correct but slower. The chunk total is the table's `reltuples`, ANALYZE's figure too.
Both count over the database's whole index, not the searched stores: the index is one per
database, and it is what a search reads.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    TextClause,
    bindparam,
    column,
    func,
    literal_column,
    select,
    table,
    text,
)

from compat_core.retrieval import lexical, lexical_plan
from compat_core.store import prepared, schema


@functools.cache
def _sqlite_count_stmt() -> Select[Any]:
    fts = table(schema.CHUNKS_FTS, column("rowid"))
    fts_table: ColumnElement[Any] = literal_column(schema.CHUNKS_FTS)
    matched = (
        select(fts.c.rowid)
        .where(fts_table.op("MATCH")(bindparam("match")))
        .order_by(fts.c.rowid)
        .limit(bindparam("cap"))
        .subquery()
    )
    # Two columns; the prepared-statement helpers are typed for one (the row is read as such).
    return cast("Select[Any]", select(func.count(), func.max(matched.c.rowid)).select_from(matched))


@functools.cache
def _sqlite_span_stmt() -> Select[Any]:
    # Two subqueries: SQLite reads min() or max() of a key from its index only when each
    # stands alone; together they would scan the table.
    ids = schema.vector_store_chunks.c.id
    return select(select(func.min(ids)).scalar_subquery(), select(func.max(ids)).scalar_subquery())


def _sqlite_first(conn: Connection, match: str, budget: int) -> tuple[int, int]:
    """How many of the first `budget + 1` matches there are, and the chunk ID of the last."""
    found = prepared.first(conn, _sqlite_count_stmt(), {"match": match, "cap": budget + 1})
    if found is None or not found[0]:
        return 0, 0
    return int(found[0]), int(found[1])


def sqlite_terms(
    conn: Connection, words: Sequence[str], budget: int
) -> tuple[list[lexical_plan.Term], int]:
    """The words with their counts, and the chunks in the index (estimated by the span of
    chunk IDs, which only deleted chunks leave holes in).

    A word in more than `budget` chunks is counted no further: its count is estimated from how
    far into the index (in chunk ID order, the order FTS5 reads) its first `budget + 1` chunks
    reach, so that common words still compare with each other, for the plan to try the
    rarest first and to estimate conjunctions."""
    span = prepared.first(conn, _sqlite_span_stmt(), {})
    if span is None or span[0] is None:
        return [], 0
    first, last = int(span[0]), int(span[1])
    total = last - first + 1
    terms: list[lexical_plan.Term] = []
    for word in words:
        count, reached = _sqlite_first(conn, lexical.fts5_string(word), budget)
        if count > budget:
            count = max(count, round(count * total / max(reached - first + 1, 1)))
        terms.append(lexical_plan.Term(word, min(count, total)))
    return terms, total


# One row per lexeme of the query (made by the function that makes the chunks' vectors): its
# share of rows in ANALYZE's most common elements, else its count up to :cap, and the table's
# row estimate. `most_common_elem_freqs` holds three figures more than there are elements
# (minimum, maximum, nulls); pairing by position leaves them out. The last column turns off
# sequential scans for the rest of the transaction (see `postgres_terms`).
_POSTGRES_TERMS = f"""
WITH lexemes AS (
    SELECT DISTINCT lexeme
    FROM unnest(tsvector_to_array(
        to_tsvector('{lexical.TEXT_SEARCH_CONFIG}'::regconfig, :query_text))) AS lexeme
), common AS (
    SELECT elements.element, elements.share
    FROM pg_stats AS stats,
         unnest(stats.most_common_elems::text::text[], stats.most_common_elem_freqs)
             AS elements(element, share)
    WHERE stats.schemaname = current_schema()
      AND stats.tablename = '{schema.vector_store_chunks.name}'
      AND stats.attname = '{schema.CHUNKS_TEXT_SEARCH}'
      AND elements.element IS NOT NULL
)
SELECT lexemes.lexeme,
       common.share,
       CASE WHEN common.share IS NULL OR common.share * (
           SELECT reltuples FROM pg_class
           WHERE oid = '{schema.vector_store_chunks.name}'::regclass) < :cap THEN (
           SELECT count(*) FROM (
               SELECT 1 FROM {schema.vector_store_chunks.name} AS chunks
               WHERE chunks.{schema.CHUNKS_TEXT_SEARCH}
                     @@ ('''' || replace(replace(lexemes.lexeme, '\\', '\\\\'), '''', '''''')
                         || '''')::tsquery
               LIMIT :cap
           ) AS matched
       ) END AS counted,
       (SELECT reltuples FROM pg_class
        WHERE oid = '{schema.vector_store_chunks.name}'::regclass) AS total,
       (SELECT set_config('enable_seqscan', 'off', true)) AS index_scans_only
FROM lexemes LEFT JOIN common ON common.element = lexemes.lexeme
ORDER BY lexemes.lexeme
"""


@functools.cache
def _postgres_terms_stmt() -> TextClause:
    return text(_POSTGRES_TERMS)


def postgres_terms(
    conn: Connection, query_text: str, budget: int
) -> tuple[list[lexical_plan.Term], int]:
    """The query's lexemes with their counts, and the chunks in the index (at least as many as
    the most common lexeme's count: `reltuples` is an estimate, -1 before the first ANALYZE).

    The statement also turns off sequential scans until the transaction ends, for the search's
    ranked steps: the full-text index is the only way to their candidates, and expecting a
    word in many rows the planner would rather read the table in order until `budget` match,
    which reads every row's vector on the way (ten times slower at 100,000 chunks). Setting it
    here rather than in a statement of its own spares a search a round trip to the database
    (1-3 ms through SQLAlchemy's async engine). The counts themselves are planned before it
    takes effect, and need no help: the words they count are those the statistics call rare
    (or, before the first ANALYZE, guess rare), which the planner looks up in the index."""
    rows = conn.execute(_postgres_terms_stmt(), {"query_text": query_text, "cap": budget + 1}).all()
    estimated = max((float(row.total) for row in rows), default=0.0)
    total = max(int(estimated), 0)
    terms = [
        lexical_plan.Term(
            str(row.lexeme),
            int(row.counted) if row.counted is not None else round(row.share * total),
        )
        for row in rows
    ]
    return terms, max([total, 1, *(t.df for t in terms)])
