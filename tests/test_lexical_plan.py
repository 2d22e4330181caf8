"""The common-terms plan of a lexical search: rare words choose the chunks ranked, common words
only order them, and a search still finds what the OR of all its words would have found first.

The plan itself is checked on word counts alone; the store half runs it on a real SQLite file
and, in the PostgreSQL pass, a real PostgreSQL database, with the stores' candidate budgets
made tiny so that a dozen chunks behave like a big store (a word in most of them is common).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from sqlalchemy import text

from compat_core.retrieval import lexical_plan
from compat_core.retrieval.lexical_plan import Step, Term, independent_count, steps
from compat_core.store import PostgresDatabase, SqlStore, TransactionRunner
from compat_core.store.base import ChunkMatch, NewChunk
from compat_core.v1 import vector_stores_pb2

T0 = 1_700_000_000
STORE = "vs_plan"
LIMIT = 5


def _plan(terms: Sequence[Term], budget: int, conjunction: int = 0) -> list[Step]:
    return list(steps(terms, budget, lambda keys: conjunction))


# The plan, on counts.


def test_rare_words_choose_the_candidates_and_the_or_of_all_comes_last() -> None:
    plan = _plan([Term("data", 900), Term("zebra", 2), Term("okapi", 5)], budget=100)

    assert plan[0] == Step(("zebra", "okapi"), conjunctive=False, bounded=False)
    assert plan[1] == Step(("data",), conjunctive=True, bounded=True)
    assert plan[-1] == Step(("zebra", "okapi", "data"), conjunctive=False, bounded=True)


def test_rare_words_stop_at_the_budget_rarest_first() -> None:
    plan = _plan([Term("a", 60), Term("b", 30), Term("c", 50)], budget=100)

    assert plan[0].required == ("b", "c")


def test_on_a_small_store_every_word_is_rare_and_the_plan_is_the_or_of_all() -> None:
    assert _plan([Term("sam", 1), Term("bakery", 3)], budget=100) == [
        Step(("sam", "bakery"), conjunctive=False, bounded=False)
    ]


def test_all_common_words_take_the_shortest_conjunction_that_fits_then_one_word_shorter() -> None:
    terms = [Term("w1", 500), Term("w2", 400), Term("w3", 300)]

    plan = _plan(terms, budget=100, conjunction=50)

    assert plan[0] == Step(("w3", "w2"), conjunctive=True, bounded=False)
    assert plan[1] == Step(("w3",), conjunctive=True, bounded=True)
    assert plan[2] == Step(("w3", "w2", "w1"), conjunctive=False, bounded=True)


def test_a_conjunction_that_never_fits_is_ranked_bounded() -> None:
    plan = _plan([Term("w1", 500), Term("w2", 400)], budget=100, conjunction=300)

    assert plan[0] == Step(("w2", "w1"), conjunctive=True, bounded=True)


def test_a_conjunction_takes_no_more_words_than_the_index_can_read() -> None:
    terms = [Term("w1", 900), Term("w2", 800), Term("w3", 700)]

    plan = list(steps(terms, 100, lambda keys: 1000, reads=1600))

    assert plan[0] == Step(("w3", "w2"), conjunctive=True, bounded=True)


def test_a_conjunction_fits_in_the_common_words_budget_and_ranks_that_many() -> None:
    terms = [Term("w1", 500), Term("w2", 400), Term("w3", 300)]
    counts = {("w3", "w2"): 50, ("w3", "w2", "w1"): 10}

    plan = list(steps(terms, 100, lambda keys: counts[tuple(keys)], common=20))

    assert plan[0] == Step(("w3", "w2", "w1"), conjunctive=True, bounded=False)
    assert plan[1] == Step(("w3", "w2"), conjunctive=True, bounded=True)
    assert [lexical_plan.candidates(step, 100, 20) for step in plan] == [20, 20, 20]


def test_the_rare_words_step_ranks_the_whole_budget() -> None:
    plan = list(steps([Term("data", 900), Term("zebra", 2)], 100, lambda keys: 0, common=20))

    assert [lexical_plan.candidates(step, 100, 20) for step in plan] == [100, 20, 20]


def test_a_single_common_word_is_one_bounded_step() -> None:
    assert _plan([Term("data", 900)], budget=100) == [
        Step(("data",), conjunctive=True, bounded=True)
    ]


def test_independent_words_estimate_a_conjunction() -> None:
    assert independent_count([500, 200], 1000) == 100
    assert independent_count([5000], 1000) == 1000
    assert independent_count([10], 0) == 0


def test_weight_classes_give_rarer_words_more_weight_in_at_most_four_classes() -> None:
    terms = [Term(f"w{n}", 10 * (n + 1)) for n in range(6)]

    classes = lexical_plan.weight_classes(terms, 1000)

    assert len(classes) == lexical_plan.WEIGHT_CLASSES
    assert [c.idf for c in classes] == sorted((c.idf for c in classes), reverse=True)
    assert classes[0].keys[0] == "w0"
    assert sorted(k for c in classes for k in c.keys) == sorted(t.key for t in terms)


# The plan in the stores.

COMMON = "data"
TWELVE = [f"data report number {n} about the quarterly ledger" for n in range(10)] + [
    "data summary",
    "data zebra sighting",
]


async def _store_with(store: SqlStore, texts: Sequence[str]) -> None:
    await store.create_vector_store(vector_stores_pb2.VectorStore(id=STORE, created_at=T0))
    entry = vector_stores_pb2.VectorStoreFile(id="file-1", created_at=T0, vector_store_id=STORE)
    assert await store.add_vector_store_files(STORE, [entry]) is not None
    chunks = [NewChunk(index, body, len(body.split())) for index, body in enumerate(texts)]
    await store.add_chunks(STORE, "file-1", chunks, T0)


@pytest.fixture
def tiny_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three candidates a step: "data" (in all twelve chunks) and "report" (ten) are common."""
    monkeypatch.setattr(lexical_plan, "SQLITE_CANDIDATES", 3)
    monkeypatch.setattr(lexical_plan, "POSTGRES_CANDIDATES", 3)
    monkeypatch.setattr(lexical_plan, "POSTGRES_COMMON_CANDIDATES", 3)


def _texts(found: list[ChunkMatch]) -> list[str]:
    return [match.text for match in found]


@pytest.mark.usefixtures("tiny_budget")
async def test_a_rare_word_beside_a_common_one_finds_its_chunk_first_and_fills_the_limit(
    store: SqlStore,
) -> None:
    await _store_with(store, TWELVE)

    found = await store.search_chunks_lexical([STORE], "data about a zebra?", LIMIT)

    assert found[0].text == "data zebra sighting"
    assert len(found) == LIMIT
    assert all(COMMON in text for text in _texts(found))


@pytest.mark.usefixtures("tiny_budget")
async def test_all_common_words_find_chunks_holding_them(store: SqlStore) -> None:
    await _store_with(store, TWELVE)

    found = await store.search_chunks_lexical([STORE], "data report", LIMIT)

    assert len(found) == LIMIT
    assert all("data report" in text for text in _texts(found))


@pytest.mark.usefixtures("tiny_budget")
async def test_a_common_word_alone_still_finds_chunks(store: SqlStore) -> None:
    await _store_with(store, TWELVE)

    found = await store.search_chunks_lexical([STORE], "DATA", LIMIT)

    assert len(found) == LIMIT


@pytest.mark.usefixtures("tiny_budget")
async def test_a_word_in_no_chunk_leaves_the_others_searched(store: SqlStore) -> None:
    await _store_with(store, TWELVE)

    found = await store.search_chunks_lexical([STORE], "quarterly xylophonist", LIMIT)

    assert len(found) == LIMIT
    assert all("quarterly" in text for text in _texts(found))
    assert await store.search_chunks_lexical([STORE], "xylophonist", LIMIT) == []


@pytest.mark.usefixtures("tiny_budget")
@pytest.mark.parametrize(
    "query", ['data AND (zebra) OR NOT* "report', "zebra:* & !data | <->", "NEAR(data zebra)"]
)
async def test_operators_in_a_planned_search_are_words(store: SqlStore, query: str) -> None:
    await _store_with(store, TWELVE)

    found = await store.search_chunks_lexical([STORE], query, LIMIT)

    assert found[0].text == "data zebra sighting"


async def test_a_rare_words_match_outranks_a_common_words(store: SqlStore) -> None:
    # One word of the query each; the rare word's chunk comes last in ID order, so only a
    # ranking that weighs words by rarity puts it first (plain ts_rank would tie them).
    await _store_with(store, [*(f"ledger entry {n}" for n in range(8)), "zebra sighting"])

    found = await store.search_chunks_lexical([STORE], "zebra ledger", 10)

    assert found[0].text == "zebra sighting"
    assert found[0].raw_score != found[1].raw_score


async def test_statistics_older_than_the_rows_do_not_decide_which_word_is_rarer(
    store: SqlStore, db: TransactionRunner
) -> None:
    if not isinstance(db, PostgresDatabase):
        pytest.skip("PostgreSQL's ANALYZE statistics")
    await _store_with(store, ["bread loaf"])
    # ANALYZE sees one chunk, all "bread"; three more "bread" chunks and one "lighthouse"
    # chunk come after it, so "bread" is now four times as common as "lighthouse".
    await db.write(lambda conn: conn.execute(text("ANALYZE vector_store_chunks")))
    entry = vector_stores_pb2.VectorStoreFile(id="file-2", created_at=T0, vector_store_id=STORE)
    assert await store.add_vector_store_files(STORE, [entry]) is not None
    later = ["bread crust", "bread crumb", "bread roll", "lighthouse keeper"]
    await store.add_chunks(STORE, "file-2", [NewChunk(i, t, 2) for i, t in enumerate(later)], T0)

    found = await store.search_chunks_lexical([STORE], "bread lighthouse", 10)

    assert found[0].text == "lighthouse keeper"
