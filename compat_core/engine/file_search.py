"""The file_search hosted tool: the model searches the vector stores of the assistant and thread.

The model is offered a `file_search(query)` function. A call searches, with
`retrieval.search.search` (the search `POST /vector_stores/{id}/search` answers with too), the
vector stores of the assistant (or those a create-thread-and-run request gave the run instead)
and of the thread, with the `max_num_results` and `ranking_options` of the run's file_search
tool. The model reads the results under OpenAI's citation markers `【{call}:{result}†{file}】`,
where `{call}` numbers the run's file_search calls from 0, so markers of two searches never
collide; markers it copies into its reply become `file_citation` annotations.

What is stored of a call is the step's `FileSearchCall`: the ranking used, each result with its
text (answered to clients only when they `include` it), and two fields of this server's own,
`query` and `no_vector_stores`. From those alone the call is shown again to every later model
call of the run, after a restart as well, exactly as the model first read it: the search is
never redone, and the text is not stored twice.

Before searching, files of the thread's stores still being processed are waited for, up to 60
seconds, as OpenAI does for the stores that message attachments fill (not for the assistant's,
which are prepared ahead of runs). A store that expired fails the run: its files are gone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, Final

import orjson

from compat_core.engine.hosted import (
    Annotated,
    HostedCall,
    HostedTool,
    ToolFailure,
    tool_resources,
)
from compat_core.retrieval import expiry, ranking
from compat_core.retrieval.citations import (
    CitationScanner,
    ResultKey,
    ScanStep,
    SearchResult,
    format_results,
)
from compat_core.retrieval.embeddings import Embedder
from compat_core.retrieval.expiry import has_expired
from compat_core.retrieval.search import search
from compat_core.store.base import Store
from compat_core.v1 import common_pb2, messages_pb2, runs_pb2

DEFAULT_MAX_NUM_RESULTS: Final = 20
"""OpenAI's default for `max_num_results` (gpt-4* models)."""

THREAD_STORE_WAIT_SECONDS: Final = 60.0
READY_POLL_SECONDS: Final = 0.2
"""How often a thread store with files in progress is looked at again: ingestion can happen on
any core sharing the database, so the stored counts are what can be watched."""

DESCRIPTION: Final = (
    "Search the files the user has provided (documents attached to this assistant or this "
    "conversation) for passages relevant to a query. Use it whenever the answer may be in "
    "those files. Each result comes labelled with a citation marker; cite a result you use "
    "by copying its marker into your answer."
)
PARAMETERS: Final = {
    "type": "object",
    "properties": {
        "query": {
            "type": "string",
            "description": "What to look for, in natural language or key words.",
        }
    },
    "required": ["query"],
}
NO_VECTOR_STORES: Final = (
    "There are no files to search: no vector store is attached to this assistant or conversation."
)


class FileSearch(HostedTool):
    """The `file_search` tool; `thread_store_wait` bounds the wait for a thread's files, and
    `embedder` (the core's, if an embedding model is configured) makes its searches hybrid,
    as the search endpoint's are."""

    kind = "file_search"

    def __init__(
        self,
        thread_store_wait: float = THREAD_STORE_WAIT_SECONDS,
        poll_interval: float = READY_POLL_SECONDS,
        embedder: Embedder | None = None,
    ) -> None:
        self._embedder = embedder
        self._thread_store_wait = thread_store_wait
        self._poll_interval = poll_interval

    def function(self, tool: common_pb2.Tool) -> dict[str, Any]:
        return {"name": self.kind, "description": DESCRIPTION, "parameters": PARAMETERS}

    async def execute(self, hosted: HostedCall) -> None:
        store, run, call = hosted.store, hosted.run, hosted.call
        settings = _settings(run.tools)
        # The call becomes a file_search call first (setting this member of the oneof clears
        # the function call the model made), so a failed search shows as one too.
        call.file_search.CopyFrom(
            runs_pb2.FileSearchCall(
                query=search_query(call.function.arguments),
                ranking_options=common_pb2.FileSearchRankingOptions(
                    ranker=ranking.ranker(settings.ranking_options.ranker or None).name,
                    score_threshold=settings.ranking_options.score_threshold,
                ),
            )
        )
        details = call.file_search
        resources = await tool_resources(store, run)
        own, thread = (list(r.file_search.vector_store_ids) for r in resources)
        live = await _live(store, [*own, *(i for i in thread if i not in own)])
        if not live:
            details.no_vector_stores = True
        else:
            await self._wait_for_files(store, [i for i in thread if i in live])
            found = await search(
                store,
                live,
                details.query,
                limit=(
                    settings.max_num_results
                    if settings.HasField("max_num_results")
                    else DEFAULT_MAX_NUM_RESULTS
                ),
                threshold=details.ranking_options.score_threshold,
                embedder=self._embedder,
            )
            for item in found:
                details.results.add(
                    file_id=item.file_id,
                    file_name=item.filename,
                    score=item.score,
                    content=[item.text],
                )

    def replay(self, call: runs_pb2.ToolCall, ordinal: int) -> tuple[str, str]:
        details = call.file_search
        arguments = orjson.dumps({"query": details.query}).decode()
        if details.no_vector_stores:
            return arguments, NO_VECTOR_STORES
        results = [
            SearchResult(r.file_id, r.file_name, "\n".join(r.content), r.score)
            for r in details.results
        ]
        return arguments, format_results(ordinal, results)

    def annotator(self, calls: Sequence[runs_pb2.ToolCall]) -> CitationAnnotator | None:
        known = {
            (ordinal, index): (result.file_id, result.file_name)
            for ordinal, call in enumerate(calls)
            for index, result in enumerate(call.file_search.results)
        }
        return CitationAnnotator(known) if known else None

    async def _wait_for_files(self, store: Store, store_ids: Sequence[str]) -> None:
        """Until no file of these stores is in progress, for at most `thread_store_wait`."""
        deadline = time.monotonic() + self._thread_store_wait
        while store_ids:
            stores = await asyncio.gather(*(store.get_vector_store(i) for i in store_ids))
            busy = any(s is not None and s.file_counts.in_progress for s in stores)
            left = deadline - time.monotonic()
            if not busy or left <= 0:
                return
            await asyncio.sleep(min(self._poll_interval, left))


class CitationAnnotator:
    """The reply's markers naming results of the run's searches, as `file_citation`s."""

    def __init__(self, known: dict[ResultKey, tuple[str, str]]) -> None:
        self._scanner = CitationScanner(known)

    def feed(self, text: str) -> Annotated:
        return _annotated(self._scanner.feed(text))

    def flush(self) -> Annotated:
        return _annotated(self._scanner.flush())


def _annotated(step: ScanStep) -> Annotated:
    return Annotated(
        step.text,
        [
            messages_pb2.Annotation(
                text=citation.text,
                start_index=citation.start_index,
                end_index=citation.end_index,
                file_citation=messages_pb2.FileReference(file_id=citation.file_id),
                index=step.first_index + offset,
            )
            for offset, citation in enumerate(step.citations)
        ],
    )


def search_query(arguments: str) -> str:
    """The query in the model's arguments: `{"query": …}` as offered, or `{"queries": […]}` as
    OpenAI's own models write (joined). Anything else searches for nothing."""
    try:
        parsed = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return ""
    if not isinstance(parsed, dict):
        return ""
    query = parsed.get("query")
    if isinstance(query, str):
        return query
    queries = parsed.get("queries")
    if isinstance(queries, list):
        return " ".join(q for q in queries if isinstance(q, str))
    return ""


def _settings(tools: Sequence[common_pb2.Tool]) -> common_pb2.FileSearchTool:
    """The run's file_search tool definition (the run's tools override the assistant's)."""
    for tool in tools:
        if tool.WhichOneof("kind") == "file_search":
            return tool.file_search
    return common_pb2.FileSearchTool()


async def _live(store: Store, store_ids: Sequence[str]) -> list[str]:
    """The stores that still exist, marked used now (one write for all, none when every one
    was marked this second already, as the search endpoint does); ToolFailure if one has
    expired, swept or not yet."""
    moment = int(time.time())
    live = []
    used = []
    for store_id in store_ids:
        found = await store.get_vector_store(store_id)
        if found is None:
            continue  # deleted since it was attached: nothing of it to search
        if has_expired(found, moment):
            raise ToolFailure(
                "invalid_prompt",
                f"Vector store {store_id} has expired, so file_search cannot search it. "
                "Attach a vector store that has not expired and run again.",
            )
        live.append(store_id)
        if expiry.touch(found, moment):
            used.append(store_id)
    if used:
        await store.touch_vector_stores(used, moment)
    return live
