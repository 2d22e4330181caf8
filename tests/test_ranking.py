"""Ranked store candidates made into file_search results: fusion order, the 0-1 scale that
`score_threshold` relies on, the threshold-then-cut, deterministic ties and OpenAI's rankers."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from compat_core.retrieval.ranking import (
    MAX_RESULTS,
    RANKER_PARAM,
    RANKERS,
    SCORE_THRESHOLD_PARAM,
    Hit,
    Ranked,
    RankingOptionsError,
    by_score,
    hybrid,
    ranker,
    select,
)


def hits(*chunk_ids: str) -> list[Hit]:
    """A best-first list; its scores are irrelevant to fusion, which uses ranks only."""
    return [Hit(chunk_id, 0.5) for chunk_id in chunk_ids]


def test_a_chunk_in_both_lists_beats_one_high_in_only_one() -> None:
    lexical = hits("only-lexical", "x1", "x2", "x3", "both")
    dense = hits("only-dense", "y1", "y2", "y3", "both")

    ranked = hybrid(lexical, dense)

    assert ranked[0].chunk_id == "both"
    assert {r.chunk_id for r in ranked[1:3]} == {"only-lexical", "only-dense"}


def test_first_in_both_scores_one_and_first_in_one_scores_half() -> None:
    ranked = hybrid(hits("a", "b"), hits("a"))

    assert ranked[0] == Ranked("a", 1.0)
    assert ranked[1].chunk_id == "b"
    # 1/(60+2) over 2/(60+1): second in one list only.
    assert ranked[1].score == pytest.approx(61 / 124)
    assert hybrid(hits("a"), [])[0].score == pytest.approx(0.5)


def test_only_the_best_place_of_a_chunk_listed_twice_counts() -> None:
    once = hybrid(hits("a", "b"), hits("b"))
    twice = hybrid(hits("a", "b", "a", "a"), hits("b", "b"))

    assert twice == once


def test_fusion_ignores_the_lists_own_scores() -> None:
    low_scores = [Hit("a", 0.01), Hit("b", 0.9)]

    assert [r.chunk_id for r in hybrid(low_scores, [])] == ["a", "b"]


def test_fusion_refuses_a_negative_k() -> None:
    with pytest.raises(ValueError, match="k must be"):
        hybrid(hits("a"), hits("a"), k=-1)


def test_bm25_most_negative_is_best() -> None:
    rows = [("weak", -0.2), ("best", -7.5), ("middling", -1.0), ("no-evidence", 0.0)]

    ranked = by_score([Hit.from_bm25(chunk_id, raw) for chunk_id, raw in rows])

    assert [r.chunk_id for r in ranked] == ["best", "middling", "weak", "no-evidence"]
    assert ranked[1].score == pytest.approx(0.5)
    assert ranked[3].score == 0.0


def test_ts_rank_highest_is_best_on_the_same_scale() -> None:
    # PostgreSQL's score of "Sam owns the bakery on Main Street" among ten chunks for
    # 'sam | whale' and 'sam | bakery' (config 'english'; each word in one chunk of ten, so an
    # IDF of ln(1 + 9.5 / 1.5), and a word matched once scores its IDF), and bm25 of the same
    # chunk among ten for the same queries in FTS5: one word of two matched, then both.
    rows = [("one-of-two", 1.9924), ("both", 3.9849), ("none", 0.0)]

    ranked = by_score([Hit.from_ts_rank(chunk_id, raw) for chunk_id, raw in rows])

    assert [r.chunk_id for r in ranked] == ["both", "one-of-two", "none"]
    bm25_one, bm25_both = Hit.from_bm25("", -1.0619), Hit.from_bm25("", -2.1239)
    assert abs(ranked[0].score - bm25_both.score) < 0.15
    assert abs(ranked[1].score - bm25_one.score) < 0.15


def test_cosine_is_its_own_score_and_negative_is_zero() -> None:
    assert Hit.from_cosine("a", 0.42).score == 0.42
    assert Hit.from_cosine("a", -0.8).score == 0.0
    assert Hit.from_cosine("a", 1.0000002).score == 1.0
    assert Hit.from_cosine("a", math.nan).score == 0.0


def test_a_store_score_that_is_no_number_ranks_last_without_raising() -> None:
    ranked = by_score([Hit.from_bm25("nan", math.nan), Hit.from_bm25("ok", -0.1)])

    assert [r.chunk_id for r in ranked] == ["ok", "nan"]
    assert ranked[0].score == pytest.approx(0.1 / 1.1)
    assert ranked[1].score == 0.0
    assert Hit.from_bm25("inf", -math.inf).score == 1.0


def test_a_hit_off_the_scale_is_refused() -> None:
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        Hit("a", 1.5)


def test_a_chunk_listed_twice_in_one_search_keeps_its_best_score() -> None:
    ranked = by_score([Hit("a", 0.2), Hit("b", 0.5), Hit("a", 0.7)])

    assert ranked == [Ranked("a", 0.7), Ranked("b", 0.5)]


def test_threshold_applies_before_the_cut() -> None:
    results = [Ranked(f"c{i}", s) for i, s in enumerate([0.9, 0.1, 0.8, 0.3, 0.7, 0.5])]

    assert select(results, 2, 0.5) == [Ranked("c0", 0.9), Ranked("c2", 0.8)]
    assert [r.chunk_id for r in select(results, 10, 0.5)] == ["c0", "c2", "c4", "c5"]
    assert len(select(results, 10)) == 6
    assert select(results, 10, 1) == []


def test_equal_scores_are_ordered_by_chunk_id_whatever_the_input_order() -> None:
    tied = [Ranked("b", 0.5), Ranked("c", 0.5), Ranked("a", 0.5), Ranked("z", 0.9)]

    first = select(tied, 3)
    again = select(list(reversed(tied)), 3)

    assert first == again == [Ranked("z", 0.9), Ranked("a", 0.5), Ranked("b", 0.5)]
    assert [r.chunk_id for r in hybrid(hits("q", "p"), hits("p", "q"))] == ["p", "q"]


@pytest.mark.parametrize(
    ("value", "fragment"),
    [(0, "below minimum"), (MAX_RESULTS + 1, "above maximum"), (True, "expected an integer")],
)
def test_max_num_results_out_of_bounds_is_refused(value: int, fragment: str) -> None:
    with pytest.raises(RankingOptionsError, match=fragment) as refused:
        select([], value)

    assert refused.value.param == "max_num_results"


@pytest.mark.parametrize("value", [-0.01, 1.01, math.nan, math.inf, False, "0.5"])
def test_score_threshold_outside_zero_to_one_is_refused(value: object) -> None:
    with pytest.raises(RankingOptionsError) as refused:
        select([], 1, value)  # type: ignore[arg-type]

    assert refused.value.param == SCORE_THRESHOLD_PARAM


def test_rankers_are_openais_and_auto_resolves_to_the_dated_one() -> None:
    assert ranker(None) == ranker("auto") == ranker("default_2024_08_21")
    assert ranker("auto").name == "default_2024_08_21"
    assert set(RANKERS) == {"auto", "default_2024_08_21"}


@pytest.mark.parametrize("name", ["default-2024-11-15", "AUTO", "", "bm25"])
def test_an_unknown_ranker_is_refused_naming_the_param(name: str) -> None:
    with pytest.raises(RankingOptionsError, match="Supported values") as refused:
        ranker(name)

    assert isinstance(refused.value, ValueError)
    assert refused.value.param == RANKER_PARAM == "ranking_options.ranker"


def test_a_ranker_fuses_when_dense_search_ran_and_ranks_lexically_when_not() -> None:
    lexical = [Hit("lex-best", 0.3), Hit("both", 0.2)]
    dense = [Hit("both", 0.9)]

    assert ranker("auto").rank(lexical, None) == by_score(lexical)
    assert ranker("auto").rank(lexical, dense) == hybrid(lexical, dense)
    assert ranker("auto").rank(lexical, [])[0] == Ranked("lex-best", 0.5)


raw_scores = st.floats(allow_nan=False)
chunk_ids = st.sampled_from(["a", "b", "c", "d", "e"]) | st.text(max_size=4)


@st.composite
def store_hits(draw: st.DrawFn) -> list[Hit]:
    """Any store's hits, from any raw float (duplicated chunk IDs included, or none at all)."""
    make = draw(st.sampled_from([Hit.from_bm25, Hit.from_ts_rank, Hit.from_cosine]))
    return [make(c, s) for c, s in draw(st.lists(st.tuples(chunk_ids, raw_scores)))]


@given(store_hits(), store_hits(), st.integers(min_value=0, max_value=1000))
def test_every_score_is_on_openais_scale(lexical: list[Hit], dense: list[Hit], k: int) -> None:
    for results in (hybrid(lexical, dense, k), by_score(lexical), by_score(dense)):
        assert all(0.0 <= r.score <= 1.0 for r in results)
        assert len({r.chunk_id for r in results}) == len(results)
        assert results == sorted(results, key=lambda r: (-r.score, r.chunk_id))


@given(
    st.lists(st.builds(Ranked, chunk_ids, st.floats(min_value=0, max_value=1))),
    st.integers(min_value=1, max_value=MAX_RESULTS),
    st.floats(min_value=0, max_value=1),
)
def test_selection_keeps_the_best_above_the_threshold(
    results: list[Ranked], max_num_results: int, threshold: float
) -> None:
    chosen = select(results, max_num_results, threshold)

    above = [r for r in results if r.score >= threshold]
    assert len(chosen) == min(len(above), max_num_results)
    assert all(r.score >= threshold for r in chosen)
    left_out = [r for r in above if r not in chosen]
    assert all(r.score <= min(c.score for c in chosen) for r in left_out)
