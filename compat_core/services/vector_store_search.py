"""Searching a vector store: lexical search in the store, OpenAI's 0-1 scores, the files'
names and attributes on each result.

Only lexical search exists so far, so every ranker OpenAI's search endpoint names ranks the
same way (`ranking.by_score`); the names are still checked, so a typo is a 400, not ignored.
"""

from __future__ import annotations

from typing import Final

from compat_core import errors, validation
from compat_core.retrieval import ranking
from compat_core.retrieval import search as retrieval_search
from compat_core.services.support import now
from compat_core.store.base import Store
from compat_core.v1 import vector_stores_pb2

SEARCH_RANKERS: Final = ("none", "auto", "default-2024-11-15")
"""OpenAI's `ranking_options.ranker` values for the vector store search endpoint."""

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


class VectorStoreSearch:
    """One search: the endpoint's checks, then `retrieval.search`, then the store marked
    active."""

    def __init__(self, store: Store) -> None:
        self._store = store

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
        if await self._store.get_vector_store(store_id) is None:
            raise errors.no_such("vector_store_id", store_id)
        found = await retrieval_search.search(
            self._store, [store_id], query, limit=limit, threshold=threshold
        )
        # A search is a use of the store: its expiry moves on (see `retrieval.expiry`).
        await self._store.touch_vector_stores([store_id], now())
        response = vector_stores_pb2.SearchVectorStoreResponse(search_query=request.query)
        for item in found:
            result = response.data.add(
                file_id=item.file_id, filename=item.filename, score=item.score
            )
            for key, value in item.attributes.items():
                result.attributes[key].CopyFrom(value)
            result.content.add(type="text", text=item.text)
        return response
