"""code_interpreter's parts that need no sandbox: the reply's `sandbox:` links as `file_path`
annotations (streamed exactly as a whole-text parse), two tools' annotators over one reply, the
code streamed from the model's growing arguments, and the host's side of `/mnt/data`, which
untrusted code writes (links and FIFOs must never lead the host outside it).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from itertools import pairwise
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compat_core.engine.code_interpreter import code_so_far
from compat_core.engine.file_search import CitationAnnotator
from compat_core.engine.hosted import Annotated, ChainedAnnotator, ReplyAnnotator
from compat_core.engine.sandbox_links import SandboxLinkAnnotator
from compat_core.retrieval.citations import SearchResult, known_results
from compat_core.sandbox import files as session_files
from compat_core.store.blobs import BlobStore

FILES = {"chart.png": "file-chart", "out/data.csv": "file-data"}
REPLY = (
    "Voilà 📈 [the chart](sandbox:/mnt/data/chart.png), the table at "
    "sandbox:/mnt/data/out/data.csv. Not ours: sandbox:/mnt/data/other.txt"
)


def streamed(annotator: ReplyAnnotator, pieces: list[str]) -> tuple[str, list[Annotated]]:
    text, steps = "", []
    for step in [*(annotator.feed(p) for p in pieces), annotator.flush()]:
        text += step.text
        for annotation in step.annotations:
            # Sent with (or after) the text it lies in, never before.
            assert annotation.end_index <= len(text)
        steps.append(step)
    return text, steps


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({0, *(c % (len(text) + 1) for c in cuts), len(text)})
    return [text[a:b] for a, b in pairwise(points) if b > a]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
def test_links_found_alike_however_the_reply_is_split(cuts: list[int]) -> None:
    text, steps = streamed(SandboxLinkAnnotator(FILES), split(REPLY, cuts))
    assert text == REPLY
    annotations = [a for step in steps for a in step.annotations]
    assert [(a.text, a.file_path.file_id) for a in annotations] == [
        ("sandbox:/mnt/data/chart.png", "file-chart"),
        ("sandbox:/mnt/data/out/data.csv", "file-data"),
    ]
    for ordinal, annotation in enumerate(annotations):
        assert annotation.index == ordinal
        # Code-point indices, as OpenAI's: the emoji before counts as one.
        assert REPLY[annotation.start_index : annotation.end_index] == annotation.text


def test_a_link_at_the_very_end_is_released_by_flush() -> None:
    annotator = SandboxLinkAnnotator({"a.csv": "file-a"})
    first = annotator.feed("see sandbox:/mnt/data/a.csv")
    assert first.text == "see "
    assert not first.annotations
    last = annotator.flush()
    assert last.text == "sandbox:/mnt/data/a.csv"
    assert [(a.start_index, a.end_index) for a in last.annotations] == [(4, 27)]


def test_text_that_only_looks_like_a_prefix_is_not_held_forever() -> None:
    annotator = SandboxLinkAnnotator({"a.csv": "file-a"})
    assert annotator.feed("sand").text == ""
    assert annotator.feed("wich").text == "sandwich"


def test_chained_annotators_number_all_annotations_in_order() -> None:
    citations = CitationAnnotator(
        known_results(0, [SearchResult("file-doc", "doc.md", "Revenue grew.", 0.9)])
    )
    chained = ChainedAnnotator([citations, SandboxLinkAnnotator({"plot.png": "file-plot"})])
    reply = (
        "Revenue grew 【0:0†doc.md】, plotted at sandbox:/mnt/data/plot.png; again 【0:0†doc.md】"
    )
    text, steps = streamed(chained, split(reply, [5, 17, 30, 44, 51, 70]))
    assert text == reply
    annotations = [a for step in steps for a in step.annotations]
    assert [a.index for a in annotations] == [0, 1, 2]
    assert [a.WhichOneof("kind") for a in annotations] == [
        "file_citation",
        "file_path",
        "file_citation",
    ]
    for annotation in annotations:
        assert reply[annotation.start_index : annotation.end_index] == annotation.text


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=80), st.lists(st.integers(min_value=1, max_value=7), max_size=40))
def test_streamed_code_adds_up_to_the_code_the_call_runs(code: str, sizes: list[int]) -> None:
    arguments = orjson.dumps({"code": code}).decode()
    pieces, position = [], 0
    for size in [*sizes, len(arguments)]:
        pieces.append(arguments[position : position + size])
        position += size
    shown, so_far = "", ""
    for piece in pieces:
        before, so_far = so_far, so_far + piece
        previous, now = code_so_far(before), code_so_far(so_far)
        if now.startswith(previous):
            shown += now[len(previous) :]
    assert shown == code == code_so_far(arguments)


def test_code_from_echo_plain_lines_and_models_that_skip_json() -> None:
    assert code_so_far('{"input": "print(1)"}') == "print(1)"
    assert code_so_far("print(2)") == "print(2)"
    assert code_so_far('{"query": 1}') == ""


# The host's side of /mnt/data.


def test_a_link_in_place_of_a_written_file_is_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "leak.txt").symlink_to(secret)
    (data / "sub" / "inner").symlink_to(tmp_path)  # a directory link is not walked either
    (data / "ok.txt").write_text("fine")
    (data / ".hidden").write_text("skipped")
    seen = session_files.scan(data)
    assert sorted(seen) == ["ok.txt"]
    with pytest.raises(OSError, match="Too many levels of symbolic links"):
        asyncio.run(_read_all(data, "leak.txt"))
    # A link in the middle of a path is refused as well.
    (data / "up").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(OSError, match=r"Not a directory|Too many levels"):
        asyncio.run(_read_all(data, "up/secret.txt"))


def test_a_fifo_does_not_hang_the_host(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(OSError, match="not a regular file"):
        asyncio.run(_read_all(tmp_path, "pipe"))


def test_a_file_longer_than_the_limit_is_refused(tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(b"x" * 5000)
    with pytest.raises(OSError, match="larger than"):
        asyncio.run(_read_all(tmp_path, "big.bin", 4096))


def test_placing_a_file_replaces_a_link_without_writing_through_it(tmp_path: Path) -> None:
    target = tmp_path / "host.txt"
    target.write_text("untouched")
    data = tmp_path / "data"
    data.mkdir()
    (data / "report.csv").symlink_to(target)
    blobs = BlobStore(tmp_path / "blobs")

    async def place() -> None:
        await blobs.write("file-x", _chunks(b"a,b\n1,2\n"), 1 << 20)
        await session_files.place(data, "report.csv", blobs.read("file-x"))

    asyncio.run(place())
    assert target.read_text() == "untouched"
    assert not (data / "report.csv").is_symlink()
    assert (data / "report.csv").read_bytes() == b"a,b\n1,2\n"


def test_input_names_are_plain_and_distinct() -> None:
    taken: set[str] = set()
    assert session_files.input_name("sales.csv", "file-1", taken) == "sales.csv"
    assert session_files.input_name("sales.csv", "file-2", taken) == "file-2-sales.csv"
    assert session_files.input_name("../../etc/passwd", "file-3", taken) == "file-3-_.._etc_passwd"
    assert session_files.input_name("..", "file-4", taken) == "file-4"
    assert "/" not in session_files.input_name("a/b\x00c", "file-5", taken)


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../../x", "", "."])
def test_a_path_that_is_not_inside_is_refused(tmp_path: Path, path: str) -> None:
    with pytest.raises(OSError, match="not a relative path"):
        asyncio.run(_read_all(tmp_path, path))


async def _read_all(root: Path, path: str, limit: int = 1 << 20) -> bytes:
    return b"".join([chunk async for chunk in session_files.read(root, path, limit)])


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data
