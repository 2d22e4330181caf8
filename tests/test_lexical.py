"""A natural-language query searched lexically on a real SQLite FTS5 table and real PostgreSQL.

Every query, however odd (punctuation, the stores' own operators, control characters, emoji),
must search and give a list, never a syntax error; and the searches must find what a question
is after: the passage sharing the most words with it first, even when it shares few of them.

The SQLite half runs in every pass, on an FTS5 table in a temp file made with the tokenizer the
store will use. The PostgreSQL half runs in the PostgreSQL pass (COMPAT_TEST_POSTGRES_URL), on
a fresh database of its own with a tsvector column made as the store will make it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from harness.server import database_url, drop_database, postgres_admin_url
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    Column,
    Computed,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    func,
    insert,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import TSQUERY, TSVECTOR
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from compat_core.retrieval.lexical import (
    FTS5_TOKENIZER,
    MAX_TERMS,
    TEXT_SEARCH_CONFIG,
    fts5_match,
    postgres_query_text,
    query_words,
    tsquery_any,
)
from compat_core.store.postgres import async_url

ON_POSTGRES = postgres_admin_url() is not None
postgres_only = pytest.mark.skipif(
    not ON_POSTGRES, reason="PostgreSQL pass only (set COMPAT_TEST_POSTGRES_URL)"
)

DOCUMENTS = {
    1: "Sam owns the bakery on Main Street.",
    2: "Penguins live in Antarctica and eat krill.",
    3: "Whales eat krill too.",
    4: "Crème brûlée is a custard dessert.",
    5: "東京 大阪 京都",
    6: "Привет, мир: a greeting in Russian.",
    7: "The runner was running the race.",
    8: "Programming in C++ and C# at scale.",
    9: "To be or not to be, that is the question.",
    10: "हिन्दी भाषा का पाठ",
}

# Queries that are syntax, or an error, to a naive FTS5 MATCH or to_tsquery.
HOSTILE = [
    "Who is Sam?",
    "AND OR NOT",
    "NEAR(a b)",
    '"unbalanced',
    "col:value",
    "title:x",
    "-x",
    "*",
    "x*",
    "^x",
    "(unbalanced",
    "a) OR (",
    "",
    "   ",
    "C++ & C#",
    "a & | ! <-> b:*",
    "'; DROP TABLE chunks; --",
    "back\\slash 'quote' \"double\"",
    "nul\x00byte\x07bell",
    "emoji 😀 only",
    "lone \ud800 surrogate",
]


def _sqlite_search(conn: sqlite3.Connection, query: str) -> list[int]:
    match = fts5_match(query)
    if match is None:
        return []
    rows = conn.execute(
        "SELECT rowid FROM chunks WHERE chunks MATCH ? ORDER BY bm25(chunks), rowid", (match,)
    )
    return [rowid for (rowid,) in rows]


@pytest.fixture(scope="module")
def sqlite_chunks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sqlite3.Connection]:
    path = tmp_path_factory.mktemp("lexical") / "chunks.db"
    conn = sqlite3.connect(path)
    conn.execute(f"CREATE VIRTUAL TABLE chunks USING fts5(body, tokenize='{FTS5_TOKENIZER}')")
    conn.executemany("INSERT INTO chunks(rowid, body) VALUES (?, ?)", DOCUMENTS.items())
    conn.commit()
    yield conn
    conn.close()


metadata = MetaData()
chunks = Table(
    "chunks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("body", Text, nullable=False),
    Column(
        "tsv",
        TSVECTOR,
        Computed(f"to_tsvector('{TEXT_SEARCH_CONFIG}'::regconfig, body)", persisted=True),
    ),
)
# The lexemes the store searches for: made by the function that makes the vectors.
POSTGRES_LEXEMES = select(
    func.unnest(
        func.tsvector_to_array(
            func.to_tsvector(
                literal_column(f"'{TEXT_SEARCH_CONFIG}'::regconfig"), bindparam("text")
            )
        )
    )
)
_tsquery = bindparam("query", type_=String).cast(TSQUERY)
POSTGRES_SEARCH = (
    select(chunks.c.id)
    .where(chunks.c.tsv.bool_op("@@")(_tsquery))
    .order_by(func.ts_rank(chunks.c.tsv, _tsquery).desc(), chunks.c.id)
)


class PostgresChunks:
    """The chunks table in a database of its own, searched from sync tests (Hypothesis's
    examples are sync) on a loop this fixture owns."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.engine: AsyncEngine = create_async_engine(async_url(url), poolclass=NullPool)
        self.loop.run_until_complete(self._create())

    async def _create(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.execute(
                insert(chunks), [{"id": id_, "body": body} for id_, body in DOCUMENTS.items()]
            )

    def search(self, query: str) -> list[int]:
        text = postgres_query_text(query)
        if text is None:
            return []
        return self.loop.run_until_complete(self._search(text))

    async def _search(self, text: str) -> list[int]:
        async with self.engine.connect() as conn:
            lexemes = list((await conn.execute(POSTGRES_LEXEMES, {"text": text})).scalars())
            query = {"query": tsquery_any(lexemes)}
            return list((await conn.execute(POSTGRES_SEARCH, query)).scalars())

    def close(self) -> None:
        self.loop.run_until_complete(self.engine.dispose())
        self.loop.close()


@pytest.fixture(scope="module")
def postgres_chunks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresChunks]:
    url = database_url(tmp_path_factory.mktemp("lexical-pg"))
    store = PostgresChunks(url)
    yield store
    store.close()
    drop_database(url)


# Words: what both stores search for.


def test_words_are_letters_and_digits_of_any_script_case_folded_once_each() -> None:
    assert query_words("Who is Sam? SAM, sam!") == ["who", "is", "sam"]
    assert query_words("C++ & C# 3.14") == ["c", "3", "14"]
    assert query_words("title:x NEAR(a b)") == ["title", "x", "near", "a", "b"]
    assert query_words("Привет, мир! 東京、大阪") == ["привет", "мир", "東京", "大阪"]
    # Devanagari vowel signs are marks: the word is not cut at them.
    assert query_words("हिन्दी भाषा") == ["हिन्दी", "भाषा"]
    # Compatibility forms are searched as the letters they stand for.
    assert query_words("\ufb01le \uff33\uff41\uff4d") == ["file", "sam"]  # fi ligature, fullwidth
    assert query_words(' * - " ( ) : ^ 😀 \x00 ') == []


def test_a_long_query_searches_its_first_words_only() -> None:
    words = [f"w{n}" for n in range(MAX_TERMS + 10)]
    assert query_words(" ".join(words)) == words[:MAX_TERMS]


def test_fts5_match_quotes_every_word_and_ors_them_without_stop_words() -> None:
    assert fts5_match("Who is Sam? NEAR(a b)") == '"sam" OR "near" OR "b"'
    # Only stop words: all of them are searched rather than none.
    assert fts5_match("AND OR NOT") == '"and" OR "or" OR "not"'
    assert fts5_match("*") is None
    assert fts5_match("   ") is None


def test_postgres_text_is_none_without_words_and_never_holds_nul_or_surrogates() -> None:
    assert postgres_query_text("* - ()") is None
    assert postgres_query_text("nul\x00x \ud800y") == "nul x  y"


# SQLite.


def test_a_naive_match_of_a_question_is_a_syntax_error(sqlite_chunks: sqlite3.Connection) -> None:
    # Why the module exists: the question itself, as MATCH, does not parse.
    with pytest.raises(sqlite3.OperationalError, match="syntax error"):
        sqlite_chunks.execute("SELECT rowid FROM chunks WHERE chunks MATCH ?", ("Who is Sam?",))


@pytest.mark.parametrize("query", HOSTILE)
def test_sqlite_searches_any_query(sqlite_chunks: sqlite3.Connection, query: str) -> None:
    found = _sqlite_search(sqlite_chunks, query)
    assert set(found) <= DOCUMENTS.keys()


def test_sqlite_finds_the_answer_to_a_question(sqlite_chunks: sqlite3.Connection) -> None:
    assert _sqlite_search(sqlite_chunks, "Who is Sam?") == [1]
    assert _sqlite_search(sqlite_chunks, "C++ & C#")[0] == 8


def test_sqlite_finds_a_passage_sharing_two_of_six_words_and_ranks_it_first(
    sqlite_chunks: sqlite3.Connection,
) -> None:
    question = "Where do penguins find their krill?"
    # All the question's words AND'ed find nothing: "find" is in no passage.
    every_word = " AND ".join(f'"{word}"' for word in query_words(question))
    assert (
        sqlite_chunks.execute(
            "SELECT rowid FROM chunks WHERE chunks MATCH ?", (every_word,)
        ).fetchall()
        == []
    )
    # OR'ed, the passage with both shared words outranks the one with "krill" alone.
    assert _sqlite_search(sqlite_chunks, question) == [2, 3]


def test_sqlite_stems_folds_diacritics_and_reads_other_scripts(
    sqlite_chunks: sqlite3.Connection,
) -> None:
    assert _sqlite_search(sqlite_chunks, "runs?") == [7]
    assert _sqlite_search(sqlite_chunks, "Crème brûlée?") == [4]
    assert _sqlite_search(sqlite_chunks, "creme brulee") == [4]
    assert _sqlite_search(sqlite_chunks, "東京?") == [5]
    assert _sqlite_search(sqlite_chunks, "мир") == [6]
    assert _sqlite_search(sqlite_chunks, "भाषा") == [10]


def test_sqlite_searches_a_query_of_stop_words_only(sqlite_chunks: sqlite3.Connection) -> None:
    assert _sqlite_search(sqlite_chunks, "to be or not to be")[0] == 9


# PostgreSQL.


@postgres_only
def test_a_naive_to_tsquery_of_a_question_is_a_syntax_error(
    postgres_chunks: PostgresChunks,
) -> None:
    async def naive() -> None:
        async with postgres_chunks.engine.connect() as conn:
            await conn.execute(select(func.to_tsquery("english", "Who is Sam?")))

    with pytest.raises(Exception, match="syntax error in tsquery"):
        postgres_chunks.loop.run_until_complete(naive())


@postgres_only
@pytest.mark.parametrize("query", HOSTILE)
def test_postgres_searches_any_query(postgres_chunks: PostgresChunks, query: str) -> None:
    assert set(postgres_chunks.search(query)) <= DOCUMENTS.keys()


@postgres_only
def test_postgres_finds_the_answer_to_a_question(postgres_chunks: PostgresChunks) -> None:
    assert postgres_chunks.search("Who is Sam?") == [1]
    assert postgres_chunks.search("Where do penguins find their krill?") == [2, 3]
    assert postgres_chunks.search("runs?") == [7]
    assert postgres_chunks.search("Crème brûlée?") == [4]
    assert postgres_chunks.search("東京?") == [5]
    assert postgres_chunks.search("мир") == [6]
    # 'english' drops stop words from documents and queries alike: nothing to find.
    assert postgres_chunks.search("to be or not to be") == []


# Any string at all.

_OPERATORS = st.sampled_from(
    (
        *("AND", "OR", "NOT", "NEAR(", '"', "'", "*", "-", ":", "(", ")", "^", "\\", "&", "|"),
        *("!", "<->", ":*", "title:", "😀", "東京", "Sam", "krill", "\x00", "\ud800"),
    )
)
ANY_QUERY = st.one_of(
    st.text(st.characters(exclude_categories=())),
    st.lists(st.one_of(_OPERATORS, st.text(max_size=5)), max_size=12).map("".join),
    st.lists(st.one_of(_OPERATORS, st.text(max_size=5)), max_size=12).map(" ".join),
)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(query=ANY_QUERY)
def test_sqlite_never_fails_on_any_string(sqlite_chunks: sqlite3.Connection, query: str) -> None:
    found: Any = _sqlite_search(sqlite_chunks, query)
    assert isinstance(found, list)
    assert set(found) <= DOCUMENTS.keys()


@postgres_only
@PROPERTY
@given(query=ANY_QUERY)
def test_postgres_never_fails_on_any_string(postgres_chunks: PostgresChunks, query: str) -> None:
    found: Any = postgres_chunks.search(query)
    assert isinstance(found, list)
    assert set(found) <= DOCUMENTS.keys()
