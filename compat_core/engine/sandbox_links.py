"""The reply's `sandbox:/mnt/data/…` links to files the run's code wrote, as `file_path`
annotations.

A model that made a file for the user links to it the way OpenAI's models were taught to:
`[the chart](sandbox:/mnt/data/chart.png)`. OpenAI annotated the link's target (the text
`sandbox:/mnt/data/chart.png`) with the stored file, so a client can swap in a download link.
Replies stream in pieces, and a link can be split across two; what might be the start of one
is held back until it is whole, so every annotation lies within the text sent with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from compat_core.engine.hosted import Annotated
from compat_core.v1 import messages_pb2

PREFIX: Final = "sandbox:/mnt/data/"
# What ends a path in a reply: whitespace, markdown's brackets and quotes.
_ENDS: Final = frozenset(" \t\r\n)]>\"'`")


class SandboxLinkAnnotator:
    """Annotates links to `files` (path under /mnt/data → file ID) in a reply fed piece by
    piece."""

    def __init__(self, files: Mapping[str, str]) -> None:
        self._files = dict(files)
        self._held = ""
        self._sent = 0  # code points sent so far: where the held text starts in the reply
        self._count = 0

    def feed(self, text: str) -> Annotated:
        return self._scan(self._held + text, final=False)

    def flush(self) -> Annotated:
        return self._scan(self._held, final=True)

    def _scan(self, text: str, final: bool) -> Annotated:
        annotations: list[messages_pb2.Annotation] = []
        release = len(text)
        position = 0
        while True:
            start = text.find(PREFIX, position)
            if start < 0:
                if not final:
                    release = len(text) - _partial_prefix(text)
                break
            end = start + len(PREFIX)
            while end < len(text) and text[end] not in _ENDS:
                end += 1
            if end == len(text) and not final:
                release = start  # the path may go on in the next piece
                break
            link = text[start:end]
            # A sentence may end right after the link: "saved to sandbox:/mnt/data/a.csv."
            path = link[len(PREFIX) :]
            while path and path not in self._files and path[-1] in ".,;:!?":
                path = path[:-1]
            if path in self._files:
                annotations.append(
                    messages_pb2.Annotation(
                        text=PREFIX + path,
                        start_index=self._sent + start,
                        end_index=self._sent + start + len(PREFIX) + len(path),
                        file_path=messages_pb2.FileReference(file_id=self._files[path]),
                        index=self._count,
                    )
                )
                self._count += 1
            position = end
        sent, self._held = text[:release], text[release:]
        self._sent += len(sent)
        return Annotated(sent, annotations)


def _partial_prefix(text: str) -> int:
    """How many characters at the end of `text` could begin `PREFIX`."""
    for size in range(min(len(PREFIX) - 1, len(text)), 0, -1):
        if PREFIX.startswith(text[-size:]):
            return size
    return 0
