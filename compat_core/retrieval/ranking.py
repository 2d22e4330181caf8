"""The stores' ranked candidates made into file_search results with OpenAI's 0-1 scores.

OpenAI's `ranking_options.score_threshold` is a number in [0, 1], and a result's `score` is
shown to the model and to clients on that scale. The stores rank on scales of their own, so
every store score is mapped once, where a hit is made (`Hit.from_bm25`, `Hit.from_ts_rank`,
`Hit.from_cosine`), onto a 0-1 relevance; everything after that works on 0-1 alone.

The mappings are absolute (fixed functions of one hit's raw score), never relative to the
result set (min-max). Relative scores would make a threshold mean something different for
every query: the best hit of a set would score 1.0 however poorly it matched, the worst 0.0
however well, and a set of one would have no scale at all. An absolute mapping gives a chunk
the same score whatever else the query found, so a threshold cuts by how good a match is.

- Lexical (bm25 on SQLite FTS5, negative and unbounded, more negative is better; on
  PostgreSQL an IDF-weighted `ts_rank`, scaled so that a word matched once scores its IDF, see
  `store/sql_chunks.py`): the positive magnitude `m` becomes `m / (m + half)`, which is
  monotone, 0 at no evidence and approaches 1 without reaching it, so no lexical match claims
  certainty. `half` is the raw score that maps to 0.5, one per store. Measured on short chunks
  with the queries `lexical.py` makes (words OR'ed): a chunk with both words of a two-word
  query scores a bm25 of about -2.1 (ten chunks), one with one of them about -1.0 to -1.6, so
  a half of 1.0 puts the full match near 0.65-0.7 and the half match near 0.5-0.6. On the
  benchmark's 1,000-chunk store, the same chunks score 1.2 times higher on PostgreSQL than on
  SQLite (its IDF is Lucene's, which never goes below zero, and `ts_rank` saturates repeated
  words less), median of the best and of the tenth result of 150 queries alike, so its half is
  1.2: one threshold means roughly the same on either store.
- Dense (cosine similarity in [-1, 1]): `max(cos, 0)`. On the range that matters the score is
  the cosine itself, the number thresholds for embeddings are usually tuned on; `(cos + 1) / 2`
  would put every unrelated (orthogonal) chunk at 0.5 and squeeze all of a text embedding
  model's real matches (cosines mostly between 0.1 and 0.9) into the top half. A negative
  cosine is no evidence of relevance, so 0 is all it is worth.
- Hybrid: reciprocal rank fusion, each list weighted by how confident it is for this query
  (see `hybrid`), on a scale whose largest value, 1, is a chunk first in both lists.

A score that is not a number (a zero-length embedding gives a 0/0 cosine) is no evidence and
maps to 0, so one bad row cannot disorder a sort or raise in the middle of a search.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

BM25_HALF: Final = 1.0
"""The magnitude of an FTS5 bm25 score that maps to 0.5 (see the module doc)."""

TS_RANK_HALF: Final = 1.2
"""The PostgreSQL lexical score (IDF-weighted `ts_rank`, scaled) that maps to 0.5 (see the
module doc)."""

RRF_K: Final = 5
"""Reciprocal rank fusion's constant: a list's vote for its chunk at rank r is (k + 1) / (k + r)
of the list's weight. Cormack et al.'s 60 flattens a list's order so far that a chunk the
stronger list ranks first (and the other misses) falls below one both lists place tenth; 5
keeps the top of each list decisive. Chosen on the dev half of the benchmark's quality set
(`bench/retrieval_quality.py`), never its test half; 2 to 10 did about as well there."""

CONFIDENCE_RANK: Final = 20
"""A list's confidence compares its best candidate with the one at this rank (see
`confidence`). Chosen on the dev half with `RRF_K`; 10 and 50 did about as well there."""

MIN_RESULTS: Final = 1
MAX_RESULTS: Final = 50
"""OpenAI's bounds for file_search's `max_num_results`."""

RANKERS: Final = ("auto", "default_2024_08_21")
"""OpenAI's `FileSearchRanker` values for the Assistants API (its schema's enum)."""

MAX_NUM_RESULTS_PARAM: Final = "max_num_results"
SCORE_THRESHOLD_PARAM: Final = "ranking_options.score_threshold"
RANKER_PARAM: Final = "ranking_options.ranker"


class RankingOptionsError(ValueError):
    """Options OpenAI would refuse; `param` is OpenAI's name for the offending field (relative
    to the file_search tool), so the service layer can answer a 400 naming it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


@dataclass(frozen=True, slots=True)
class Hit:
    """One candidate from one store search, its score already on the 0-1 scale; make it with
    the `from_*` constructor of the store's raw score so that no raw score travels further."""

    chunk_id: str
    score: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"a hit's score must be in [0, 1], got {self.score!r}")

    @classmethod
    def from_bm25(cls, chunk_id: str, bm25: float) -> Hit:
        """FTS5's `bm25()` is negative for a match, more negative being better."""
        return cls(chunk_id, _squash(-bm25, BM25_HALF))

    @classmethod
    def from_ts_rank(cls, chunk_id: str, ts_rank: float) -> Hit:
        return cls(chunk_id, _squash(ts_rank, TS_RANK_HALF))

    @classmethod
    def from_cosine(cls, chunk_id: str, cosine: float) -> Hit:
        """Clamped to 1 too: a float cosine of a vector with itself can come out a hair above."""
        if math.isnan(cosine):
            return cls(chunk_id, 0.0)
        return cls(chunk_id, min(max(cosine, 0.0), 1.0))


@dataclass(frozen=True, slots=True)
class Ranked:
    """A search result: a chunk and its 0-1 score, as file_search reports it."""

    chunk_id: str
    score: float


def _squash(magnitude: float, half: float) -> float:
    """`m / (m + half)` for a positive magnitude; no evidence (<= 0, NaN) is 0, infinity 1."""
    if not magnitude > 0.0:
        return 0.0
    if math.isinf(magnitude):
        return 1.0
    return magnitude / (magnitude + half)


def _ordered(results: Iterable[Ranked]) -> list[Ranked]:
    """Best first; equal scores by chunk ID, so the same candidates always give the same list
    (and the same page of results to the model) whatever order the store returned them in."""
    return sorted(results, key=lambda r: (-r.score, r.chunk_id))


def by_score(hits: Sequence[Hit]) -> list[Ranked]:
    """One store's hits as results (lexical or dense search alone). A chunk listed twice keeps
    its best score: a store that searched several vector stores' indexes may return one twice."""
    best: dict[str, float] = {}
    for hit in hits:
        if hit.score > best.get(hit.chunk_id, -1.0):
            best[hit.chunk_id] = hit.score
    return _ordered(Ranked(chunk_id, score) for chunk_id, score in best.items())


def _evidence(hit: Hit, lexical: bool) -> float:
    """A hit's score back on its store's own evidence scale, up to a constant factor: for a
    lexical hit the odds `s / (1 - s)` of its 0-1 score, which undoes `_squash` (the raw
    magnitude divided by the store's `half`); for a dense hit the cosine it already is."""
    if not lexical:
        return hit.score
    return math.inf if hit.score >= 1.0 else hit.score / (1.0 - hit.score)


def confidence(evidence: Sequence[float]) -> float:
    """How sure one list (best first, on its store's evidence scale) is of its best candidate
    for this query, in [0, 1]: `1 - e_m / e_1`, how far below its best the candidate at rank
    `CONFIDENCE_RANK` falls. A list whose best stands well above the crowd has found something
    that matches the query better than the rest of the store; one whose twentieth scores
    almost as well as its first has not told the candidates apart.

    A ratio, so the factor of the evidence scale cancels: lexical odds (bm25 or `ts_rank` over
    a per-store constant) and cosines are never compared with each other, only with their own
    list. A list shorter than `CONFIDENCE_RANK` ran out of candidates: everything past its end
    has no evidence at all (0), so it is fully confident. An empty list, or one whose best has
    no evidence, has nothing to say (0)."""
    if not evidence or not evidence[0] > 0.0:
        return 0.0
    if len(evidence) < CONFIDENCE_RANK:
        return 1.0
    best, floor = evidence[0], evidence[CONFIDENCE_RANK - 1]
    if math.isinf(best):
        return 0.0 if math.isinf(floor) else 1.0
    return min(max(1.0 - floor / best, 0.0), 1.0)


def _distinct(hits: Sequence[Hit]) -> list[Hit]:
    """Each chunk at its first (best) place only."""
    seen: set[str] = set()
    kept: list[Hit] = []
    for hit in hits:
        if hit.chunk_id not in seen:
            seen.add(hit.chunk_id)
            kept.append(hit)
    return kept


def hybrid(lexical: Sequence[Hit], dense: Sequence[Hit], k: int = RRF_K) -> list[Ranked]:
    """Reciprocal rank fusion of the two lists (each best first), each weighted by its
    `confidence` for this query: a chunk at rank r of a list (counting from 1, only a chunk's
    first place counting) earns `w * (k + 1) / (k + r)` from it, where `w` is that list's
    confidence over the two lists' sum (a half each when neither has any).

    Fusion is by rank because bm25 and cosine are not comparable numbers; the lists' scores
    only set how much each list's ranks count. Equal weights let a list that cannot tell its
    candidates apart (a weak embedding model's near-equal cosines, a query of common words)
    outvote one whose first candidate stands out; weighting each list by how sharply its best
    stands above its twentieth lets whichever search has found something decide, query by
    query, and both count when both have.

    The score is in [0, 1] and says how high, and in how confident a list, the chunk was
    placed: 1.0 is a chunk first in both lists, a chunk first in one list only scores that
    list's weight, and ranks further down earn less (with k = 5 a list's vote has halved by
    rank 7). The scale is fixed, never the fused set's best score (min-max), which would give
    any query's first result 1.0 however weakly the lists placed it. A list that found nothing
    leaves the other to decide alone, so its first then scores 1.0 as well.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be a non-negative integer, got {k!r}")
    lists = (_distinct(lexical), _distinct(dense))
    sure = [
        confidence([_evidence(hit, is_lexical) for hit in hits])
        for hits, is_lexical in zip(lists, (True, False), strict=True)
    ]
    total = sum(sure)
    weights = [s / total for s in sure] if total > 0.0 else [0.5, 0.5]
    fused: dict[str, float] = {}
    for weight, hits in zip(weights, lists, strict=True):
        for rank, hit in enumerate(hits, start=1):
            vote = weight * (k + 1) / (k + rank)
            fused[hit.chunk_id] = fused.get(hit.chunk_id, 0.0) + vote
    return _ordered(Ranked(chunk_id, min(score, 1.0)) for chunk_id, score in fused.items())


def select(
    results: Iterable[Ranked], max_num_results: int, score_threshold: float = 0.0
) -> list[Ranked]:
    """The results file_search returns: those scoring at least `score_threshold` (OpenAI's
    default 0 keeps all), best first with ties by chunk ID, at most `max_num_results`.
    The threshold applies before the cut, so a cut never leaves room a lower result could
    have filled."""
    _check_max_num_results(max_num_results)
    _check_score_threshold(score_threshold)
    kept = _ordered(r for r in results if r.score >= score_threshold)
    return kept[:max_num_results]


@dataclass(frozen=True, slots=True)
class Ranker:
    """What a `ranking_options.ranker` runs. `name` is the concrete, dated ranker, the one a
    run step can report: `auto` leaves the choice to the server and resolves to the newest."""

    name: str
    k: int = RRF_K

    def rank(self, lexical: Sequence[Hit], dense: Sequence[Hit] | None) -> list[Ranked]:
        """Hybrid when dense search ran (`dense` is a list, even an empty one, which leaves
        the lexical ranks to decide alone), lexical alone by its own scores when it did not
        (`None`: no embedding model is configured)."""
        if dense is None:
            return by_score(lexical)
        return hybrid(lexical, dense, self.k)


def ranker(name: str | None) -> Ranker:
    """The ranker a request names (None: not given, OpenAI's default `auto`).

    OpenAI does not say how its rankers differ; here there is one ranking,
    `default_2024_08_21` (above), and `auto` resolves to it. The dated name is the pin: if a
    later ranking is added, `auto` moves to it and `default_2024_08_21` keeps this one.
    """
    if name is None or name == "auto":
        return Ranker("default_2024_08_21")
    if name in RANKERS:
        return Ranker(name)
    raise RankingOptionsError(
        RANKER_PARAM,
        f"Invalid value for '{RANKER_PARAM}': {name!r}. "
        f"Supported values are: {', '.join(repr(r) for r in RANKERS)}.",
    )


def _check_max_num_results(value: object) -> None:
    """A JSON `true` arrives as a Python bool, which is an int; OpenAI refuses it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise RankingOptionsError(
            MAX_NUM_RESULTS_PARAM,
            f"Invalid type for '{MAX_NUM_RESULTS_PARAM}': expected an integer, but got "
            f"{type(value).__name__} instead.",
        )
    if not MIN_RESULTS <= value <= MAX_RESULTS:
        side = "below minimum" if value < MIN_RESULTS else "above maximum"
        bound = MIN_RESULTS if value < MIN_RESULTS else MAX_RESULTS
        raise RankingOptionsError(
            MAX_NUM_RESULTS_PARAM,
            f"Invalid '{MAX_NUM_RESULTS_PARAM}': integer {side} value. "
            f"Expected a value {'>=' if value < MIN_RESULTS else '<='} {bound}, "
            f"but got {value} instead.",
        )


def _check_score_threshold(value: object) -> None:
    """A number in [0, 1]; JSON integers 0 and 1 are numbers too, booleans and NaN are not."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RankingOptionsError(
            SCORE_THRESHOLD_PARAM,
            f"Invalid type for '{SCORE_THRESHOLD_PARAM}': expected a number, but got "
            f"{type(value).__name__} instead.",
        )
    if not 0.0 <= value <= 1.0:
        raise RankingOptionsError(
            SCORE_THRESHOLD_PARAM,
            f"Invalid '{SCORE_THRESHOLD_PARAM}': expected a number between 0 and 1, "
            f"but got {value} instead.",
        )
