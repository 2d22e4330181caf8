"""Dense embeddings of chunks and queries, from an OpenAI-compatible `/v1/embeddings` upstream.

file_search ranks chunks by meaning when an embedding model is configured; this module turns
texts into vectors and nothing else (storing and searching them belong to other modules).

Every vector leaves here L2-normalised: cosine similarity is then a plain dot product, so the
in-core search and pgvector can both rank by inner product, the cheapest measure each has, and
vectors from upstreams that normalise and upstreams that do not rank alike.

Failures become `EmbeddingError`s carrying the codes a vector store file's `last_error` and a
run's use (`server_error`, `rate_limit_exceeded`, `invalid_request`) and a message naming the
provider, so a failed ingestion tells an outage from a typo without a traceback.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from typing import Any

import openai

from compat_core.config import ProviderConfig
from compat_core.providers.upstream import CONNECT_TIMEOUT_SECONDS, _timed_out

# At most this many texts in one request: OpenAI's own limit is 2048 inputs, but local servers
# (Ollama, llama.cpp, vLLM, TEI) cap a batch far lower, and 256 keeps one request of 800-token
# chunks within what they accept while still cutting a large file's requests 256-fold.
MAX_BATCH_TEXTS = 256
# At most about this many tokens in one request, estimated at 4 characters a token: OpenAI
# refuses a request past 300k tokens and small local servers one past their batch size, so a
# batch of long chunks goes in several requests instead of being refused whole. The estimate
# needs no tokenizer, which the upstream's model may not share with ours anyway.
MAX_BATCH_TOKENS = 8192
CHARS_PER_TOKEN = 4
# A batch of 256 chunks can take a slow CPU-bound local model well past a chat token's gap.
READ_TIMEOUT_SECONDS = 300.0
# One retry on a transient failure (429, 5xx, a dropped connection), with the SDK's backoff:
# ingestion runs in the background with no user waiting on it, so riding out a blip is worth
# a second or two, while more retries would only delay marking the file failed on an outage.
MAX_RETRIES = 1


class EmbeddingError(Exception):
    """An embedding request that failed; `code` is the `last_error.code` to report."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Embedder(abc.ABC):
    """Texts in, unit-length vectors out, in the same order."""

    # The upstream's name for the model (what requests carry).
    model: str
    # `provider/model` as configured: what a vector store records its vectors as being of, so
    # that the same model name on another provider still counts as another model.
    name: str

    @property
    @abc.abstractmethod
    def dimensions(self) -> int | None:
        """The length of every vector; None until the first successful `embed`."""

    @abc.abstractmethod
    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in the texts' order; raises `EmbeddingError`."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Releases the connections."""


class UpstreamEmbedder(Embedder):
    """One configured provider's embedding model; one pooled SDK client for all requests."""

    def __init__(self, config: ProviderConfig, model: str) -> None:
        self.model = model
        self.name = f"{config.name}/{model}"
        self._name = config.name
        self._dimensions: int | None = None
        self._client = openai.AsyncOpenAI(
            base_url=config.base_url,
            api_key=config.api_key or "unused",
            max_retries=MAX_RETRIES,
            timeout=openai.Timeout(READ_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS),
            http_client=openai.DefaultAioHttpClient(),
        )

    @property
    def dimensions(self) -> int | None:
        return self._dimensions

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for batch in batches(texts):
            vectors.extend(await self._embed_batch(batch))
        return vectors

    async def close(self) -> None:
        await self._client.close()

    async def _embed_batch(self, batch: Sequence[str]) -> list[list[float]]:
        try:
            # `post` with a plain body and a dict back: the typed `embeddings.create` would
            # build a pydantic object per vector, and decodes base64 by default, while the
            # float list is what is checked and stored here.
            reply: Any = await self._client.post(
                "/embeddings",
                body={"model": self.model, "input": list(batch), "encoding_format": "float"},
                cast_to=object,
            )
        except openai.RateLimitError as exc:
            raise EmbeddingError("rate_limit_exceeded", self._status_message(exc)) from exc
        except openai.APIStatusError as exc:
            code = "invalid_request" if exc.status_code in (400, 404, 422) else "server_error"
            raise EmbeddingError(code, self._status_message(exc)) from exc
        except openai.APIConnectionError as exc:
            # The SDK's aiohttp transport calls a refused connection a timeout too; the chat
            # provider's test looks at what it wraps.
            if _timed_out(exc):
                raise EmbeddingError(
                    "server_error", f"Provider '{self._name}' timed out: no embeddings in time."
                ) from exc
            raise EmbeddingError(
                "server_error",
                f"Provider '{self._name}' could not be reached: {exc.__cause__ or exc}",
            ) from exc
        except (openai.OpenAIError, ValueError) as exc:
            raise self._malformed(str(exc)) from exc
        vectors = self._vectors(reply, len(batch))
        return [_normalised(vector) for vector in vectors]

    def _vectors(self, reply: Any, expected: int) -> list[list[float]]:
        """The reply's vectors in input order, each checked; raises on anything off."""
        data = reply.get("data") if isinstance(reply, dict) else None
        if not isinstance(data, list):
            raise self._malformed("the reply has no `data` list")
        if len(data) != expected:
            raise self._malformed(f"{len(data)} embeddings came back for {expected} inputs")
        placed: list[list[float] | None] = [None] * expected
        for position, item in enumerate(data):
            if not isinstance(item, dict):
                raise self._malformed(f"data[{position}] is not an object")
            # Servers may answer out of order; `index` says which input a vector is for.
            index = item.get("index", position)
            if type(index) is not int or not 0 <= index < expected or placed[index] is not None:
                raise self._malformed(f"data[{position}] has a bad or repeated index {index!r}")
            placed[index] = self._vector(item.get("embedding"), position)
        return [vector for vector in placed if vector is not None]

    def _vector(self, embedding: Any, position: int) -> list[float]:
        if not isinstance(embedding, list) or not embedding:
            raise self._malformed(f"data[{position}].embedding is not a list of numbers")
        if not all(type(value) in (float, int) and math.isfinite(value) for value in embedding):
            raise self._malformed(f"data[{position}].embedding is not a list of finite numbers")
        if self._dimensions is None:
            self._dimensions = len(embedding)
        elif len(embedding) != self._dimensions:
            raise self._malformed(
                f"data[{position}].embedding has {len(embedding)} dimensions, "
                f"not {self._dimensions} as before"
            )
        return [float(value) for value in embedding]

    def _malformed(self, detail: str) -> EmbeddingError:
        return EmbeddingError(
            "server_error", f"Provider '{self._name}' sent a malformed embeddings reply: {detail}"
        )

    def _status_message(self, exc: openai.APIStatusError) -> str:
        return f"Provider '{self._name}' answered HTTP {exc.status_code}: {exc.message}"


def batches(texts: Sequence[str]) -> list[Sequence[str]]:
    """The texts cut, in order, into requests within both batch limits.

    A single text past the token budget still goes alone: whether it fits is the model's
    context, which only the upstream knows (chunking keeps chunks far below it).
    """
    cut: list[Sequence[str]] = []
    start = 0
    budget = 0
    for position, text in enumerate(texts):
        cost = max(1, len(text) // CHARS_PER_TOKEN)
        full = position - start >= MAX_BATCH_TEXTS or budget + cost > MAX_BATCH_TOKENS
        if position > start and full:
            cut.append(texts[start:position])
            start, budget = position, 0
        budget += cost
    if start < len(texts):
        cut.append(texts[start:])
    return cut


def _normalised(vector: list[float]) -> list[float]:
    """The vector scaled to length 1; a zero vector stays zero (it matches nothing)."""
    # hypot scales as it goes: no overflow on large components, no underflow on tiny ones.
    norm = math.hypot(*vector)
    if norm == 0.0:
        return vector
    return [value / norm for value in vector]
