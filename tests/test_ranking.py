"""Ranked store candidates made into file_search results: fusion order, the 0-1 scale that
`score_threshold` relies on, the threshold-then-cut, deterministic ties and OpenAI's rankers."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from compat_core.retrieval.ranking import (
    CONFIDENCE_RANK,
    MAX_RESULTS,
    RANKER_PARAM,
    RANKERS,
    RRF_K,
    SCORE_THRESHOLD_PARAM,
    Hit,
    Ranked,
    RankingOptionsError,
    by_score,
    confidence,
    hybrid,
    ranker,
    select,
)


def hits(*chunk_ids: str) -> list[Hit]:
    """A short best-first list of equal scores: fewer than `CONFIDENCE_RANK` candidates, so
    fully confident, and two such lists weigh the same."""
    return [Hit(chunk_id, 0.5) for chunk_id in chunk_ids]


def spread(name: str, best: float, rest: float, size: int = CONFIDENCE_RANK + 5) -> list[Hit]:
    """A dense-style list (scores are cosines) `size` long: `{name}0` scores `best`, the others
    `rest`, so its confidence is `1 - rest / best`."""
    return [Hit(f"{name}{i}", best if i == 0 else rest) for i in range(size)]


def test_a_chunk_in_both_lists_beats_one_high_in_only_one() -> None:
    lexical = hits("only-lexical", "x1", "x2", "x3", "both")
    dense = hits("only-dense", "y1", "y2", "y3", "both")

    ranked = hybrid(lexical, dense)

    assert ranked[0].chunk_id == "both"
    assert {r.chunk_id for r in ranked[1:3]} == {"only-lexical", "only-dense"}


def test_first_in_both_scores_one_and_first_in_one_of_two_equal_lists_scores_half() -> None:
    ranked = hybrid(hits("a", "b"), hits("a"))

    assert ranked[0] == Ranked("a", 1.0)
    assert ranked[1].chunk_id == "b"
    # Half the vote, at rank 2: (k + 1) / (k + 2).
    assert ranked[1].score == pytest.approx(0.5 * (RRF_K + 1) / (RRF_K + 2))


def test_a_list_that_found_nothing_leaves_the_other_to_decide_alone() -> None:
    for ranked in (hybrid(hits("a", "b", "c"), []), hybrid([], hits("a", "b", "c"))):
        assert [r.chunk_id for r in ranked] == ["a", "b", "c"]
        assert ranked[0].score == 1.0
        assert ranked[2].score == pytest.approx((RRF_K + 1) / (RRF_K + 3))
    assert hybrid([], []) == []


def test_a_confident_list_outvotes_one_that_cannot_tell_its_candidates_apart() -> None:
    sharp = spread("s", best=0.9, rest=0.3)
    flat = spread("f", best=0.61, rest=0.6)

    # Which list is lexical does not matter: confidence is each list's own.
    lexical_sharp = hybrid([Hit.from_cosine(h.chunk_id, h.score) for h in sharp], flat)
    dense_sharp = hybrid(flat, sharp)

    for ranked in (lexical_sharp, dense_sharp):
        # The flat list's first is beaten by every candidate of the sharp one.
        order = [r.chunk_id for r in ranked]
        assert order[: len(sharp)] == [h.chunk_id for h in sharp]
        assert order[len(sharp)] == "f0"
    # Equally confident lists (plain rank fusion) tie their firsts instead.
    equal = hybrid(hits("s0", "s1"), hits("f0", "f1"))
    assert equal[0] == Ranked("f0", 0.5)
    assert equal[1] == Ranked("s0", 0.5)


def test_confidence_compares_the_best_with_the_candidate_at_confidence_rank() -> None:
    evidence = [10.0, *([7.0] * (CONFIDENCE_RANK - 2)), 4.0, 1.0]

    assert confidence(evidence) == pytest.approx(0.6)
    assert confidence([3 * e for e in evidence]) == pytest.approx(0.6)
    assert confidence(evidence[: CONFIDENCE_RANK - 1]) == 1.0
    assert confidence([5.0] * CONFIDENCE_RANK) == 0.0
    assert confidence([]) == 0.0
    assert confidence([0.0, 0.0]) == 0.0
    assert confidence([math.inf, *([1.0] * CONFIDENCE_RANK)]) == 1.0
    assert confidence([math.inf] * CONFIDENCE_RANK) == 0.0


def test_a_lexical_lists_confidence_is_its_stores_own_whatever_the_stores_scale() -> None:
    """bm25 and ts_rank lists with the same raw magnitudes up to a factor weigh the same:
    the odds of the 0-1 score undo the per-store squash, whose half then cancels."""
    magnitudes = [9.0, 8.0, 5.0, *([4.0] * CONFIDENCE_RANK)]
    bm25 = [Hit.from_bm25(f"c{i}", -m) for i, m in enumerate(magnitudes)]
    ts_rank = [Hit.from_ts_rank(f"c{i}", m * 0.37) for i, m in enumerate(magnitudes)]
    dense = spread("d", best=0.8, rest=0.5)

    assert [r.chunk_id for r in hybrid(bm25, dense)] == [r.chunk_id for r in hybrid(ts_rank, dense)]
    assert [r.score for r in hybrid(bm25, dense)] == pytest.approx(
        [r.score for r in hybrid(ts_rank, dense)]
    )


def test_the_order_within_a_list_is_the_lists_whatever_its_scores() -> None:
    unordered = [Hit("a", 0.01), Hit("b", 0.9)]

    assert [r.chunk_id for r in hybrid(unordered, [])] == ["a", "b"]


def test_only_the_best_place_of_a_chunk_listed_twice_counts() -> None:
    once = hybrid(hits("a", "b"), hits("b"))
    twice = hybrid(hits("a", "b", "a", "a"), hits("b", "b"))

    assert twice == once


def test_a_threshold_on_fused_scores_keeps_what_both_lists_agree_on() -> None:
    ranked = hybrid(hits("both", "lex"), hits("both", "dense"))

    assert [r.chunk_id for r in select(ranked, 10, 1.0)] == ["both"]
    assert [r.chunk_id for r in select(ranked, 10, 0.4)] == ["both", "dense", "lex"]
    assert select(ranked, 10, 0.45) == [Ranked("both", 1.0)]


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
    assert ranker("auto").rank(lexical, [])[0] == Ranked("lex-best", 1.0)


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


@st.composite
def ranked_lists(draw: st.DrawFn) -> tuple[list[Hit], list[Hit]]:
    """Two best-first lists over a few chunks, with best-first scores of any spread (so any
    pair of confidences), as the stores return them."""
    ids = ["a", "b", "c", "d", "e", "f"]
    lists: list[list[Hit]] = []
    for make in (Hit.from_bm25, Hit.from_cosine):
        chosen = draw(st.permutations(ids))[: draw(st.integers(0, len(ids)))]
        size = len(chosen)
        raw = sorted(draw(st.lists(st.floats(0.0, 50.0), min_size=size, max_size=size)))
        if make is Hit.from_bm25:
            lists.append([make(c, -r) for c, r in zip(chosen, reversed(raw), strict=True)])
        else:
            scores = [min(r / 50.0, 1.0) for r in reversed(raw)]
            lists.append([make(c, s) for c, s in zip(chosen, scores, strict=True)])
    return lists[0], lists[1]


@given(ranked_lists(), st.integers(min_value=0, max_value=100))
def test_a_chunk_placed_at_least_as_high_everywhere_scores_at_least_as_high(
    lists: tuple[list[Hit], list[Hit]], k: int
) -> None:
    lexical, dense = lists
    score = {r.chunk_id: r.score for r in hybrid(lexical, dense, k)}
    place = [{h.chunk_id: i for i, h in enumerate(hits)} for hits in lists]
    for x in score:
        for y in score:
            if all(y not in p or (x in p and p[x] <= p[y]) for p in place):
                assert score[x] >= score[y]


@given(ranked_lists(), st.integers(min_value=0, max_value=100))
def test_first_in_both_lists_scores_one(lists: tuple[list[Hit], list[Hit]], k: int) -> None:
    lexical, dense = lists
    ranked = hybrid(lexical, dense, k)
    if lexical and dense and lexical[0].chunk_id == dense[0].chunk_id:
        assert ranked[0] == Ranked(lexical[0].chunk_id, 1.0)
    assert all(r.score < 1.0 for r in ranked if r.chunk_id != ranked[0].chunk_id)
