"""Searching a vector store through the official SDK, on whichever store the run uses:
lexical ranking, OpenAI's 0-1 scores, `max_num_results`, `score_threshold`, and the 400s and
404s a search that cannot succeed answers. Attribute `filters` are in
`test_vector_store_filters.py`."""

from __future__ import annotations

import openai
import pytest
from harness import assert_api_error

SAM = b"# Sam\n\nSam is the baker of the village. Sam bakes rye bread every morning.\n"
HARBOUR = b"# Harbour\n\nThe harbour holds fishing boats. Gulls circle the lighthouse at dusk.\n"


@pytest.fixture
def store_id(client: openai.OpenAI) -> str:
    """A store holding two small files, both ingested."""
    vector_store_id = client.vector_stores.create(name="village").id
    for name, data in (("sam.md", SAM), ("harbour.md", HARBOUR)):
        done = client.vector_stores.files.upload_and_poll(
            vector_store_id=vector_store_id,
            file=(name, data),
            attributes={"topic": name.removesuffix(".md")},
            poll_interval_ms=50,
        )
        assert done.status == "completed"
    return vector_store_id


def test_the_file_sharing_the_questions_words_ranks_first(
    client: openai.OpenAI, store_id: str
) -> None:
    raw = client.vector_stores.with_raw_response.search(store_id, query="Who is Sam?")
    page = raw.http_response.json()
    assert page["object"] == "vector_store.search_results.page"
    assert page["search_query"] == ["Who is Sam?"]
    assert (page["has_more"], page["next_page"]) == (False, None)
    results = list(raw.parse())
    assert results, "the file about Sam was not found"
    best = results[0]
    assert best.filename == "sam.md"
    assert best.attributes == {"topic": "sam"}
    assert best.content[0].type == "text"
    assert "baker" in best.content[0].text
    assert all(0.0 <= r.score <= 1.0 for r in results)
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)


def test_both_files_rank_by_shared_words(client: openai.OpenAI) -> None:
    # Words no other test writes: how rare a word is counts over the whole database's index,
    # so words other tests' files share would weigh differently from run to run.
    store_id = client.vector_stores.create(name="marsupials").id
    for name, data in (
        ("pair.md", b"A quokka and a wombat share the burrow."),
        ("one.md", b"A numbat eats termites."),
    ):
        done = client.vector_stores.files.upload_and_poll(
            vector_store_id=store_id, file=(name, data), poll_interval_ms=50
        )
        assert done.status == "completed"
    results = list(client.vector_stores.search(store_id, query=["quokka wombat", "numbat"]))
    assert [r.filename for r in results] == ["pair.md", "one.md"]
    assert results[0].score > results[1].score
    assert results[0].score < 1.0


def test_max_num_results_and_score_threshold_cut_the_results(
    client: openai.OpenAI, store_id: str
) -> None:
    query = "lighthouse gulls bread"
    everything = list(client.vector_stores.search(store_id, query=query))
    assert len(everything) == 2
    one = list(client.vector_stores.search(store_id, query=query, max_num_results=1))
    assert [r.file_id for r in one] == [everything[0].file_id]
    between = (everything[0].score + everything[1].score) / 2
    kept = list(
        client.vector_stores.search(
            store_id, query=query, ranking_options={"score_threshold": between}
        )
    )
    assert [r.file_id for r in kept] == [everything[0].file_id]
    none = list(
        client.vector_stores.search(
            store_id, query=query, ranking_options={"ranker": "none", "score_threshold": 1}
        )
    )
    assert none == []


def test_rewrite_query_searches_the_query_as_given(client: openai.OpenAI, store_id: str) -> None:
    raw = client.vector_stores.with_raw_response.search(
        store_id, query="rye bread", rewrite_query=True
    )
    assert raw.http_response.json()["search_query"] == ["rye bread"]
    assert [r.filename for r in raw.parse()] == ["sam.md"]


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"query": ""}, "query"),
        ({"query": []}, "query"),
        ({"query": "  "}, "query"),
        ({"query": "x", "max_num_results": 0}, "max_num_results"),
        ({"query": "x", "max_num_results": 51}, "max_num_results"),
        ({"query": "x", "ranking_options": {"score_threshold": 1.5}}, None),
        ({"query": "x", "ranking_options": {"ranker": "fastest"}}, "ranking_options.ranker"),
    ],
)
def test_a_search_that_cannot_succeed_is_a_400(
    client: openai.OpenAI, store_id: str, kwargs: dict[str, object], param: str | None
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.vector_stores.search(store_id, **kwargs)  # type: ignore[arg-type]
    assert_api_error(
        info.value,
        400,
        "invalid_request_error",
        param=param if param is not None else "ranking_options.score_threshold",
    )


def test_an_unknown_or_deleted_store_is_a_404(client: openai.OpenAI, store_id: str) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.vector_stores.search("vs_unknown", query="Sam")
    assert_api_error(info.value, 404, "invalid_request_error", param="vector_store_id")
    client.vector_stores.delete(store_id)
    with pytest.raises(openai.NotFoundError) as info:
        client.vector_stores.search(store_id, query="Sam")
    assert_api_error(info.value, 404, "invalid_request_error", param="vector_store_id")
