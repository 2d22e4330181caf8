"""The retrieval section's embedding model: wordllama, offline, in this process or behind the
bench's `/v1/embeddings` upstream (`bench.embeddings_upstream`).

Dense and hybrid search need an embedding model, and the benchmark must run offline and the
same on every machine, so it brings its own: wordllama's `l2_supercat` at 256 dimensions, static
token embeddings (one vector per token, averaged over the text) that its wheel ships, read
with numpy, safetensors and tokenizers, no torch and no download. It is a `dev` extra, for the
benchmark only: the code is MIT, but the weights are derived from Llama 2's token embeddings,
and whether Meta's Llama 2 licence governs them is unclear, so nothing the project ships
depends on it. It is a weak model
beside a transformer encoder (no context, no word order): dense figures measured with it say
what the pipeline does with a cheap model, not the best dense search can do.

The server under test reaches it only through the wire protocol, as it would reach Ollama or
OpenAI (`COMPAT_EMBEDDING_MODEL=bench-embeddings/wordllama-l2-supercat-256`, the provider's
base URL given to `bench.ours`); the benchmark's own process uses `WordLlamaEmbedder` where it
writes vectors through the Store API (the latency datasets) or embeds queries for the store's
dense search, so both sides embed with the same function.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from compat_core.retrieval.embeddings import Embedder

if TYPE_CHECKING:
    from bench.procs import Child, Children

PROVIDER: Final = "bench-embeddings"
MODEL: Final = "wordllama-l2-supercat-256"
EMBEDDING_MODEL: Final = f"{PROVIDER}/{MODEL}"
DIMENSIONS: Final = 256
_CONFIG: Final = "l2_supercat"
# Texts tokenized and pooled together: a batch is padded to its longest text, and 16 chunks
# of 800 tokens were a third faster than wordllama's default of 64 here.
BATCH: Final = 16


def unavailable() -> str | None:
    """Why dense and hybrid search cannot be measured here, or None."""
    if importlib.util.find_spec("wordllama") is None:
        return "n/a (no embedding model: pip install -e '.[dev]' brings wordllama)"
    return None


@functools.cache
def _model() -> Any:
    # wordllama's inference module calls `logging.basicConfig(level=INFO)` on import, which
    # would print every INFO line of the core's modules this process runs; configured first,
    # the root logger keeps Python's default level and that call does nothing.
    logging.basicConfig(level=logging.WARNING)
    import wordllama

    # The wheel ships the weights under `weights/` and the tokenizer under `tokenizers/`,
    # where `load` looks in a cache directory (its own directory looks in `tokenizer/`):
    # the package's directory as the cache, downloads off, loads offline in a fraction of a
    # second.
    return wordllama.WordLlama.load(
        _CONFIG,
        cache_dir=Path(wordllama.__file__).parent,
        dim=DIMENSIONS,
        disable_download=True,
    )


def embed(texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """One unit-length float32 row per text (an empty text's row is zero, not NaN)."""
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    raw = np.asarray(_model().embed(list(texts), batch_size=BATCH), dtype=np.float32)
    norms = np.linalg.norm(raw, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = np.where(norms > 0, raw / norms, 0.0)
    return np.nan_to_num(unit).astype(np.float32)


def token_counts(texts: Sequence[str]) -> list[int]:
    """The model's tokens per text (what `usage` reports)."""
    return [sum(enc.attention_mask) for enc in _model().tokenize(list(texts))]


class WordLlamaEmbedder(Embedder):
    """The model in this process, as the core's `Embedder`: vectors for the Store API under
    the name the server records for its own (`EMBEDDING_MODEL`)."""

    model = MODEL
    name = EMBEDDING_MODEL

    @property
    def dimensions(self) -> int:
        return DIMENSIONS

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = await asyncio.to_thread(embed, texts)
        rows: list[list[float]] = vectors.tolist()
        return rows

    async def close(self) -> None:
        return None


async def spawn_upstream(children: Children) -> tuple[Child, list[str], dict[str, str]]:
    """The embeddings upstream started among `children`; with the arguments and environment
    that make `bench.ours` embed through it."""
    upstream = await children.spawn("embeddings", ["-m", "bench.embeddings_upstream"])
    args = ["--provider", f"{PROVIDER}={upstream.ready['base_url']}"]
    return upstream, args, {"COMPAT_EMBEDDING_MODEL": EMBEDDING_MODEL}
