"""Vectors on SQLite: float32 BLOBs beside the chunks, searched in the core from cached matrices.

Measured on this project's 2-core VM (one query against unit vectors of 384 dimensions, the
50 nearest; Python 3.11, SQLite 3.40):

| chunks  | numpy matrix (this module) | sqlite-vec 0.1.9 `vec0` KNN | pure Python (`array`, zip) |
|---------|----------------------------|-----------------------------|----------------------------|
| 10,000  | 0.5 ms p50, 3 ms p99       | 14 ms                       | 0.9-1.1 s                  |
| 100,000 | 8 ms p50, 14 ms p99        | 95 ms                       | ~11 s (10k's time, tenfold)|

sqlite-vec could not be used anyway: Python's `sqlite3` here is built without extension
loading (`enable_load_extension` is missing, as on several common builds), so it was timed
from the `sqlite3` shell. Its `vec0` table scans every vector on disk per query, which is why
it is slower than a matrix already in memory. Pure Python is four orders of magnitude off.
numpy earns its place: one matrix-vector product per store, in C, with the GIL released.

The matrix of a store is read once (100,000 vectors: 0.3 s warm, 1.5 s from a cold page
cache) and kept, so every later search costs only the product. The database stays the truth:
a cached matrix is used only while the store's `version` in `vector_store_embeddings` is the
one it was read at, and triggers bump that version whenever any of the store's vectors is
added or removed (by any statement, cascades from deleted chunks included; migration 0010).
Each search reads the versions in its own transaction, so it never uses vectors that its
snapshot no longer has. Matrices are evicted least recently used past `MAX_CACHED_BYTES`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, LargeBinary, column, select, table
from sqlalchemy import insert as insert_into

from compat_core.store import schema

# Enough for about 650,000 vectors of 384 dimensions (or 85,000 of 3,072) across all stores.
MAX_CACHED_BYTES: Final = 1 << 30
_FLOAT32: Final = np.dtype("<f4")

_VECTORS = table(
    schema.CHUNK_VECTORS,
    column("chunk_id"),
    column("vector_store_id"),
    column("embedding", LargeBinary),
)
_VERSION = table(
    schema.vector_store_embeddings.name,
    column("vector_store_id"),
    column(schema.EMBEDDINGS_VERSION),
)


def insert(
    conn: Connection,
    vector_store_id: str,
    chunk_ids: Sequence[int],
    vectors: Sequence[Sequence[float]],
) -> None:
    rows = [
        {
            "chunk_id": chunk_id,
            "vector_store_id": vector_store_id,
            "embedding": np.asarray(vector, dtype=_FLOAT32).tobytes(),
        }
        for chunk_id, vector in zip(chunk_ids, vectors, strict=True)
    ]
    conn.execute(insert_into(_VECTORS), rows)


@dataclass(frozen=True, slots=True)
class _Matrix:
    """One store's vectors as read at `version`: row i is chunk `chunk_ids[i]`'s."""

    version: int
    chunk_ids: npt.NDArray[np.int64]
    vectors: npt.NDArray[np.float32]

    @property
    def nbytes(self) -> int:
        return int(self.vectors.nbytes + self.chunk_ids.nbytes)


class VectorCache:
    """The matrices of the stores searched lately. Reader threads share it (one lock)."""

    def __init__(self, max_bytes: int = MAX_CACHED_BYTES) -> None:
        self._max_bytes = max_bytes
        self._matrices: OrderedDict[str, _Matrix] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def search(
        self,
        conn: Connection,
        vector_store_ids: Sequence[str],
        vector: Sequence[float],
        limit: int,
    ) -> dict[int, float]:
        """The cosine similarity to `vector` of the `limit` chunks of those stores nearest it
        (their vectors all of its length) by chunk ID, read in `conn`'s transaction."""
        query = np.asarray(vector, dtype=_FLOAT32)
        ids: list[npt.NDArray[np.int64]] = []
        scores: list[npt.NDArray[np.float32]] = []
        for store_id in vector_store_ids:
            matrix = self._matrix(conn, store_id, len(query))
            if matrix.chunk_ids.size:
                ids.append(matrix.chunk_ids)
                scores.append(matrix.vectors @ query)
        if not ids:
            return {}
        all_ids, all_scores = np.concatenate(ids), np.concatenate(scores)
        if all_scores.size > limit:
            top = np.argpartition(-all_scores, limit - 1)[:limit]
        else:
            top = np.arange(all_scores.size)
        return {int(all_ids[i]): float(all_scores[i]) for i in top}

    def _matrix(self, conn: Connection, vector_store_id: str, dimensions: int) -> _Matrix:
        version = int(
            conn.execute(
                select(_VERSION.c.version).where(_VERSION.c.vector_store_id == vector_store_id)
            ).scalar_one()
        )
        with self._lock:
            cached = self._matrices.get(vector_store_id)
            if cached is not None and cached.version == version:
                self._matrices.move_to_end(vector_store_id)
                return cached
        matrix = _read(conn, vector_store_id, version, dimensions)
        with self._lock:
            current = self._matrices.get(vector_store_id)
            # Another reader may have read a newer snapshot meanwhile: keep the newer one.
            if current is None or current.version <= version:
                self._put(vector_store_id, matrix)
        return matrix

    def _put(self, vector_store_id: str, matrix: _Matrix) -> None:
        old = self._matrices.pop(vector_store_id, None)
        if old is not None:
            self._bytes -= old.nbytes
        self._matrices[vector_store_id] = matrix
        self._bytes += matrix.nbytes
        while self._bytes > self._max_bytes and len(self._matrices) > 1:
            _, evicted = self._matrices.popitem(last=False)
            self._bytes -= evicted.nbytes


def _read(conn: Connection, vector_store_id: str, version: int, dimensions: int) -> _Matrix:
    rows = conn.execute(
        select(_VECTORS.c.chunk_id, _VECTORS.c.embedding)
        .where(_VECTORS.c.vector_store_id == vector_store_id)
        .order_by(_VECTORS.c.chunk_id)
    ).all()
    size = dimensions * _FLOAT32.itemsize
    # Every vector of a store has its dimension (a store switches models whole); a row that
    # does not would misalign the whole matrix, so it is left out rather than trusted.
    kept = [(chunk_id, blob) for chunk_id, blob in rows if len(blob) == size]
    chunk_ids = np.fromiter((c for c, _ in kept), dtype=np.int64, count=len(kept))
    vectors = np.frombuffer(b"".join(b for _, b in kept), dtype=_FLOAT32).reshape(
        len(kept), dimensions
    )
    return _Matrix(version, chunk_ids, vectors)
