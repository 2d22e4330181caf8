"""One search over vector stores, shared by the search endpoint and the file_search tool.

Both ask the same question (these stores, this query, this many results above this score) and
must get the same answer, so that a result a client finds with `POST …/search` is the one a
run's model is shown. Callers check their own parameters (each answers errors in its own
terms); this module only searches and ranks. The store answers each chunk with its file's
name and attributes, in the same query.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from compat_core.retrieval import ranking
from compat_core.retrieval.filters import Filter
from compat_core.store.base import ChunkMatch, Store
from compat_core.v1 import vector_stores_pb2


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
    return ranking.Hit.from_ts_rank(chunk_id, match.raw_score)


async def search(
    store: Store,
    vector_store_ids: Collection[str],
    query: str,
    *,
    limit: int,
    threshold: float,
    filters: Filter | None = None,
) -> list[Found]:
    """The best `limit` chunks of those stores for `query` scoring at least `threshold`, best
    first, from files whose attributes pass `filters` (applied in the database, before the
    limit, so filtering never shortens the answer below `limit` while chunks remain)."""
    matches = await store.search_chunks_lexical(vector_store_ids, query, limit, filters)
    by_id = {str(m.chunk_id): m for m in matches}
    chosen = ranking.select(ranking.by_score([_hit(m) for m in matches]), limit, threshold)
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
