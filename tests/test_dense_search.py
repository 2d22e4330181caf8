"""Dense and hybrid vector store search through the official SDK, with an embedding model
configured (`COMPAT_EMBEDDING_MODEL`), on whichever store the pass uses (PostgreSQL: pgvector).

The only double is the embeddings upstream (`runs.embedding_upstream`): a hashed bag of words
in which "automobile" and "car" are one concept, the stand-in for meaning that no stemmer or
full-text index relates. So a query can be found by meaning alone, by words alone, or by both.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import openai
import pytest
from harness import MakeClient
from harness.server import ServerThread, database_url, drop_database
from runs.embedding_upstream import REFUSE, EmbeddingUpstream

from compat_core.config import ConfigError, ProviderConfig

T = TypeVar("T")
ALPHA = "emb/alpha-256"
BETA = "emb/beta-384"
DEADLINE = 30.0

CAR_ENGINE = b"The car engine roared."
AUTOMOBILE_MOTOR = b"The automobile motor hummed."
CAR_BY_THE_SEA = b"A car was parked by the sea."
KITTEN = b"A kitten sleeps on the warm windowsill."


@pytest.fixture(scope="module")
def upstream() -> Iterator[EmbeddingUpstream]:
    with EmbeddingUpstream() as server:
        yield server


def _settings(upstream: EmbeddingUpstream, model: str) -> dict[str, Any]:
    return {
        "embedding_model": model,
        "extra_providers": {"emb": ProviderConfig(name="emb", base_url=upstream.base_url)},
    }


def _start(server: ServerThread) -> ServerThread:
    """Start it, skipping (or failing, where pgvector is required) on a PostgreSQL server
    without pgvector: the other tests show that start-up error."""
    try:
        return server.start()
    except ConfigError as exc:
        if "pgvector" not in str(exc) or os.environ.get("COMPAT_TEST_REQUIRE_PGVECTOR"):
            raise
        pytest.skip(f"the PostgreSQL server does not offer pgvector: {exc}")


@pytest.fixture
def make_dense_server(
    tmp_path_factory: pytest.TempPathFactory, upstream: EmbeddingUpstream
) -> Iterator[Callable[[str], ServerThread]]:
    servers: list[ServerThread] = []

    def make(model: str) -> ServerThread:
        url = database_url(tmp_path_factory.mktemp("dense"))
        server = ServerThread(database_url=url, **_settings(upstream, model))
        servers.append(server)
        return _start(server)

    yield make
    for server in servers:
        try:
            server.stop()
        finally:
            drop_database(server.database_url)


@pytest.fixture
def dense(make_dense_server: Callable[[str], ServerThread], make_client: MakeClient) -> Any:
    return make_client(make_dense_server(ALPHA))


def _fill(client: openai.OpenAI, files: dict[str, bytes]) -> str:
    store_id = client.vector_stores.create(name="dense").id
    for name, data in files.items():
        done = client.vector_stores.files.upload_and_poll(
            vector_store_id=store_id, file=(name, data), poll_interval_ms=50
        )
        assert done.status == "completed", done.last_error
    return store_id


def _names(client: openai.OpenAI, store_id: str, query: str, **options: Any) -> list[str]:
    return [r.filename for r in client.vector_stores.search(store_id, query=query, **options)]


def _eventually(probe: Callable[[], T | None], what: str) -> T:
    deadline = time.monotonic() + DEADLINE
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"not within {DEADLINE} s: {what}"
        time.sleep(0.05)


def test_a_chunk_is_found_by_meaning_where_lexical_search_finds_nothing(
    dense: openai.OpenAI,
) -> None:
    store_id = _fill(dense, {"cars.md": CAR_ENGINE, "cats.md": KITTEN})
    assert _names(dense, store_id, "automobile", ranking_options={"ranker": "none"}) == []
    results = list(dense.vector_stores.search(store_id, query="automobile"))
    assert [r.filename for r in results][:1] == ["cars.md"]
    # The lexical search found nothing, so the dense one decides alone: its first scores as
    # both searches' first place would.
    assert results[0].score == 1.0


def test_hybrid_ranks_what_both_searches_find_above_what_one_finds(
    dense: openai.OpenAI,
) -> None:
    store_id = _fill(
        dense,
        {
            "engine.md": CAR_ENGINE,
            "motor.md": AUTOMOBILE_MOTOR,
            "sea.md": CAR_BY_THE_SEA,
        },
    )
    # Lexical alone: the files with the query's words, "motor.md" has none of them.
    assert _names(dense, store_id, "car engine", ranking_options={"ranker": "none"}) == [
        "engine.md",
        "sea.md",
    ]
    results = list(dense.vector_stores.search(store_id, query="car engine"))
    # Dense alone would put "motor.md" (car and engine in meaning) level with "engine.md" and
    # above "sea.md"; fused, the file both searches placed comes before it.
    assert [r.filename for r in results] == ["engine.md", "sea.md", "motor.md"]
    scores = [r.score for r in results]
    assert scores[0] == pytest.approx(1.0, abs=0.02)
    assert 0.5 < scores[1] < scores[0]
    assert 0.0 < scores[2] <= 0.5
    for ranker in ("auto", "default-2024-11-15"):
        same = _names(dense, store_id, "car engine", ranking_options={"ranker": ranker})
        assert same == ["engine.md", "sea.md", "motor.md"]
    kept = _names(dense, store_id, "car engine", ranking_options={"score_threshold": 0.6})
    assert kept == ["engine.md", "sea.md"]
    assert _names(dense, store_id, "car engine", max_num_results=1) == ["engine.md"]


def test_an_embedding_failure_fails_the_file_with_server_error(dense: openai.OpenAI) -> None:
    store_id = dense.vector_stores.create(name="refused").id
    done = dense.vector_stores.files.upload_and_poll(
        vector_store_id=store_id, file=("bad.md", f"{REFUSE} this".encode()), poll_interval_ms=50
    )
    assert done.status == "failed"
    assert done.last_error is not None
    assert done.last_error.code == "server_error"
    assert "could not be embedded" in done.last_error.message
    assert "HTTP 400" in done.last_error.message
    counts = dense.vector_stores.retrieve(store_id).file_counts
    assert (counts.failed, counts.completed, counts.total) == (1, 0, 1)
    assert dense.vector_stores.files.content(done.id, vector_store_id=store_id).data == []


def test_a_query_that_cannot_be_embedded_is_searched_lexically(
    dense: openai.OpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    store_id = _fill(dense, {"engine.md": CAR_ENGINE, "motor.md": AUTOMOBILE_MOTOR})
    with caplog.at_level(logging.WARNING, logger="compat_core.retrieval.search"):
        results = list(dense.vector_stores.search(store_id, query=f"{REFUSE} car engine"))
    assert [r.filename for r in results] == ["engine.md"]
    assert any("could not be embedded" in r.getMessage() for r in caplog.records)


def test_stores_are_embedded_when_a_model_is_configured_and_again_when_it_changes(
    tmp_path: Path, upstream: EmbeddingUpstream, make_client: MakeClient
) -> None:
    server = ServerThread(database_url=database_url(tmp_path))
    try:
        _start(server)
        client = make_client(server)
        store_id = _fill(client, {"cars.md": CAR_ENGINE, "cats.md": KITTEN})
        assert _names(client, store_id, "automobile") == []
        server.stop()

        for model in (ALPHA, BETA):
            server.settings_overrides.update(_settings(upstream, model))
            _start(server)
            client = make_client(server)
            # Meanwhile (and after) lexical search finds what it found before.
            assert _names(client, store_id, "kitten")[:1] == ["cats.md"]

            def found_by_meaning(client: openai.OpenAI = client) -> bool:
                return _names(client, store_id, "automobile")[:1] == ["cars.md"]

            _eventually(found_by_meaning, f"the store re-embedded with {model}")
            upstream_name = model.partition("/")[2]
            embedded = upstream.inputs_for(upstream_name)
            assert CAR_ENGINE.decode().strip() in " ".join(embedded)
            assert "automobile" in embedded
            server.stop()
    finally:
        server.stop()
        drop_database(server.database_url)


@pytest.mark.parametrize(
    ("model", "says"),
    [
        ("nowhere/embed", "names provider 'nowhere', which is not configured"),
        ("builtin/echo", "no built-in embedding model ships"),
    ],
)
def test_an_embedding_model_no_provider_serves_stops_the_start(
    tmp_path: Path, upstream: EmbeddingUpstream, model: str, says: str
) -> None:
    server = ServerThread(database_url=database_url(tmp_path), **_settings(upstream, model))
    try:
        with pytest.raises(ConfigError) as raised:
            server.start()
        assert str(raised.value).startswith(f"COMPAT_EMBEDDING_MODEL={model!r}: ")
        assert says in str(raised.value)
    finally:
        drop_database(server.database_url)


def test_an_embedding_model_must_name_its_provider() -> None:
    from compat_core.config import Settings

    with pytest.raises(ValueError, match="provider/model"):
        Settings(embedding_model="nomic-embed-text")
    assert Settings(embedding_model="").embedding_model == ""


def test_attribute_filters_apply_to_what_the_dense_search_finds(dense: openai.OpenAI) -> None:
    store_id = _fill(dense, {"cars.md": CAR_ENGINE, "motor.md": AUTOMOBILE_MOTOR})
    for entry in dense.vector_stores.files.list(store_id):
        name = dense.files.retrieve(entry.id).filename
        dense.vector_stores.files.update(
            entry.id, vector_store_id=store_id, attributes={"team": name.removesuffix(".md")}
        )
    assert sorted(_names(dense, store_id, "automobile")) == ["cars.md", "motor.md"]
    # "motor.md" is found by its words as well as by meaning, "cars.md" by meaning alone: the
    # filter keeps exactly the one it names, whichever search found it.
    for team in ("cars", "motor"):
        kept = _names(
            dense, store_id, "automobile", filters={"type": "eq", "key": "team", "value": team}
        )
        assert kept == [f"{team}.md"]


def test_the_file_search_tool_finds_by_meaning_as_the_endpoint_does(dense: openai.OpenAI) -> None:
    store_id = _fill(dense, {"cars.md": CAR_ENGINE, "cats.md": KITTEN})
    assistant = dense.beta.assistants.create(
        model="builtin/echo",
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store_id]}},
    )
    run = dense.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={
            "messages": [{"role": "user", "content": '/call file_search {"query": "automobile"}'}]
        },
        poll_interval_ms=50,
    )
    assert run.status == "completed", run.last_error
    steps = dense.beta.threads.runs.steps.list(run.id, thread_id=run.thread_id, order="asc")
    [call] = [
        c for s in steps if s.step_details.type == "tool_calls" for c in s.step_details.tool_calls
    ]
    assert call.type == "file_search"
    # No word of the query is in either file: only the dense half of the search finds "cars.md".
    assert [r.file_name for r in call.file_search.results or ()] == ["cars.md"]
