"""Okapi BM25 in plain Python: the baseline of the retrieval quality figures.

"Plain" on purpose: words are lower-cased runs of letters and digits, with no stemming and no
stop words, and the textbook parameters (k1 = 1.2, b = 0.75) with the Lucene (Robertson and
Spärck Jones) IDF, log(1 + (N - n + 0.5) / (n + 0.5)), which is never negative. It is what a reader
would call BM25 without qualification, so the server's lexical search (FTS5 bm25 over Porter
stems, or PostgreSQL's ts_rank) is compared with the textbook method on the same chunks.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Final

K1: Final = 1.2
B: Final = 0.75
_WORD: Final = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class Bm25:
    """An inverted index over `documents`; `search` gives (document index, score), best first."""

    def __init__(self, documents: Sequence[str]) -> None:
        self._postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self._lengths: list[int] = []
        for index, document in enumerate(documents):
            terms = words(document)
            self._lengths.append(len(terms))
            for term, frequency in Counter(terms).items():
                self._postings[term].append((index, frequency))
        count = len(self._lengths)
        self._average = sum(self._lengths) / count if count else 0.0
        self._idf = {
            term: math.log(1.0 + (count - len(postings) + 0.5) / (len(postings) + 0.5))
            for term, postings in self._postings.items()
        }

    def search(self, query: str, limit: int) -> list[tuple[int, float]]:
        scores: dict[int, float] = defaultdict(float)
        for term in set(words(query)):
            idf = self._idf.get(term)
            if idf is None:
                continue
            for index, frequency in self._postings[term]:
                norm = K1 * (1.0 - B + B * self._lengths[index] / self._average)
                scores[index] += idf * frequency * (K1 + 1.0) / (frequency + norm)
        ranked = sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))
        return ranked[:limit]
