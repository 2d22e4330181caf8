"""OpenAI's file_search chunking: a document cut into overlapping windows of BPE tokens.

A strategy is OpenAI's `chunking_strategy`: `auto` (800-token windows overlapping by 400) or
`static` with its own sizes, checked against OpenAI's bounds here so that every caller (the
API, ingestion) refuses the same values with the same `param`.

A window of tokens can begin or end inside a character (o200k_base splits many emoji and some
CJK across tokens), and decoding it alone would turn those bytes into U+FFFD. A chunk's text is
therefore its window's bytes widened to whole characters: always valid text, and every
character of the document is in some chunk.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate
from typing import Literal

from compat_core.retrieval import tokens

AUTO_MAX_CHUNK_SIZE_TOKENS = 800
AUTO_CHUNK_OVERLAP_TOKENS = 400
MIN_CHUNK_SIZE_TOKENS = 100
MAX_CHUNK_SIZE_TOKENS = 4096

MAX_SIZE_PARAM = "chunking_strategy.static.max_chunk_size_tokens"
OVERLAP_PARAM = "chunking_strategy.static.chunk_overlap_tokens"


class ChunkingStrategyError(ValueError):
    """A strategy OpenAI would refuse; `param` is OpenAI's name for the offending field, so the
    service layer can answer it as a 400 naming that field."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


@dataclass(frozen=True, slots=True)
class ChunkingStrategy:
    """Window size and overlap in tokens; build through `auto()` or `static()`, which check."""

    type: Literal["auto", "static"]
    max_chunk_size_tokens: int
    chunk_overlap_tokens: int

    @classmethod
    def auto(cls) -> ChunkingStrategy:
        return cls("auto", AUTO_MAX_CHUNK_SIZE_TOKENS, AUTO_CHUNK_OVERLAP_TOKENS)

    @classmethod
    def static(
        cls, max_chunk_size_tokens: int, chunk_overlap_tokens: int, *, at: str = ""
    ) -> ChunkingStrategy:
        """`at` is where the strategy sits in the request (`tool_resources.file_search.
        vector_stores[0].`, say), prefixed to the `param` of a refusal."""
        size_param, overlap_param = f"{at}{MAX_SIZE_PARAM}", f"{at}{OVERLAP_PARAM}"
        _check_integer(max_chunk_size_tokens, size_param)
        _check_integer(chunk_overlap_tokens, overlap_param)
        if not MIN_CHUNK_SIZE_TOKENS <= max_chunk_size_tokens <= MAX_CHUNK_SIZE_TOKENS:
            side = (
                "below minimum"
                if max_chunk_size_tokens < MIN_CHUNK_SIZE_TOKENS
                else "above maximum"
            )
            raise ChunkingStrategyError(
                size_param,
                f"Invalid '{size_param}': integer {side} value. "
                f"Expected a value between {MIN_CHUNK_SIZE_TOKENS} and "
                f"{MAX_CHUNK_SIZE_TOKENS}, but got {max_chunk_size_tokens} instead.",
            )
        if chunk_overlap_tokens < 0:
            raise ChunkingStrategyError(
                overlap_param,
                f"Invalid '{overlap_param}': integer below minimum value. Expected a value "
                f">= 0, but got {chunk_overlap_tokens} instead.",
            )
        if chunk_overlap_tokens * 2 > max_chunk_size_tokens:
            raise ChunkingStrategyError(
                overlap_param,
                f"Invalid '{overlap_param}': must not exceed half of max_chunk_size_tokens "
                f"({max_chunk_size_tokens}), but got {chunk_overlap_tokens}.",
            )
        return cls("static", max_chunk_size_tokens, chunk_overlap_tokens)


@dataclass(frozen=True, slots=True)
class Chunk:
    """One window: `token_count` is the window's tokens, `index` its place in the document."""

    index: int
    text: str
    token_count: int


def chunk(text: str, strategy: ChunkingStrategy) -> list[Chunk]:
    """Windows of `max_chunk_size_tokens` starting every (max - overlap) tokens; the last may
    be shorter, and none lies wholly inside the one before it."""
    ids = tokens.encode(text)
    if not ids:
        return []
    pieces = tokens.encoding().decode_tokens_bytes(ids)
    # The document as the tokens spell it (a lone surrogate in `text` is U+FFFD here, as the
    # encoder saw it), and where each token starts in it.
    document = b"".join(pieces)
    starts = [0, *accumulate(map(len, pieces))]
    size = strategy.max_chunk_size_tokens
    stride = size - strategy.chunk_overlap_tokens
    chunks: list[Chunk] = []
    first = 0
    while True:
        last = min(first + size, len(ids))
        begin = _character_start(document, starts[first])
        end = _character_start(document, starts[last], forward=True)
        chunks.append(Chunk(len(chunks), document[begin:end].decode("utf-8"), last - first))
        if last == len(ids):
            return chunks
        first += stride


def _character_start(document: bytes, offset: int, *, forward: bool = False) -> int:
    """The nearest UTF-8 character boundary at or before `offset` (after it with `forward`):
    continuation bytes are 0b10xxxxxx, at most three of them to a character."""
    step = 1 if forward else -1
    while 0 < offset < len(document) and document[offset] & 0xC0 == 0x80:
        offset += step
    return offset


def _check_integer(value: object, param: str) -> None:
    """A JSON `true` arrives as a Python bool, which is an int; OpenAI refuses it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ChunkingStrategyError(
            param,
            f"Invalid type for '{param}': expected an integer, but got "
            f"{type(value).__name__} instead.",
        )
