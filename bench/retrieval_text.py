"""Synthetic documents for the throughput and latency measurements, and PDFs of them.

Those measurements need far more text than the library's docstrings hold (100,000 chunks of
800 tokens is about 170 MB of source text), and what they measure depends on the text only
through its vocabulary: how long each word's posting list is in the full-text index, and how
many tokens a byte of it makes. So the text is drawn word by word from the docstrings' own
word frequencies (a Zipf-like distribution of real technical English, the same words the
retrieval set's queries use), in sentences and paragraphs, from a seeded generator: the same
seed gives the same text on every machine with the same Python.

Only ASCII words are drawn, so that the PDFs can use a core PDF font (Helvetica is Latin-1);
the PDFs are written with fpdf2 (already the `dev` extra's PDF writer for the extraction
tests), one pre-wrapped line per cell, which is ten times faster than letting it wrap a page.
"""

from __future__ import annotations

import itertools
import random
import textwrap
from typing import Final

from fpdf import FPDF

SENTENCE_WORDS: Final = (6, 24)
PARAGRAPH_SENTENCES: Final = (3, 8)
PDF_LINE_CHARS: Final = 100
PDF_FONT_SIZE: Final = 9
PDF_LINE_HEIGHT: Final = 4


class Babbler:
    """Seeded text from a word-frequency table."""

    def __init__(self, word_counts: dict[str, int], seed: int) -> None:
        words = [word for word in word_counts if word.isascii()]
        self._words = words
        self._cumulative = list(itertools.accumulate(word_counts[word] for word in words))
        self._rng = random.Random(seed)

    def sentence(self) -> str:
        count = self._rng.randint(*SENTENCE_WORDS)
        words = self._rng.choices(self._words, cum_weights=self._cumulative, k=count)
        return " ".join(words).capitalize() + "."

    def paragraph(self) -> str:
        count = self._rng.randint(*PARAGRAPH_SENTENCES)
        return " ".join(self.sentence() for _ in range(count))

    def text(self, size: int) -> str:
        """Paragraphs until at least `size` characters (ASCII: as many bytes)."""
        paragraphs: list[str] = []
        length = 0
        while length < size:
            paragraph = self.paragraph()
            paragraphs.append(paragraph)
            length += len(paragraph) + 2
        return "\n\n".join(paragraphs)


def pdf_of(text: str) -> bytes:
    """A PDF whose text layer is `text` (pages of Helvetica lines, as a word processor's)."""
    document = FPDF()
    document.set_font("Helvetica", size=PDF_FONT_SIZE)
    document.set_auto_page_break(True)
    document.add_page()
    for paragraph in text.split("\n\n"):
        for line in textwrap.wrap(paragraph, PDF_LINE_CHARS):
            document.cell(text=line, h=PDF_LINE_HEIGHT, new_x="LMARGIN", new_y="NEXT")
        document.ln(PDF_LINE_HEIGHT)
    return bytes(document.output())
