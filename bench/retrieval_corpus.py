"""The public text the retrieval section works on: the docstrings of Python's standard library.

Source: the `.py` files of the standard library of the interpreter running the benchmark
(`sysconfig`'s `stdlib` path), read with `ast` (nothing is imported, so no module's import-time
side effects run). They are under the Python Software Foundation License, a permissive licence;
nothing of them is copied into this repository, they are read where the interpreter keeps
them, and they are on every machine that runs the benchmark. Tests, IDLE and the other
bundled applications are left out: their docstrings describe test cases, not an API.

The retrieval set is made mechanically, with no paraphrase and no human judgement: for every
public function, method and class whose docstring has a summary paragraph (its first) of at
least `MIN_QUERY_WORDS` words and a body (the rest) of at least `MIN_DOCUMENT_WORDS`, the
summary is the query and the body is the one relevant document; the summary is not part of
the document. Items whose summary or body is not unique in the library are dropped (the
`__eq__`-style boilerplate of many classes), so every query has exactly one right answer.

Its bias, to read the figures by: a summary and its body are written by the same author in
the same words, so the set rewards exact-term (lexical) matching more than real questions
would; a body that answers the summary equally well as its own (a near-duplicate docstring of
another class) counts as a miss; the text is technical English about Python; and a dense model
trained on public code may well have seen these very docstrings.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import sys
import sysconfig
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import orjson

# Bump when what `_docstrings` keeps changes, so that a stale cache is not reused.
CORPUS_VERSION: Final = 1
MIN_QUERY_WORDS: Final = 4
MIN_DOCUMENT_WORDS: Final = 15
# Bundled applications and tests rather than the library's API.
_SKIPPED_PARTS: Final = frozenset(
    {
        "test",
        "tests",
        "idle_test",
        "idlelib",
        "lib2to3",
        "turtledemo",
        "ensurepip",
        "pydoc_data",
        "site-packages",
        "dist-packages",
        "__pycache__",
    }
)
_WORD: Final = re.compile(r"[A-Za-z][A-Za-z0-9]*")


HALVES: Final = ("dev", "test")
"""The quality set's two halves: parameters of the search (fusion weights, constants) are
chosen on `dev`; `test` is held out, to report them on."""


@dataclass(frozen=True)
class Item:
    """One query and its one relevant document."""

    name: str
    query: str
    document: str

    @property
    def half(self) -> str:
        """Which of `HALVES` the item is in: fixed by a hash of its name (its qualified name in
        the library, the query's ID), so it never depends on the set's order or size and a
        parameter tuned on `dev` never saw a `test` query."""
        return HALVES[hashlib.sha256(self.name.encode()).digest()[0] & 1]


@dataclass(frozen=True)
class Corpus:
    """The library's docstrings: the retrieval set, and word counts for synthetic text."""

    items: tuple[Item, ...]
    word_counts: dict[str, int]
    source: str

    def retrieval_set(self, size: int) -> tuple[Item, ...]:
        """`size` items, always the same ones for a given library (ordered by a hash of their
        name, so a smaller set is not all from the first modules of the alphabet)."""
        return self.items[:size]


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _python_version() -> str:
    return ".".join(str(part) for part in sys.version_info[:3])


def _module_name(relative: Path) -> str:
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _docstrings(root: Path) -> Iterator[tuple[str, str]]:
    """(qualified name, docstring) of every public function, method and class."""
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if _SKIPPED_PARTS.intersection(relative.parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            # A handful of files are templates or deliberately invalid: not documentation.
            continue
        yield from _definitions(tree, _module_name(relative) + ".")


def _definitions(node: ast.AST, prefix: str) -> Iterator[tuple[str, str]]:
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        private = child.name.startswith("_") and not child.name.endswith("__")
        if private:
            continue
        name = prefix + child.name
        docstring = ast.get_docstring(child)
        if docstring:
            yield name, docstring
        if isinstance(child, ast.ClassDef):
            yield from _definitions(child, name + ".")


def _items(docstrings: list[tuple[str, str]]) -> list[Item]:
    candidates: list[Item] = []
    for name, docstring in docstrings:
        summary, _, body = docstring.partition("\n\n")
        query = " ".join(summary.split())
        document = body.strip()
        if len(query.split()) >= MIN_QUERY_WORDS and len(document.split()) >= MIN_DOCUMENT_WORDS:
            candidates.append(Item(name, query, document))
    queries = Counter(item.query for item in candidates)
    documents = Counter(" ".join(item.document.split()) for item in candidates)
    unique = [
        item
        for item in candidates
        if queries[item.query] == 1 and documents[" ".join(item.document.split())] == 1
    ]
    unique.sort(key=lambda item: hashlib.sha256(item.name.encode()).digest())
    return unique


def _word_counts(docstrings: list[tuple[str, str]]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for _, docstring in docstrings:
        counts.update(_WORD.findall(docstring))
    return dict(counts.most_common())


def load(cache_dir: Path) -> Corpus:
    """The corpus of this interpreter's library (parsing it takes seconds, so it is cached)."""
    version = _python_version()
    path = cache_dir / f"retrieval-corpus-py{version}-v{CORPUS_VERSION}.json"
    source = f"docstrings of Python {version}'s standard library (PSF License)"
    if path.exists():
        cached = orjson.loads(path.read_bytes())
        items = tuple(Item(*fields) for fields in cached["items"])
        return Corpus(items, cached["word_counts"], source)
    docstrings = list(_docstrings(stdlib_root()))
    items = tuple(_items(docstrings))
    counts = _word_counts(docstrings)
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}")
    payload = {
        "items": [[item.name, item.query, item.document] for item in items],
        "word_counts": counts,
    }
    partial.write_bytes(orjson.dumps(payload))
    partial.replace(path)
    return Corpus(items, counts, source)
