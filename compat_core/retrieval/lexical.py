"""A user's natural-language query made into a full-text search that cannot fail to parse.

file_search queries are questions written by people or models ("Who is Sam?", "C++ & C#",
`title:x`), and both stores' query languages give such text meaning: to SQLite FTS5 `?`, `:`,
`"`, `*`, `-`, `(` and the barewords AND/OR/NOT/NEAR are syntax, and PostgreSQL's
`to_tsquery` has operators of its own. The query is therefore never handed to either parser
as written: it is cut into words, and each word reaches the store only as a quoted literal.

Words are OR'ed, not AND'ed. A natural question shares only some of its words with the passage
that answers it ("who is the owner of the bakery" vs "Sam owns the bakery"), so AND loses the
answer; under OR, ranking (FTS5's bm25, which weighs rare words more, or `ts_rank`, which counts
matches) puts the passages that share the most, and the rarest, words first, and this is one
query rather than an AND attempt followed by an OR fallback on a miss. Lexical search also
feeds the hybrid ranking of file_search, where recall matters more than precision.

Both stores stem English and fold case (and SQLite diacritics), so "running" finds "run":
- SQLite: `FTS5_TOKENIZER`, Porter stemming over `unicode61` (any script is tokenized; Porter
  only rewrites English-looking words), diacritics removed so "creme" finds "Crème".
- PostgreSQL: `TEXT_SEARCH_CONFIG` 'english' (Snowball stemming, stop words dropped).
  `ts_rank` has no inverse document frequency: with the 'simple' config a match on "is" would
  count as much as one on "Sam", so stop words must go, and 'english' drops them both from the
  query and from the indexed documents. The price: a query of stop words only ("to be or not
  to be") finds nothing on PostgreSQL, as no document's vector holds those words.
SQLite drops the same kind of stop words from a query, because bm25 would rank them low anyway
and their posting lists are the longest to read; a query of stop words only keeps them all, so
it stays searchable there.

Neither tokenizer splits CJK text without spaces into words: a run of ideographs is one token
on both stores, so such text is found by the same run between punctuation or spaces (vector
search is what finds it otherwise).
"""

from __future__ import annotations

import unicodedata
from typing import Any

from sqlalchemy import ColumnElement, Text, func, literal, literal_column, select
from sqlalchemy.dialects.postgresql import TSQUERY

FTS5_TOKENIZER = "porter unicode61 remove_diacritics 2"
"""The `tokenize` option of the FTS5 table that chunks are indexed in (see the module doc)."""

TEXT_SEARCH_CONFIG = "english"
"""PostgreSQL's text search configuration for chunks' tsvectors and for queries alike."""

MAX_QUERY_CHARS = 4000
"""Only this much of a query is searched. A query is a question, not a document: the cap keeps
a pasted page from costing a scan per word (and PostgreSQL's 1 MB tsvector limit out of reach)."""

MAX_TERMS = 64
"""At most this many distinct words of a query are searched, the first ones it has."""

# Function words too common in English text to tell passages apart. PostgreSQL's 'english'
# config drops its own list; this one serves SQLite, where bm25 would rank them near zero.
_STOP_WORD_TEXT = """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its
    itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
"""
STOP_WORDS = frozenset(_STOP_WORD_TEXT.split())

# Unicode categories of word characters: letters, marks (the vowel signs of Devanagari or Thai
# are marks, and a word must not be cut at them), digits and other numbers.
_WORD_CATEGORIES = frozenset("LMN")
# What PostgreSQL text cannot hold (NUL) or UTF-8 cannot encode (lone surrogates), and other
# control characters, which mean nothing to a search.
_UNSENDABLE_CATEGORIES = frozenset(("Cc", "Cs"))


def query_words(query: str) -> list[str]:
    """The query's distinct words (case-folded, in order), punctuation and operators dropped."""
    text = unicodedata.normalize("NFKC", query[:MAX_QUERY_CHARS])
    words: list[str] = []
    seen: set[str] = set()
    start = None
    for index, char in enumerate(f"{text} "):
        if unicodedata.category(char)[0] in _WORD_CATEGORIES:
            if start is None:
                start = index
            continue
        if start is not None:
            word = text[start:index].casefold()
            start = None
            if word not in seen:
                seen.add(word)
                words.append(word)
                if len(words) == MAX_TERMS:
                    break
    return words


def fts5_match(query: str) -> str | None:
    """An FTS5 MATCH expression OR'ing the query's words; None if it has none to search.

    Each word is an FTS5 string, so no word is read as an operator or a column filter. The
    table's tokenizer still runs on it: a word it splits in two becomes a phrase of both, and
    a word it has no token for matches nothing rather than failing.
    """
    words = query_words(query)
    searched = [word for word in words if word not in STOP_WORDS] or words
    if not searched:
        return None
    return " OR ".join(_fts5_string(word) for word in searched)


def _fts5_string(word: str) -> str:
    # Words hold no quote, but a string doubles any it has: the escaping is the string's own.
    return '"' + word.replace('"', '""') + '"'


def postgres_query_text(query: str) -> str | None:
    """The query as the text `or_tsquery` takes, or None if it has no word to search.

    Bind this, never the raw query: PostgreSQL rejects NUL in text and the driver cannot
    encode a lone surrogate, so those (and other control characters) become spaces here.
    """
    if not query_words(query):
        return None
    text = unicodedata.normalize("NFKC", query[:MAX_QUERY_CHARS])
    return "".join(
        " " if unicodedata.category(char) in _UNSENDABLE_CATEGORIES else char for char in text
    )


def or_tsquery(query_text: ColumnElement[str]) -> ColumnElement[Any]:
    """A tsquery OR'ing the lexemes of `query_text` (from `postgres_query_text`).

    The lexemes come from `to_tsvector` with `TEXT_SEARCH_CONFIG`, the very function that
    makes the documents' vectors, so query and documents are cut and stemmed alike. They are
    put together as tsquery input, each one quoted (quotes doubled, backslashes escaped as that
    input requires), so no lexeme is read as an operator, and cast rather than passed to
    `to_tsquery`, which would stem the stems again. No lexeme at all gives the empty tsquery,
    which matches nothing. The statement's text does not depend on the query, so it can be
    prepared once.
    """
    config: ColumnElement[Any] = literal_column(f"'{TEXT_SEARCH_CONFIG}'::regconfig")
    vector = func.to_tsvector(config, query_text)
    lexeme = func.unnest(func.tsvector_to_array(vector), type_=Text).column_valued("lexeme")
    escaped = func.replace(func.replace(lexeme, "\\", "\\\\"), "'", "''")
    quoted = literal("'") + escaped + literal("'")
    joined = func.coalesce(func.string_agg(quoted, literal(" | ")), literal(""))
    return select(joined.cast(TSQUERY)).scalar_subquery()
