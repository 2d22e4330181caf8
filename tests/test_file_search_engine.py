"""The file_search hosted tool on a real database (SQLite; PostgreSQL in its pass): which stores
it searches, how it waits for a thread's files still being processed, an expired store, and
how a stored call is shown to the model again.

A file "being processed" here is one leased to an ingestion owner that is not running (`held`),
so it stays `in_progress` until the test finishes it through the store, as that owner would.
"""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from harness.counting import CountingRunner

from compat_core.engine.file_search import NO_VECTOR_STORES, FileSearch, search_query
from compat_core.engine.hosted import HostedCall, ToolFailure
from compat_core.retrieval.citations import labelled_results
from compat_core.store import SqlStore, TransactionRunner
from compat_core.store.base import NewChunk
from compat_core.v1 import (
    assistants_pb2,
    common_pb2,
    files_pb2,
    runs_pb2,
    threads_pb2,
    vector_stores_pb2,
)

HOLDER = "held"
T0 = int(time.time())
FILE_TOOL = common_pb2.Tool(file_search=common_pb2.FileSearchTool())
COMPLETED = vector_stores_pb2.VECTOR_STORE_FILE_STATUS_COMPLETED
IN_PROGRESS = vector_stores_pb2.VECTOR_STORE_FILE_STATUS_IN_PROGRESS


async def new_store(store: SqlStore, store_id: str, **fields: object) -> None:
    given = {"last_active_at": T0, **fields}
    await store.create_vector_store(
        vector_stores_pb2.VectorStore(
            id=store_id,
            created_at=T0,
            status=vector_stores_pb2.VECTOR_STORE_STATUS_COMPLETED,
            **given,  # type: ignore[arg-type]
        )
    )


async def held_file(store: SqlStore, store_id: str, file_id: str, name: str) -> None:
    """A file of the store that stays in progress until `finish` (its ingester holds it)."""
    await store.create_file(
        files_pb2.File(id=file_id, created_at=T0, filename=name, purpose="assistants", bytes=10)
    )
    entry = vector_stores_pb2.VectorStoreFile(
        id=file_id, created_at=T0, vector_store_id=store_id, status=IN_PROGRESS
    )
    entry.chunking_strategy.auto.SetInParent()
    assert await store.add_vector_store_files(store_id, [entry]) is not None
    now_ms = int(time.time() * 1000)
    claimed = await store.claim_vector_store_files(HOLDER, now_ms, now_ms + 600_000, 10)
    assert file_id in [f.id for f in claimed]


async def finish(store: SqlStore, store_id: str, file_id: str, text: str) -> None:
    outcome = vector_stores_pb2.VectorStoreFile(
        id=file_id, vector_store_id=store_id, status=COMPLETED, usage_bytes=len(text)
    )
    chunk = NewChunk(0, text, len(text.split()))
    assert await store.finish_vector_store_file(HOLDER, outcome, [chunk], T0)


async def ready_file(store: SqlStore, store_id: str, file_id: str, name: str, text: str) -> None:
    await held_file(store, store_id, file_id, name)
    await finish(store, store_id, file_id, text)


async def new_run(
    store: SqlStore,
    *,
    assistant_stores: tuple[str, ...] = (),
    thread_stores: tuple[str, ...] = (),
    tools: tuple[common_pb2.Tool, ...] = (FILE_TOOL,),
) -> runs_pb2.Run:
    assistant = assistants_pb2.Assistant(id="asst_fs", created_at=T0, model="builtin/echo")
    assistant.tool_resources.file_search.vector_store_ids.extend(assistant_stores)
    await store.create_assistant(assistant)
    thread = threads_pb2.Thread(id="thread_fs", created_at=T0)
    thread.tool_resources.file_search.vector_store_ids.extend(thread_stores)
    await store.create_thread(thread, [])
    return runs_pb2.Run(id="run_fs", thread_id=thread.id, assistant_id=assistant.id, tools=tools)


def model_call(query: str) -> runs_pb2.ToolCall:
    arguments = orjson.dumps({"query": query}).decode()
    return runs_pb2.ToolCall(
        index=0,
        id="call_1",
        function=runs_pb2.FunctionCall(name="file_search", arguments=arguments),
    )


async def execute(
    tool: FileSearch, store: SqlStore, run: runs_pb2.Run, query: str, ordinal: int = 0
) -> runs_pb2.FileSearchCall:
    call = model_call(query)
    await tool.execute(HostedCall(store, run, call, ordinal))
    assert call.WhichOneof("kind") == "file_search"
    return call.file_search


async def test_searches_the_assistants_and_the_threads_stores(store: SqlStore) -> None:
    for store_id in ("vs_own", "vs_thread", "vs_other"):
        await new_store(store, store_id)
    await ready_file(store, "vs_own", "file-own", "own.md", "zebracorns eat clover")
    await ready_file(store, "vs_thread", "file-thread", "thread.md", "zebracorns sleep late")
    await ready_file(store, "vs_other", "file-other", "other.md", "zebracorns everywhere")
    run = await new_run(store, assistant_stores=("vs_own",), thread_stores=("vs_thread",))

    found = await execute(FileSearch(), store, run, "zebracorns")

    assert found.query == "zebracorns"
    assert not found.no_vector_stores
    assert {r.file_id for r in found.results} == {"file-own", "file-thread"}
    assert {r.file_name for r in found.results} == {"own.md", "thread.md"}
    assert all(0 < r.score <= 1 for r in found.results)
    assert {tuple(r.content) for r in found.results} == {
        ("zebracorns eat clover",),
        ("zebracorns sleep late",),
    }
    assert found.ranking_options.ranker == "default_2024_08_21"
    assert found.ranking_options.score_threshold == 0.0


async def test_the_runs_own_resources_replace_the_assistants(store: SqlStore) -> None:
    for store_id in ("vs_assistant", "vs_run"):
        await new_store(store, store_id)
    await ready_file(store, "vs_assistant", "file-a", "a.md", "lantern oil")
    await ready_file(store, "vs_run", "file-r", "r.md", "lantern wick")
    run = await new_run(store, assistant_stores=("vs_assistant",))
    run.tool_resources.file_search.vector_store_ids.append("vs_run")

    found = await execute(FileSearch(), store, run, "lantern")

    assert [r.file_id for r in found.results] == ["file-r"]


async def test_max_num_results_and_ranking_options_come_from_the_runs_tool(
    store: SqlStore,
) -> None:
    await new_store(store, "vs_many")
    for index in range(3):
        await ready_file(store, "vs_many", f"file-{index}", f"{index}.md", f"kettle number {index}")
    tool = common_pb2.Tool(
        file_search=common_pb2.FileSearchTool(
            max_num_results=2,
            ranking_options=common_pb2.FileSearchRankingOptions(ranker="auto", score_threshold=0),
        )
    )
    run = await new_run(store, assistant_stores=("vs_many",), tools=(tool,))

    found = await execute(FileSearch(), store, run, "kettle")

    assert len(found.results) == 2
    assert found.ranking_options.ranker == "default_2024_08_21", "auto resolves to the dated one"
    tool.file_search.ranking_options.score_threshold = 1.0
    run = runs_pb2.Run(id="run_2", thread_id=run.thread_id, assistant_id=run.assistant_id)
    run.tools.append(tool)
    nothing = await execute(FileSearch(), store, run, "kettle")
    assert (list(nothing.results), nothing.ranking_options.score_threshold) == ([], 1.0)


async def test_no_store_at_all_is_said_so(store: SqlStore) -> None:
    run = await new_run(store)
    tool = FileSearch()

    found = await execute(tool, store, run, "anything")

    assert found.no_vector_stores
    assert list(found.results) == []
    call = runs_pb2.ToolCall(id="call_1", file_search=found)
    assert tool.replay(call, 0) == ('{"query":"anything"}', NO_VECTOR_STORES)


async def test_a_threads_files_in_progress_are_waited_for(store: SqlStore) -> None:
    now = int(time.time())
    await new_store(store, "vs_thread", last_active_at=now - 3600)
    await held_file(store, "vs_thread", "file-late", "late.md")
    run = await new_run(store, thread_stores=("vs_thread",))
    tool = FileSearch(thread_store_wait=30.0, poll_interval=0.02)

    searching = asyncio.create_task(execute(tool, store, run, "owl"))
    # The search marks the store active as it takes it up, then waits for its file.
    deadline = time.monotonic() + 5
    while (await store.get_vector_store("vs_thread")).last_active_at < now:  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the search never took the store up"
        await asyncio.sleep(0.01)
    done, _ = await asyncio.wait({searching}, timeout=0.3)
    assert not done, "the search did not wait for the file in progress"
    began = time.monotonic()
    await finish(store, "vs_thread", "file-late", "the owl hunts at night")
    found = await asyncio.wait_for(searching, 10)

    assert [r.file_name for r in found.results] == ["late.md"]
    assert list(found.results[0].content) == ["the owl hunts at night"]
    assert time.monotonic() - began < 5, "the search went on long after the file was done"


async def test_the_wait_is_bounded_and_the_search_goes_on(store: SqlStore) -> None:
    await new_store(store, "vs_thread")
    await ready_file(store, "vs_thread", "file-ready", "ready.md", "the heron fishes")
    await held_file(store, "vs_thread", "file-stuck", "stuck.md")
    run = await new_run(store, thread_stores=("vs_thread",))
    tool = FileSearch(thread_store_wait=0.3, poll_interval=0.05)

    began = time.monotonic()
    found = await execute(tool, store, run, "heron")

    assert time.monotonic() - began >= 0.3
    assert [r.file_name for r in found.results] == ["ready.md"]


async def test_the_assistants_files_in_progress_are_not_waited_for(store: SqlStore) -> None:
    await new_store(store, "vs_own")
    await ready_file(store, "vs_own", "file-ready", "ready.md", "the heron fishes")
    await held_file(store, "vs_own", "file-stuck", "stuck.md")
    run = await new_run(store, assistant_stores=("vs_own",))
    tool = FileSearch(thread_store_wait=30.0, poll_interval=0.05)

    found = await asyncio.wait_for(execute(tool, store, run, "heron"), 5)

    assert [r.file_name for r in found.results] == ["ready.md"]


async def test_an_expired_store_fails_the_call_and_stays_expired(store: SqlStore) -> None:
    policy = vector_stores_pb2.VectorStoreExpirationAfter(anchor="last_active_at", days=1)
    await new_store(store, "vs_old", expires_after=policy, expires_at=T0 - 1)
    run = await new_run(store, thread_stores=("vs_old",))

    with pytest.raises(ToolFailure) as failure:
        await execute(FileSearch(), store, run, "anything")

    assert failure.value.code == "invalid_prompt"
    assert "vs_old" in failure.value.message
    # Using an expired store does not bring it back: its expiry stays where it was (the sweep
    # writes the `expired` status).
    expired = await store.get_vector_store("vs_old")
    assert expired is not None
    assert expired.expires_at == T0 - 1


async def test_a_search_marks_its_stores_active(store: SqlStore) -> None:
    policy = vector_stores_pb2.VectorStoreExpirationAfter(anchor="last_active_at", days=7)
    now = int(time.time())
    await new_store(
        store, "vs_used", expires_after=policy, last_active_at=now - 3600, expires_at=now + 3600
    )
    run = await new_run(store, assistant_stores=("vs_used",))

    await execute(FileSearch(), store, run, "anything")

    used = await store.get_vector_store("vs_used")
    assert used is not None
    assert used.last_active_at >= now
    assert used.expires_at == used.last_active_at + 7 * 86_400


async def test_a_search_of_stores_used_this_second_writes_nothing(db: TransactionRunner) -> None:
    counting = CountingRunner(db)
    store = SqlStore(counting)
    await store.open()
    policy = vector_stores_pb2.VectorStoreExpirationAfter(anchor="last_active_at", days=7)
    # Used a minute from now, as a search this second on another core could have left it.
    ahead = int(time.time()) + 60
    await new_store(
        store, "vs_busy", expires_after=policy, last_active_at=ahead, expires_at=ahead + 604_800
    )
    run = await new_run(store, assistant_stores=("vs_busy",))
    writes = counting.writes

    await execute(FileSearch(), store, run, "anything")

    assert counting.writes == writes


async def test_a_stored_call_is_shown_again_as_the_model_first_read_it(store: SqlStore) -> None:
    await new_store(store, "vs_own")
    await ready_file(store, "vs_own", "file-1", "field guide.md", "Owls hunt at night.\nQuietly.")
    run = await new_run(store, assistant_stores=("vs_own",))
    tool = FileSearch()

    found = await execute(tool, store, run, "owls", ordinal=3)
    arguments, output = tool.replay(runs_pb2.ToolCall(id="call_1", file_search=found), 3)

    assert orjson.loads(arguments) == {"query": "owls"}
    assert labelled_results(output) == [("【3:0†field guide.md】", "Owls hunt at night.\nQuietly.")]
    annotator = tool.annotator([runs_pb2.ToolCall(file_search=found)] * 4)
    assert annotator is not None
    text, [citation] = annotator.feed("Owls hunt at night 【3:0†field guide.md】.")
    assert (citation.text, citation.file_citation.file_id) == ("【3:0†field guide.md】", "file-1")
    assert text[citation.start_index : citation.end_index] == citation.text


@pytest.mark.parametrize(
    ("arguments", "query"),
    [
        ('{"query": "owls"}', "owls"),
        ('{"queries": ["owls", "night"]}', "owls night"),
        ('{"q": "owls"}', ""),
        ("not json", ""),
        ('["owls"]', ""),
        ("", ""),
    ],
)
def test_the_query_is_read_from_what_the_model_wrote(arguments: str, query: str) -> None:
    assert search_query(arguments) == query
