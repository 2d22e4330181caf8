"""One search over vector stores, shared by the search endpoint and the file_search tool.

Both ask the same question (these stores, this query, this many results above this score) and
must get the same answer, so that a result a client finds with `POST …/search` is the one a
run's model is shown. Callers check their own parameters (each answers errors in its own
terms); this module only searches and ranks. The store answers each chunk with its file's
name and attributes, in the same query, and applies attribute `filters` in the database.

Given an embedder (an embedding model is configured, and the caller's ranker uses it), a
search of stores that have vectors of its model is hybrid: the query is embedded (one upstream
call, while the lexical search runs), the nearest chunks by cosine join the lexical matches,
and `ranking.hybrid` fuses the two lists by rank, each weighted by how confident it is for this
query. Both lists go `CANDIDATES` deep, whatever the number of results asked for, so that a
chunk placed well by both searches can climb above one only one of them found, and so that
each list's confidence is judged on as many candidates whatever the request. A store still
being re-embedded contributes the chunks that have vectors to the dense list; the others are
found lexically, as before.

A query that cannot be embedded (the upstream is down, say) is searched lexically, with a
warning in the log: a search answered from half the evidence is better than no answer, and
a run's model would otherwise lose its file_search for as long as the upstream is out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Final

from compat_core.retrieval import ranking
from compat_core.retrieval.embeddings import Embedder, EmbeddingError
from compat_core.retrieval.filters import Filter
from compat_core.store.base import ChunkMatch, Store
from compat_core.v1 import vector_stores_pb2

log = logging.getLogger(__name__)

CANDIDATES: Final = ranking.MAX_RESULTS
"""How deep each list of a hybrid search goes."""


@dataclass(frozen=True, slots=True)
class Found:
    """One result: a chunk's text, its 0-1 score and the file it came from."""

    vector_store_id: str
    file_id: str
    # The file's name in the Files API; "" when the file was deleted there since.
    filename: str
    score: float
    text: str
    attributes: Mapping[str, vector_stores_pb2.VectorStoreFileAttribute] = field(
        default_factory=dict
    )


def _hit(match: ChunkMatch) -> ranking.Hit:
    chunk_id = str(match.chunk_id)
    if match.scale == "bm25":
        return ranking.Hit.from_bm25(chunk_id, match.raw_score)
    if match.scale == "cosine":
        return ranking.Hit.from_cosine(chunk_id, match.raw_score)
    return ranking.Hit.from_ts_rank(chunk_id, match.raw_score)


async def _dense(
    store: Store,
    vector_store_ids: Collection[str],
    query: str,
    embedder: Embedder,
    filters: Filter | None,
) -> list[ChunkMatch] | None:
    """The nearest chunks by meaning; None if the query could not be embedded."""
    try:
        [vector] = await embedder.embed([query])
    except EmbeddingError as exc:
        log.warning("searching lexically only: the query could not be embedded: %s", exc)
        return None
    nearest = await store.search_chunks_dense(
        vector_store_ids, embedder.name, vector, CANDIDATES, filters
    )
    # A dense search always has nearest chunks, however unrelated; one at no similarity at all
    # (a cosine of 0 or less, a score of 0) is no candidate, and fused it would still earn a
    # rank's share of the score.
    return [m for m in nearest if m.raw_score > 0.0]


async def search(
    store: Store,
    vector_store_ids: Collection[str],
    query: str,
    *,
    limit: int,
    threshold: float,
    filters: Filter | None = None,
    embedder: Embedder | None = None,
) -> list[Found]:
    """The best `limit` chunks of those stores for `query` scoring at least `threshold`, best
    first, from files whose attributes pass `filters`: hybrid with `embedder` where the stores
    have its vectors, else lexical."""
    dense: list[ChunkMatch] | None = None
    if embedder is not None and await store.has_vectors(vector_store_ids, embedder.name):
        matches, dense = await asyncio.gather(
            store.search_chunks_lexical(vector_store_ids, query, CANDIDATES, filters),
            _dense(store, vector_store_ids, query, embedder, filters),
        )
    else:
        matches = await store.search_chunks_lexical(vector_store_ids, query, limit, filters)
    by_id = {str(m.chunk_id): m for m in [*matches, *(dense or ())]}
    fused = ranking.ranker(None).rank(
        [_hit(m) for m in matches], None if dense is None else [_hit(m) for m in dense]
    )
    chosen = ranking.select(fused, limit, threshold)
    found: list[Found] = []
    for ranked in chosen:
        match = by_id[ranked.chunk_id]
        found.append(
            Found(
                vector_store_id=match.vector_store_id,
                file_id=match.file_id,
                filename=match.filename,
                score=ranked.score,
                text=match.text,
                attributes=match.attributes,
            )
        )
    return found
