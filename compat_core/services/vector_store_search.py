"""Searching a vector store: `retrieval.search` with OpenAI's 0-1 scores, the files' names and
attributes on each result, attribute `filters` applied in the database.

What the endpoint's rankers mean here (OpenAI does not say what its own do beyond their names):
- `auto` (the default) and `default-2024-11-15`: the best search the server has, the same one
  the file_search tool runs (its `auto` and `default_2024_08_21`): hybrid, reciprocal rank
  fusion of lexical and dense search, when an embedding model is configured and the store has
  its vectors; lexical alone otherwise. The dated name pins today's ranking, as `auto` may
  move to a better one.
- `none`: no ranking beyond the database's own: lexical search alone, even with a model
  configured, scored by bm25 / ts_rank. It makes no upstream call, so it answers when the
  embedding upstream is slow or down, and it is what a client that wants exact words asks for.
"""

from __future__ import annotations

import asyncio
from typing import Final

from compat_core import errors, validation
from compat_core.retrieval import expiry, filters, ranking
from compat_core.retrieval import search as retrieval_search
from compat_core.retrieval.embeddings import Embedder
from compat_core.retrieval.filters import Filter
from compat_core.services.support import now
from compat_core.store.base import Store
from compat_core.v1 import vector_stores_pb2

SEARCH_RANKERS: Final = ("none", "auto", "default-2024-11-15")
"""OpenAI's `ranking_options.ranker` values for the vector store search endpoint."""
LEXICAL_RANKER: Final = "none"

DEFAULT_MAX_NUM_RESULTS: Final = 10


def _options(request: vector_stores_pb2.SearchVectorStoreRequest) -> tuple[int, float]:
    """The checked `max_num_results` and `score_threshold`, defaults filled in."""
    options = request.ranking_options
    if options.HasField("ranker") and options.ranker not in SEARCH_RANKERS:
        raise errors.invalid(
            f"Invalid value for '{ranking.RANKER_PARAM}': '{errors.shown(options.ranker)}'. "
            f"Supported values are: {', '.join(repr(r) for r in SEARCH_RANKERS)}.",
            ranking.RANKER_PARAM,
            "invalid_value",
        )
    limit = (
        request.max_num_results if request.HasField("max_num_results") else DEFAULT_MAX_NUM_RESULTS
    )
    threshold = options.score_threshold if options.HasField("score_threshold") else 0.0
    try:
        # Selecting from nothing runs exactly `select`'s checks, before any search is made.
        ranking.select((), limit, threshold)
    except ranking.RankingOptionsError as exc:
        raise errors.invalid(exc.message, exc.param, "invalid_value") from exc
    return limit, threshold


def _filters(request: vector_stores_pb2.SearchVectorStoreRequest) -> Filter | None:
    """The checked `filters`, None when not given."""
    if not request.HasField("filters"):
        return None
    try:
        return filters.parse(request.filters)
    except filters.FilterError as exc:
        raise errors.invalid(exc.message, exc.param, exc.code) from exc


class VectorStoreSearch:
    """One search: the endpoint's checks, then `retrieval.search`, then the store marked
    active."""

    def __init__(self, store: Store, embedder: Embedder | None = None) -> None:
        self._store = store
        self._embedder = embedder

    async def search(
        self, request: vector_stores_pb2.SearchVectorStoreRequest
    ) -> vector_stores_pb2.SearchVectorStoreResponse:
        store_id = request.vector_store_id
        validation.required_id(store_id, "vector_store_id")
        query = " ".join(request.query)
        if not request.query or not query.strip():
            raise errors.invalid(
                "Invalid 'query': expected a non-empty string or list of strings.",
                "query",
                "invalid_value",
            )
        limit, threshold = _options(request)
        attribute_filter = _filters(request)
        lexical = request.ranking_options.ranker == LEXICAL_RANKER
        # The store is read while the search runs, not before it: a search of a store that is
        # not there finds nothing (chunks are searched through their store's files) and is
        # answered 404 all the same, and every other search saves a round trip to the database.
        reading = asyncio.create_task(self._store.get_vector_store(store_id))
        try:
            found = await retrieval_search.search(
                self._store,
                [store_id],
                query,
                limit=limit,
                threshold=threshold,
                filters=attribute_filter,
                embedder=None if lexical else self._embedder,
            )
        except BaseException:
            reading.cancel()
            raise
        searched = await reading
        if searched is None:
            raise errors.no_such("vector_store_id", store_id)
        # A search is a use of the store: its expiry moves on (see `retrieval.expiry`). The copy
        # read above says whether that changes anything: a store already marked this second
        # (every search but one a second, under load) needs no write transaction, which on
        # PostgreSQL locks the row and flushes the WAL at commit. The store re-checks under its
        # lock when it does write.
        moment = now()
        if expiry.touch(searched, moment):
            await self._store.touch_vector_stores([store_id], moment)
        response = vector_stores_pb2.SearchVectorStoreResponse(search_query=request.query)
        for item in found:
            result = response.data.add(
                file_id=item.file_id, filename=item.filename, score=item.score
            )
            for key, value in item.attributes.items():
                result.attributes[key].CopyFrom(value)
            result.content.add(type="text", text=item.text)
        return response
