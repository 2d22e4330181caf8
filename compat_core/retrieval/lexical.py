"""A user's natural-language query made into a full-text search that cannot fail to parse.

file_search queries are questions written by people or models ("Who is Sam?", "C++ & C#",
`title:x`), and both stores' query languages give such text meaning: to SQLite FTS5 `?`, `:`,
`"`, `*`, `-`, `(` and the barewords AND/OR/NOT/NEAR are syntax, and PostgreSQL's
`to_tsquery` has operators of its own. The query is therefore never handed to either parser
as written: it is cut into words, and each word reaches the store only as a quoted literal.

Words are OR'ed, not AND'ed. A natural question shares only some of its words with the passage
that answers it ("who is the owner of the bakery" vs "Sam owns the bakery"), so AND loses the
answer; under OR, ranking (FTS5's bm25, or on PostgreSQL `ts_rank` weighted by each word's
IDF) puts the passages that share the most, and the rarest, words first. Lexical search also
feeds the hybrid ranking of file_search, where recall matters more than precision. On a big
store the OR of a common word is most of the store, too many chunks to rank in time, so which
chunks are ranked is `lexical_plan`'s choice: the OR of the rare words, the common ones only
ordering what those found (see that module; this one makes the words and the expressions).

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
from collections.abc import Sequence

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


def searched_words(query: str) -> list[str]:
    """The words of `query` an FTS5 search looks for: all but stop words, or all of them if
    the query holds nothing else (see the module doc)."""
    words = query_words(query)
    return [word for word in words if word not in STOP_WORDS] or words


def fts5_match(query: str) -> str | None:
    """An FTS5 MATCH expression OR'ing the query's words; None if it has none to search."""
    words = searched_words(query)
    return fts5_any(words) if words else None


def fts5_string(word: str) -> str:
    """`word` as an FTS5 string, so that it is never read as an operator or a column filter.

    The table's tokenizer still runs on it: a word it splits in two becomes a phrase of both,
    and a word it has no token for matches nothing rather than failing. Words hold no quote,
    but a string doubles any it has: the escaping is the string's own.
    """
    return '"' + word.replace('"', '""') + '"'


def fts5_any(words: Sequence[str]) -> str:
    """An FTS5 expression matching a chunk that holds any of `words` (at least one)."""
    return " OR ".join(fts5_string(word) for word in words)


def fts5_all(words: Sequence[str]) -> str:
    """An FTS5 expression matching a chunk that holds all of `words` (at least one)."""
    return " AND ".join(fts5_string(word) for word in words)


def postgres_query_text(query: str) -> str | None:
    """The query as text for `to_tsvector`, or None if it has no word to search.

    Bind this, never the raw query: PostgreSQL rejects NUL in text and the driver cannot
    encode a lone surrogate, so those (and other control characters) become spaces here. The
    lexemes come from `to_tsvector` with `TEXT_SEARCH_CONFIG`, the very function that makes
    the documents' vectors, so query and documents are cut and stemmed alike.
    """
    if not query_words(query):
        return None
    text = unicodedata.normalize("NFKC", query[:MAX_QUERY_CHARS])
    return "".join(
        " " if unicodedata.category(char) in _UNSENDABLE_CATEGORIES else char for char in text
    )


def tsquery_any(lexemes: Sequence[str]) -> str:
    """tsquery input matching a vector holding any of `lexemes` (those `to_tsvector` made).

    Each lexeme is quoted (quotes doubled, backslashes escaped, as tsquery input requires), so
    none is read as an operator, and the text is cast to tsquery rather than passed to
    `to_tsquery`, which would stem the stems again. No lexeme gives the empty tsquery, which
    matches nothing.
    """
    return " | ".join(_tsquery_lexeme(lexeme) for lexeme in lexemes)


def tsquery_all(lexemes: Sequence[str]) -> str:
    """tsquery input matching a vector holding all of `lexemes` (see `tsquery_any`)."""
    return " & ".join(_tsquery_lexeme(lexeme) for lexeme in lexemes)


def _tsquery_lexeme(lexeme: str) -> str:
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"
