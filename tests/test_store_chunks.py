"""The chunks of vector store files and their lexical search, on a real database.

A SQLite file; in the PostgreSQL pass (`COMPAT_TEST_POSTGRES_URL`) a fresh PostgreSQL database
for each test. The last test prints search latency over 10k chunks (measured, not asserted).
"""

from __future__ import annotations

import random
import statistics
import time

import pytest
from harness.server import postgres_admin_url
from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

from compat_core.retrieval import lexical
from compat_core.store import SqlStore, TransactionRunner
from compat_core.store.base import ChunkMatch, NewChunk
from compat_core.v1 import vector_stores_pb2

ON_POSTGRES = postgres_admin_url() is not None
T0 = 1_700_000_000
VS_A = "vs_a"
VS_B = "vs_b"


def chunks(*texts: str) -> list[NewChunk]:
    return [NewChunk(index, body, len(body.split())) for index, body in enumerate(texts)]


async def add(
    store: SqlStore, vector_store_id: str, file_id: str, new: list[NewChunk]
) -> list[int]:
    """The file's chunks, the file added to the store first (creating the store if need be):
    a search counts only chunks of files their store holds."""
    if await store.get_vector_store(vector_store_id) is None:
        await store.create_vector_store(
            vector_stores_pb2.VectorStore(id=vector_store_id, created_at=T0)
        )
    entry = vector_stores_pb2.VectorStoreFile(
        id=file_id, created_at=T0, vector_store_id=vector_store_id
    )
    assert await store.add_vector_store_files(vector_store_id, [entry]) is not None
    return await store.add_chunks(vector_store_id, file_id, new, T0)


def texts(matches: list[ChunkMatch]) -> list[str]:
    return [match.text for match in matches]


async def test_added_chunks_are_found_with_their_identity(store: SqlStore) -> None:
    ids = await add(
        store, VS_A, "file-1", chunks("the bakery opens at dawn", "Sam owns the bakery")
    )
    assert len(ids) == 2
    assert ids[0] < ids[1]

    found = await store.search_chunks_lexical([VS_A], "who owns the bakery?", 10)

    assert [(m.chunk_id, m.vector_store_id, m.file_id, m.chunk_index) for m in found] == [
        (ids[1], VS_A, "file-1", 1),
        (ids[0], VS_A, "file-1", 0),
    ]
    assert found[0].text == "Sam owns the bakery"


async def test_more_shared_words_rank_first(store: SqlStore) -> None:
    await add(
        store,
        VS_A,
        "file-1",
        chunks(
            "a river runs through the valley",
            "the orchard grows apples and pears near the river",
            "pears ripen late in autumn",
            "nothing of interest here at all",
        ),
    )

    found = await store.search_chunks_lexical([VS_A], "river pears", 10)

    assert found[0].text == "the orchard grows apples and pears near the river"
    assert len(found) == 3
    # The raw scores are the database's own, best first on its own scale.
    scores = [m.raw_score for m in found]
    if ON_POSTGRES:
        assert scores[0] > scores[1] > 0
    else:
        assert scores[0] < scores[1] < 0


async def test_a_search_sees_only_the_stores_it_names(store: SqlStore) -> None:
    # Store A has many chunks that match better than store B's one: the limit must not be
    # spent on them before the filter.
    await add(store, VS_A, "file-1", chunks(*["lantern lantern lantern"] * 30))
    await add(store, VS_B, "file-2", chunks("a lantern among other words entirely"))

    only_b = await store.search_chunks_lexical([VS_B], "lantern", 5)
    both = await store.search_chunks_lexical([VS_A, VS_B], "lantern", 50)
    neither = await store.search_chunks_lexical(["vs_unknown"], "lantern", 5)

    assert [(m.vector_store_id, m.file_id) for m in only_b] == [(VS_B, "file-2")]
    assert {m.vector_store_id for m in both} == {VS_A, VS_B}
    assert len(both) == 31
    assert neither == []
    assert await store.search_chunks_lexical([], "lantern", 5) == []


async def test_limit_is_applied(store: SqlStore) -> None:
    await add(store, VS_A, "file-1", chunks(*[f"comet number {n}" for n in range(20)]))

    assert len(await store.search_chunks_lexical([VS_A], "comet", 7)) == 7
    assert await store.search_chunks_lexical([VS_A], "comet", 0) == []


HOSTILE_QUERIES = [
    "",
    "   ",
    '"',
    '"unterminated',
    "*",
    "NEAR(",
    "AND OR NOT",
    "title:x",
    "text:bakery",
    "bakery*",
    "-bakery",
    "C++ & C#",
    "!:&|()<>",
    "a' OR 1=1 --",
    "'; DROP TABLE vector_store_chunks; --",
    "\\",
    "bakery\x00owner",
    "\ud800 bakery",
    "\u0000",
    "to be or not to be",
    "???",
    "Crème brûlée",
    "東京タワー",
    "bakery " * 5000,
]


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
async def test_hostile_queries_never_raise(store: SqlStore, query: str) -> None:
    await add(store, VS_A, "file-1", chunks("Sam owns the bakery", "title x text"))

    found = await store.search_chunks_lexical([VS_A], query, 10)

    assert all(m.vector_store_id == VS_A for m in found)
    if "bakery" in query:
        assert "Sam owns the bakery" in texts(found)


async def test_deleting_a_files_chunks_removes_them_from_search(store: SqlStore) -> None:
    await add(store, VS_A, "file-1", chunks("glacier one", "glacier two"))
    await add(store, VS_A, "file-2", chunks("glacier three"))
    await add(store, VS_B, "file-1", chunks("glacier four"))

    assert await store.delete_file_chunks(VS_A, "file-1") == 2
    assert await store.delete_file_chunks(VS_A, "file-1") == 0

    found = await store.search_chunks_lexical([VS_A, VS_B], "glacier", 10)
    assert sorted(texts(found)) == ["glacier four", "glacier three"]
    # The file's chunks can be added again (re-ingestion) once deleted.
    await add(store, VS_A, "file-1", chunks("glacier five"))
    assert len(await store.search_chunks_lexical([VS_A], "glacier", 10)) == 2


async def test_deleting_a_stores_chunks_leaves_other_stores(store: SqlStore) -> None:
    await add(store, VS_A, "file-1", chunks("meadow one", "meadow two"))
    await add(store, VS_A, "file-2", chunks("meadow three"))
    await add(store, VS_B, "file-1", chunks("meadow four"))

    assert await store.delete_store_chunks(VS_A) == 3

    assert await store.search_chunks_lexical([VS_A], "meadow", 10) == []
    assert texts(await store.search_chunks_lexical([VS_A, VS_B], "meadow", 10)) == ["meadow four"]


async def test_the_index_follows_writes_made_outside_the_store_functions(
    store: SqlStore, db: TransactionRunner
) -> None:
    await add(store, VS_A, "file-1", chunks("harbour one", "harbour two"))

    def rewrite(conn: Connection) -> None:
        conn.execute(text("DELETE FROM vector_store_chunks WHERE chunk_index = 0"))
        conn.execute(text("UPDATE vector_store_chunks SET text = 'lighthouse two'"))

    await db.write(rewrite)

    assert await store.search_chunks_lexical([VS_A], "harbour", 10) == []
    assert texts(await store.search_chunks_lexical([VS_A], "lighthouse", 10)) == ["lighthouse two"]


async def test_a_chunk_index_is_stored_once_per_file_and_store(store: SqlStore) -> None:
    await add(store, VS_A, "file-1", chunks("first"))
    await add(store, VS_B, "file-1", chunks("first"))

    with pytest.raises(IntegrityError):
        await add(store, VS_A, "file-1", chunks("again"))
    assert texts(await store.search_chunks_lexical([VS_A], "again", 10)) == []


async def test_nul_never_reaches_the_database(store: SqlStore) -> None:
    await add(store, VS_A, "file-1", chunks("quartz\x00crystal"))

    found = await store.search_chunks_lexical([VS_A], "quartzcrystal", 10)

    assert texts(found) == ["quartzcrystal"]


async def test_the_index_uses_lexicals_tokenizer(store: SqlStore, db: TransactionRunner) -> None:
    def definition(conn: Connection) -> str:
        if ON_POSTGRES:
            statement = (
                "SELECT generation_expression FROM information_schema.columns "
                "WHERE table_name = 'vector_store_chunks' AND column_name = 'text_search'"
            )
        else:
            statement = "SELECT sql FROM sqlite_master WHERE name = 'vector_store_chunks_fts'"
        return str(conn.execute(text(statement)).scalar_one())

    found = await db.read(definition)

    if ON_POSTGRES:
        assert f"'{lexical.TEXT_SEARCH_CONFIG}'::regconfig" in found
    else:
        assert f"tokenize='{lexical.FTS5_TOKENIZER}'" in found
    # Stemming and case folding, as lexical.py promises for either database.
    await add(store, VS_A, "file-1", chunks("The Runners were RUNNING"))
    assert len(await store.search_chunks_lexical([VS_A], "runs", 10)) == 1


# 400 made-up words of two syllables: a query word is in about one chunk in seven.
SYLLABLES = [
    "ba",
    "ko",
    "mi",
    "tu",
    "se",
    "pa",
    "ro",
    "li",
    "nu",
    "da",
    "ku",
    "go",
    "fi",
    "zu",
    "ha",
    "ne",
    "sa",
    "to",
    "ri",
    "mo",
]
WORDS = [first + second for first in SYLLABLES for second in SYLLABLES]
LATENCY_CHUNKS = 10_000
LATENCY_FILES = 50
LATENCY_QUERIES = 200


async def test_lexical_search_latency_over_10k_chunks(store: SqlStore) -> None:
    rng = random.Random(16)
    per_file = LATENCY_CHUNKS // LATENCY_FILES
    for f in range(LATENCY_FILES):
        body = [" ".join(rng.choices(WORDS, k=60)) for _ in range(per_file)]
        await add(store, VS_A, f"file-{f}", chunks(*body))
    queries = [" ".join(rng.choices(WORDS, k=3)) for _ in range(LATENCY_QUERIES)]

    elapsed: list[float] = []
    for query in queries:
        start = time.perf_counter()
        found = await store.search_chunks_lexical([VS_A], query, 20)
        elapsed.append(time.perf_counter() - start)
        assert len(found) == 20

    cuts = statistics.quantiles(elapsed, n=100)
    database = "postgresql" if ON_POSTGRES else "sqlite"
    print(
        f"\nlexical search on {database}, {LATENCY_CHUNKS} chunks of 60 words (of {len(WORDS)}), "
        f"3-word queries, limit 20: p50 {cuts[49] * 1000:.2f} ms, p99 {cuts[98] * 1000:.2f} ms"
    )
