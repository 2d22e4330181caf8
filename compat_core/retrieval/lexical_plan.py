"""Which chunks a lexical search ranks: every chunk holding a rare word of the query, not every
chunk holding any word ("common terms").

`lexical.py` OR's a query's words, for recall; but ranking costs per matching chunk (bm25 or
`ts_rank` reads each one's positions, and PostgreSQL detoasts its tsvector first), and under
OR a single common word matches most of a big store: at 100,000 chunks a natural question
made the database rank nearly all of them (0.5 s on SQLite, 0.9 s on PostgreSQL). Common
words say little about which chunk answers, so they only choose among chunks the rare words
found, as Lucene's `CommonTermsQuery` does. The plan is a sequence of `Step`s, run in order
until the search has its `limit` of results; each step ranks at most `budget` chunks, so a
search costs about the same on any store size:

1. The rare words, rarest first, while the chunks holding them add up to at most `budget`:
   the chunks holding any of them. On a small store every word is rare and this is the plain
   OR search of every word, so small stores rank exactly as before.
2. The other words in a conjunction, rarest first: the shortest one whose chunks fit in
   `common` (a budget of its own, as big as `budget` or, on PostgreSQL, smaller); then, if
   that leaves the search short of `limit`, the conjunction one word shorter, ranking only the
   first `common` chunks it finds (its words are common, so those are as good a sample as
   any). If even all of them together are in more than `common` chunks, that conjunction
   alone, bounded the same way.
3. Any word at all, first `common` chunks: a last resort that keeps a search from answering
   less than the OR search would have (a small store inside a big database, whose chunks the
   global counts below do not describe).

Every step ranks its candidates with all of the query's words, so common words still order
the chunks the rare ones found. Word counts (`Term.df`) come from the full-text index, which
is one per database, not per store: they bound what the index reads, which is the cost.

Measured with the benchmark's retrieval section (`python -m bench --only retrieval`, full run,
2 noisy cores; search through the server, 10 results, its synthetic text puts almost every
word in most chunks), before → after this plan:
- SQLite, 100,000 chunks: p50 495 → 15.5 ms, p99 727 → 36.5 ms (10,000: p50 14.0, p99 62.5).
- PostgreSQL, 100,000 chunks: p50 888 → 31.5 ms, p99 1,321 → 96 ms (10,000: p50 17.2, p99
  43.8) on a busy machine; on a quiet one 14.4 / 30.7 ms, and 10.0 / 19.3 ms once steps of
  common words ranked `POSTGRES_COMMON_CANDIDATES` (see docs/retrieval.md, "Figures").
- Quality (1,590 queries, a 1,600-chunk store, where every word is rare, so SQLite ranks as
  before): recall@5 / MRR@10 on SQLite 0.609 / 0.466 (was 0.609 / 0.468); on PostgreSQL, with
  the IDF weights of `sql_chunks`, 0.514 / 0.377 (was 0.432 / 0.312); plain BM25 0.554 / 0.429.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

SQLITE_CANDIDATES: Final = 1000
POSTGRES_CANDIDATES: Final = 400
"""At most this many chunks are ranked by one step of a search, per store. Measured on the
benchmark's 100,000-chunk stores: ranking a candidate costs about 10 µs on SQLite and 14-30 µs
on PostgreSQL (which detoasts its tsvector first: 14 µs with every page in shared buffers),
so a step stays near 10-15 ms on either."""

POSTGRES_COMMON_CANDIDATES: Final = 150
"""On PostgreSQL, at most this many chunks are ranked by a step of common words (a
conjunction, or the last resort), and a conjunction fits when it is in at most this many.

Such a step's chunks all hold the words that chose them, which are common: ranking a few of
them is as good a sample as ranking many, and a conjunction that must fit in fewer chunks takes
one more of the query's words, so what it ranks is more to the point. It is the step that big
stores run most (on the benchmark's 100,000 chunks, four queries in five start with one), and a
PostgreSQL candidate is dear (its tsvector is read from TOAST: about 14 µs even when cached),
so the sample is smaller than the rare words' budget. The rare words' step, which small stores
run alone, keeps `POSTGRES_CANDIDATES`. SQLite ranks cheaply and keeps one budget for both."""


@dataclass(frozen=True, slots=True)
class Term:
    """A word as the store matches it (SQLite: the word, which FTS5 stems; PostgreSQL: the
    lexeme) and how many chunks of the index hold it, counted up to `budget + 1` only (more
    than `budget` is all the plan needs to know), or estimated from the database's statistics."""

    key: str
    df: int


@dataclass(frozen=True, slots=True)
class Step:
    """Rank the chunks holding all (`conjunctive`) or any of `required`, with every word of the
    query; `bounded`: at most the first `budget` of them (there are more)."""

    required: tuple[str, ...]
    conjunctive: bool
    bounded: bool


READ_BUDGET: Final = 150_000
"""A conjunction's words together are in at most this many chunks (past its first word): the
index reads all of them to intersect the words, and SQLite's bm25 reads them again for their
IDF, about 0.1 µs a chunk each on SQLite and 0.25 µs on PostgreSQL's GIN index."""

ConjunctionCount = Callable[[Sequence[str]], int]
"""How many chunks hold all these words, counted up to `budget + 1` (or estimated)."""


def steps(
    terms: Sequence[Term],
    budget: int,
    conjunction: ConjunctionCount,
    reads: int = READ_BUDGET,
    common: int | None = None,
) -> Iterator[Step]:
    """The plan's steps (see the module doc), made lazily: a conjunction is counted only when
    the search gets that far. `common` (default `budget`) is what a step of common words ranks
    (`candidates`), and what a conjunction must fit in."""
    if not terms:
        return
    ordered = sorted(terms, key=lambda t: (t.df, t.key))
    rare: list[str] = []
    total = 0
    for term in ordered:
        if total + term.df > budget:
            break
        rare.append(term.key)
        total += term.df
    if rare:
        yield Step(tuple(rare), conjunctive=False, bounded=False)
    frequent = ordered[len(rare) :]
    if frequent:
        yield from _conjunctions(frequent, budget if common is None else common, conjunction, reads)
    if (rare and frequent) or len(frequent) > 1:
        yield Step(tuple(t.key for t in ordered), conjunctive=False, bounded=True)


def candidates(step: Step, budget: int, common: int) -> int:
    """How many chunks `step` ranks at most: `budget` for the rare words' step (the only one
    that is neither a conjunction nor bounded), `common` for a step of common words."""
    return budget if not (step.conjunctive or step.bounded) else common


def _conjunctions(
    terms: Sequence[Term], budget: int, count: ConjunctionCount, reads: int
) -> Iterator[Step]:
    """Conjunctions of `terms` (rarest first, each in more than `budget` chunks): the shortest
    one that fits in `budget` whole, then the one a word shorter, bounded. A conjunction takes
    no more words than the index can read in `reads` chunks (it reads every chunk of each
    word to intersect them), and is bounded if it stops short of fitting."""
    words = [term.key for term in terms]
    size = 1
    read = terms[0].df
    fits = False
    while size < len(words) and read + terms[size].df <= reads:
        read += terms[size].df
        size += 1
        if count(words[:size]) <= budget:
            fits = True
            break
    yield Step(tuple(words[:size]), conjunctive=True, bounded=not fits)
    if fits:
        yield Step(tuple(words[: size - 1]), conjunctive=True, bounded=True)


def independent_count(dfs: Sequence[int], total: int) -> int:
    """The chunks expected to hold every one of words held by `dfs` chunks each, were the
    words independent: a cheap estimate of a conjunction, for a store whose index cannot count
    one cheaply. Real words cluster by topic, so the estimate runs low; a step made from it is
    still bounded when it ranks."""
    if total <= 0:
        return 0
    expected = float(total)
    for df in dfs:
        expected *= min(df, total) / total
    return math.ceil(expected)


def idf(df: int, total: int) -> float:
    """Okapi BM25's inverse document frequency (Lucene's form, never negative): how much a
    match on a word held by `df` of `total` chunks says."""
    total = max(total, df, 1)
    return math.log(1.0 + (total - df + 0.5) / (df + 0.5))


WEIGHT_CLASSES: Final = 4
"""PostgreSQL's `ts_rank` weighs a position by its label, A to D, one weight each: a query can
give at most this many of its words weights of their own."""


@dataclass(frozen=True, slots=True)
class WeightClass:
    """Words that share one weight in a PostgreSQL ranking: their mean IDF."""

    idf: float
    keys: tuple[str, ...]


def weight_classes(terms: Sequence[Term], total: int) -> list[WeightClass]:
    """The query's words in at most `WEIGHT_CLASSES` groups by IDF, highest first: each word
    its own class while there are few enough, otherwise runs of words of neighbouring IDF in
    groups as even as can be."""
    weighed = sorted(((idf(t.df, total), t.key) for t in terms), reverse=True)
    count = min(len(weighed), WEIGHT_CLASSES)
    classes: list[WeightClass] = []
    start = 0
    for index in range(count):
        end = start + (len(weighed) - start) // (count - index)
        group = weighed[start:end]
        classes.append(
            WeightClass(sum(w for w, _ in group) / len(group), tuple(k for _, k in group))
        )
        start = end
    return classes
