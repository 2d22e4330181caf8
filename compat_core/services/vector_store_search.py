"""Searching a vector store: lexical search in the store, OpenAI's 0-1 scores, the files'
names and attributes on each result.

Only lexical search exists so far, so every ranker OpenAI's search endpoint names ranks the
same way (`ranking.by_score`); the names are still checked, so a typo is a 400, not ignored.
"""

from __future__ import annotations

from typing import Final

from compat_core import errors, validation
from compat_core.retrieval import ranking
from compat_core.store.base import ChunkMatch, Store
from compat_core.v1 import vector_stores_pb2

SEARCH_RANKERS: Final = ("none", "auto", "default-2024-11-15")
"""OpenAI's `ranking_options.ranker` values for the vector store search endpoint."""

DEFAULT_MAX_NUM_RESULTS: Final = 10


def _hit(match: ChunkMatch) -> ranking.Hit:
    chunk_id = str(match.chunk_id)
    if match.scale == "bm25":
        return ranking.Hit.from_bm25(chunk_id, match.raw_score)
    return ranking.Hit.from_ts_rank(chunk_id, match.raw_score)


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
    """One search: checks, the store's lexical search, ranking, then each result's file."""

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
        matches = await self._store.search_chunks_lexical([store_id], query, limit)
        by_id = {str(m.chunk_id): m for m in matches}
        chosen = ranking.select(ranking.by_score([_hit(m) for m in matches]), limit, threshold)
        response = vector_stores_pb2.SearchVectorStoreResponse(search_query=request.query)
        files: dict[str, tuple[str, vector_stores_pb2.VectorStoreFile | None]] = {}
        for ranked in chosen:
            match = by_id[ranked.chunk_id]
            if match.file_id not in files:
                files[match.file_id] = await self._file(store_id, match.file_id)
            filename, store_file = files[match.file_id]
            if store_file is None:
                # Removed from the store between the search and this look-up.
                continue
            result = response.data.add(file_id=match.file_id, filename=filename, score=ranked.score)
            for key, value in store_file.attributes.items():
                result.attributes[key].CopyFrom(value)
            result.content.add(type="text", text=match.text)
        return response

    async def _file(
        self, store_id: str, file_id: str
    ) -> tuple[str, vector_stores_pb2.VectorStoreFile | None]:
        """The file's name in the Files API ("" if deleted there since) and its store entry."""
        found = await self._store.get_file(file_id)
        return (
            found.filename if found is not None else "",
            await self._store.get_vector_store_file(store_id, file_id),
        )
