"""OpenAI's citation markers for file_search: results labelled for the model, markers found back.

The model reads each search result under a marker `【{message}:{result}†{filename}】` and is
asked to copy the marker where it uses the result. OpenAI leaves the markers in the message
text and adds a `file_citation` annotation per marker whose `text` is the marker as written and
whose `start_index`/`end_index` delimit it, so a client can replace or link it.

Index unit: Unicode code points (Python `str` indices), so `text[start:end] == marker` in
Python. OpenAI's schema and docs give no unit; OpenAI's own examples use the annotation's
`text` (`value.replace(annotation.text, ...)`), and neither official SDK slices message text by
these indices (openai-python 1.x and openai-node 7.x only merge annotation deltas by their
`index`), so code points, the unit of the Python service that produces them, is the natural
choice. A JavaScript client slicing by them must count code points (`Array.from(value)`), not
UTF-16 units, once text before a marker holds characters outside the BMP (most emoji).

Which result a marker names is decided by its two numbers only: the filename part is a label
the model copies, and OpenAI's own models often write `†source` in its place, so any label is
accepted. A marker naming a result the model was never given is left as plain text.

Streaming: openai-python accumulates deltas by adding strings and integers alike, so an
annotation sent twice, or sent before its indices are final, would corrupt the client's
snapshot. `CitationScanner` therefore holds back only a possible unfinished marker at the end
of what it has seen, and emits each annotation once, whole, with indices into the accumulated
message text. What may be held back is bounded by the longest marker (`MAX_MARKER_CHARS`), so a
stray `【` never stalls the stream.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

OPEN = "【"
CLOSE = "】"
DAGGER = "†"

MAX_INDEX_DIGITS = 9
MAX_LABEL_CHARS = 200
MAX_MARKER_CHARS = 2 * MAX_INDEX_DIGITS + MAX_LABEL_CHARS + 4
"""The longest text a marker can be, hence the most a scanner ever holds back."""

_DIGITS = f"[0-9]{{1,{MAX_INDEX_DIGITS}}}"
_LABEL_CHAR = f"[^{OPEN}{CLOSE}\\n]"
_MARKER = re.compile(
    f"{OPEN}({_DIGITS}):({_DIGITS}){DAGGER}({_LABEL_CHAR}{{0,{MAX_LABEL_CHARS}}}){CLOSE}"
)
_UNFINISHED = re.compile(
    f"{OPEN}(?:{_DIGITS}(?::(?:{_DIGITS}(?:{DAGGER}{_LABEL_CHAR}{{0,{MAX_LABEL_CHARS}}})?)?)?)?"
)

# A result's own text or name must not contain marker brackets: a document could otherwise
# show the model a label it did not come under. The white lenticular brackets look the same.
_NEUTRAL_BRACKETS = str.maketrans({OPEN: "〖", CLOSE: "〗"})

INSTRUCTION = (
    "Each result below is labelled with a citation marker. When you use a result, cite it by "
    "writing its marker exactly as shown, e.g. {example}."
)

ResultKey = tuple[int, int]
"""(message_index, result_index): the two numbers in a marker."""


@dataclass(frozen=True, slots=True)
class SearchResult:
    """One file_search hit as the model will be shown it."""

    file_id: str
    filename: str
    text: str
    score: float


@dataclass(frozen=True, slots=True)
class Citation:
    """A marker in the reply that names a known result: one `file_citation` annotation.

    `quote` exists because OpenAI's delta schema has `file_citation.quote`; v2 message objects
    do not carry it, so it stays None unless a caller has one.
    """

    text: str
    start_index: int
    end_index: int
    file_id: str
    quote: str | None = None


def marker_label(filename: str) -> str:
    """The filename as it appears in a marker: one line, no brackets, bounded so that every
    marker this module writes is one it can find again."""
    label = filename.translate(_NEUTRAL_BRACKETS).replace("\r", " ").replace("\n", " ")
    return label[:MAX_LABEL_CHARS]


def marker(message_index: int, result_index: int, filename: str) -> str:
    return f"{OPEN}{message_index}:{result_index}{DAGGER}{marker_label(filename)}{CLOSE}"


def format_results(message_index: int, results: Sequence[SearchResult]) -> str:
    """The tool output the model reads: a one-line instruction, then each result under its
    marker. `message_index` is the caller's number for this tool call within the run, so that
    markers from different searches never collide."""
    if not results:
        return "No results found."
    parts = [INSTRUCTION.format(example=marker(message_index, 0, results[0].filename))]
    for result_index, result in enumerate(results):
        label = marker(message_index, result_index, result.filename)
        parts.append(f"{label}\n{result.text.translate(_NEUTRAL_BRACKETS)}")
    return "\n\n".join(parts)


# A marker that starts a line and ends it: how `format_results` heads each result. The example
# in the instruction line stands mid-line, and result texts hold no marker brackets.
_RESULT_HEAD = re.compile(f"^({_MARKER.pattern})\n", re.MULTILINE)


def labelled_results(output: str) -> list[tuple[str, str]]:
    """The results of a `format_results` output, as (marker, text) pairs in order: what a
    model reads out of it (`builtin/echo` cites them). Any other text gives none."""
    heads = list(_RESULT_HEAD.finditer(output))
    results = []
    for position, head in enumerate(heads):
        end = heads[position + 1].start() if position + 1 < len(heads) else len(output)
        results.append((head[1], output[head.end() : end].rstrip("\n")))
    return results


def known_results(
    message_index: int, results: Iterable[SearchResult]
) -> dict[ResultKey, tuple[str, str]]:
    """The `known` mapping for the results `format_results` showed under `message_index`."""
    return {
        (message_index, result_index): (result.file_id, result.filename)
        for result_index, result in enumerate(results)
    }


def _scan(text: str, offset: int, known: Mapping[ResultKey, tuple[str, str]]) -> list[Citation]:
    citations = []
    for match in _MARKER.finditer(text):
        found = known.get((int(match[1]), int(match[2])))
        if found is not None:
            citations.append(
                Citation(
                    text=match[0],
                    start_index=offset + match.start(),
                    end_index=offset + match.end(),
                    file_id=found[0],
                )
            )
    return citations


def find_citations(text: str, known: Mapping[ResultKey, tuple[str, str]]) -> list[Citation]:
    """Every marker in `text` naming a result in `known`, in order, with code-point indices."""
    return _scan(text, 0, known)


@dataclass(frozen=True, slots=True)
class ScanStep:
    """What to stream now: `text` to append to the message, and the annotations that lie in the
    text released so far. `first_index` is the first annotation's ordinal in the content part
    (the delta's `index`), counting every annotation emitted before."""

    text: str
    citations: list[Citation]
    first_index: int


class CitationScanner:
    """Finds markers in a reply streamed as deltas, as `find_citations` would in the whole.

    Only a tail that could still become a marker is held back: the text from the last `【` on,
    while it reads as the start of one. Markers cannot nest or overlap (a label holds no
    brackets), so a marker found in released text is exactly one the whole-text parse finds.
    """

    def __init__(self, known: Mapping[ResultKey, tuple[str, str]]) -> None:
        self._known = known
        self._pending = ""
        self._released = 0
        self._annotations = 0

    def feed(self, delta: str) -> ScanStep:
        text = self._pending + delta
        cut = text.rfind(OPEN)
        if cut == -1 or not _UNFINISHED.fullmatch(text, cut):
            cut = len(text)
        self._pending = text[cut:]
        return self._release(text[:cut])

    def flush(self) -> ScanStep:
        """Release whatever is held back: the reply has ended, so no marker can finish."""
        text, self._pending = self._pending, ""
        return self._release(text)

    def _release(self, text: str) -> ScanStep:
        citations = _scan(text, self._released, self._known)
        step = ScanStep(text=text, citations=citations, first_index=self._annotations)
        self._released += len(text)
        self._annotations += len(citations)
        return step
