"""Plain text out of an uploaded file, for chunking into a vector store.

The parser is chosen by the file's extension, as OpenAI's file_search does, and the content
must then be what the extension claims: a `.pdf` that is not a PDF, or a `.txt` full of binary,
is `invalid_file`; an extension outside the supported list is `unsupported_file`. Those are two
of the three `last_error.code` values OpenAI gives a vector store file; the third,
`server_error`, belongs to the caller, for failures that are not the file's fault.

`extract_text` reads a seekable binary file object rather than bytes or a path: uploads live as
blob files that can be far larger than memory should hold, and pypdf reads a PDF's objects by
seeking, so a 400 MB scan with a thin text layer is never held whole. The blob store owns its
paths, so the caller opens the blob and hands over the file object; a test hands a `BytesIO`.
It is blocking and CPU-bound, so the caller runs it on a worker thread (`asyncio.to_thread`).

An empty document (a blank file, a scan with no text layer) yields empty text, not an error:
whether a file with nothing to search fails or completes with no chunks is the ingestion's
policy, and extraction should not decide it.

Untrusted input is bounded: at most `MAX_TEXT_CHARS` of text (about OpenAI's 5,000,000-token
limit per file at four characters a token), `MAX_PAGES` PDF pages or slides, and
`MAX_UNPACKED_BYTES` declared inside a Word or PowerPoint zip (zip bombs); pypdf bounds each
decompressed PDF stream itself. Text never holds NUL, which PostgreSQL text columns refuse.
"""

from __future__ import annotations

import codecs
import io
import re
import zipfile
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from itertools import islice
from typing import BinaryIO, Final, Literal

import docx
import orjson
import pptx
from docx.table import Table
from docx.text.paragraph import Paragraph
from pptx.shapes.autoshape import Shape
from pptx.shapes.base import BaseShape
from pptx.shapes.graphfrm import GraphicFrame
from pptx.shapes.group import GroupShape
from pypdf import PasswordType, PdfReader

# About OpenAI's 5,000,000 tokens per file, at roughly four characters a token.
MAX_TEXT_CHARS: Final = 20_000_000
# PDF pages or presentation slides: empty pages cost parsing time without adding text.
MAX_PAGES: Final = 10_000
# Total uncompressed size a .docx or .pptx declares for its zip members. The libraries load
# every member into memory, and zipfile never inflates a member past its declared size.
MAX_UNPACKED_BYTES: Final = 512 * 1024 * 1024

# UTF-8 spends at most four bytes a character, so text files are read no further than this
# many bytes per allowed character (plus a BOM) before they are known to be too long.
_MAX_BYTES_PER_CHAR: Final = 4
_MAX_BOM_BYTES: Final = 3
# Control characters no text file holds; tab, newline, carriage return and form feed are text.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
# More control characters than this share of the text means binary data, not stray escapes.
_MAX_CONTROL_SHARE: Final = 0.01
# A PDF header may follow up to 1 KiB of junk, as readers have long tolerated.
_PDF_HEADER_WINDOW: Final = 1024
# Extensions are named in messages only when they look like one (the file name is the user's).
_SHOWABLE_EXTENSION = re.compile(r"[a-z0-9]{1,10}")

ErrorCode = Literal["unsupported_file", "invalid_file"]


class ExtractionError(Exception):
    """A file that extraction cannot turn into text, with OpenAI's `last_error.code`."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message


def extract_text(filename: str, source: BinaryIO) -> str:
    """The text of an uploaded file, by the parser its extension names.

    `source` must be seekable and positioned at the start of the file.
    """
    extension = _extension(filename)
    reader = _READERS.get(extension)
    if reader is None:
        raise ExtractionError(
            "unsupported_file", f"Files of type {_shown(extension)} are not supported."
        )
    return reader(source, extension).replace("\x00", "")


def _extension(filename: str) -> str:
    base = filename.replace("\\", "/").rpartition("/")[2]
    stem, dot, extension = base.rpartition(".")
    return extension.lower() if dot and stem else ""


def _shown(extension: str) -> str:
    if _SHOWABLE_EXTENSION.fullmatch(extension):
        return f".{extension}"
    return "this kind"


def _invalid(extension: str, problem: str) -> ExtractionError:
    return ExtractionError("invalid_file", f"The {_shown(extension)} file {problem}.")


def _too_long(extension: str) -> ExtractionError:
    return _invalid(extension, f"has more than {MAX_TEXT_CHARS} characters of text")


# Text formats


def _read_text(source: BinaryIO, extension: str) -> str:
    """Decoded text: UTF-8 (a BOM allowed), UTF-16 with a BOM, else Windows-1252/Latin-1.

    The 8-bit fallback is sound only because binary is refused after decoding: any byte string
    decodes as Latin-1, but binary data is full of control characters and real text is not.
    Windows-1252 comes first because it is what "Latin-1" text almost always is (its 0x80-0x9F
    are quotes and dashes; in Latin-1 they are control characters no text uses).
    """
    limit = MAX_TEXT_CHARS * _MAX_BYTES_PER_CHAR + _MAX_BOM_BYTES
    # Sized first and read whole: `read(limit + 1)` on a buffered file allocates all of
    # `limit` (80 MB) at once, whatever the file's size.
    if source.seek(0, io.SEEK_END) > limit:
        raise _too_long(extension)
    source.seek(0)
    data = source.read()
    if data.startswith(codecs.BOM_UTF8):
        text = _decode_strict(data[len(codecs.BOM_UTF8) :], "utf-8", extension)
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = _decode_strict(data, "utf-16", extension)
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            try:
                text = data.decode("cp1252")
            except UnicodeDecodeError:
                text = data.decode("latin-1")
    if len(text) > MAX_TEXT_CHARS:
        raise _too_long(extension)
    if _looks_binary(text):
        raise _invalid(extension, "holds binary data, not text")
    return text


def _decode_strict(data: bytes, encoding: str, extension: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        raise _invalid(extension, f"is not valid {encoding.upper()} text") from None


def _looks_binary(text: str) -> bool:
    if "\x00" in text:
        return True
    allowed = int(len(text) * _MAX_CONTROL_SHARE)
    return next(islice(_CONTROL.finditer(text), allowed, None), None) is not None


def _read_json(source: BinaryIO, extension: str) -> str:
    """JSON is searched as written; it only has to be JSON."""
    text = _read_text(source, extension)
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        raise _invalid(extension, "is not valid JSON") from None
    return text


def _read_html(source: BinaryIO, extension: str) -> str:
    parser = _HtmlText()
    parser.feed(_read_text(source, extension))
    parser.close()
    return parser.text()


class _HtmlText(HTMLParser):
    """What a reader sees of a page: text, with blocks on their own lines.

    The standard library's parser is tolerant of broken markup and decodes character
    references, which is all extraction needs; a DOM would be built only to be thrown away.
    """

    _HIDDEN: Final = frozenset({"script", "style", "template", "noscript"})
    _BLOCKS: Final = frozenset(
        {
            "address", "article", "aside", "blockquote", "br", "caption", "dd", "details",
            "div", "dl", "dt", "figcaption", "figure", "footer", "form", "h1", "h2", "h3",
            "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre",
            "section", "summary", "table", "title", "tr", "ul",
        }
    )  # fmt: skip
    _CELLS: Final = frozenset({"td", "th"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._parts: list[str] = []
        self._hidden = 0
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._open_or_close(tag, 1)

    def handle_endtag(self, tag: str) -> None:
        self._open_or_close(tag, -1)

    def _open_or_close(self, tag: str, step: int) -> None:
        if tag in self._HIDDEN:
            self._hidden = max(0, self._hidden + step)
        elif tag in self._BLOCKS:
            self._parts.append("\n")
            if tag == "pre":
                self._pre = max(0, self._pre + step)
        elif tag in self._CELLS and step < 0:
            self._parts.append("\t")

    def handle_data(self, data: str) -> None:
        if self._hidden:
            return
        # Outside <pre>, any run of Unicode whitespace (no-break spaces too) reads as one space.
        self._parts.append(data if self._pre else re.sub(r"\s+", " ", data))

    def text(self) -> str:
        lines = (line.strip() for line in "".join(self._parts).splitlines())
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# Documents


def _bounded_join(pieces: Iterator[str], extension: str, separator: str) -> str:
    """Joins extracted pieces, stopping as soon as the text is too long to keep."""
    kept: list[str] = []
    total = 0
    for piece in pieces:
        total += len(piece) + len(separator)
        if total > MAX_TEXT_CHARS + len(separator):
            raise _too_long(extension)
        kept.append(piece)
    return separator.join(kept)


def _parsing(read: Callable[[BinaryIO, str], str], kind: str) -> Callable[[BinaryIO, str], str]:
    """Any failure inside a document library is the file's fault: `invalid_file`.

    The libraries raise many exception types on malformed input (their own, but also
    KeyError, ValueError, lxml's and zipfile's), so all are caught; the message names only
    the format, never the library's text, which can quote paths and internals.
    """

    def guarded(source: BinaryIO, extension: str) -> str:
        try:
            return read(source, extension)
        except ExtractionError:
            raise
        except Exception as exc:
            raise _invalid(extension, f"is not a readable {kind} document") from exc

    return guarded


def _read_pdf(source: BinaryIO, extension: str) -> str:
    if b"%PDF-" not in source.read(_PDF_HEADER_WINDOW):
        raise _invalid(extension, "is not a PDF")
    source.seek(0)
    reader = PdfReader(source)
    if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
        raise _invalid(extension, "is encrypted with a password")
    if len(reader.pages) > MAX_PAGES:
        raise _invalid(extension, f"has more than {MAX_PAGES} pages")
    return _bounded_join((page.extract_text() for page in reader.pages), extension, "\n\n")


def _check_zip(source: BinaryIO, extension: str) -> None:
    """A .docx or .pptx is a zip; its declared sizes are bounded before any library opens it."""
    if not zipfile.is_zipfile(source):
        raise _invalid(extension, "is not an Office Open XML (zip) document")
    source.seek(0)
    with zipfile.ZipFile(source) as archive:
        if sum(member.file_size for member in archive.infolist()) > MAX_UNPACKED_BYTES:
            raise _invalid(extension, f"unpacks to more than {MAX_UNPACKED_BYTES} bytes")
    source.seek(0)


def _read_docx(source: BinaryIO, extension: str) -> str:
    _check_zip(source, extension)
    document = docx.Document(source)
    return _bounded_join(_docx_blocks(document.iter_inner_content()), extension, "\n")


def _docx_blocks(blocks: Iterator[Paragraph | Table]) -> Iterator[str]:
    """Paragraphs and tables in reading order; a table row is its cells, tab-separated."""
    for block in blocks:
        if isinstance(block, Paragraph):
            yield block.text
            continue
        for row in block.rows:
            # A merged cell is listed once per grid column it spans; it is read once.
            cells = []
            previous = None
            for cell in row.cells:
                if cell._tc is not previous:
                    cells.append(cell.text)
                previous = cell._tc
            yield "\t".join(cells)


def _read_pptx(source: BinaryIO, extension: str) -> str:
    _check_zip(source, extension)
    presentation = pptx.Presentation(source)
    if len(presentation.slides) > MAX_PAGES:
        raise _invalid(extension, f"has more than {MAX_PAGES} slides")
    return _bounded_join(_pptx_slides(presentation), extension, "\n\n")


def _pptx_slides(presentation: pptx.presentation.Presentation) -> Iterator[str]:
    """Each slide's text in shape order, then its speaker notes (searchable content too)."""
    for slide in presentation.slides:
        texts = list(_shape_texts(slide.shapes))
        if slide.has_notes_slide:
            notes = slide.notes_slide.notes_text_frame
            if notes is not None:
                texts.append(notes.text)
        yield "\n".join(text for text in texts if text)


def _shape_texts(shapes: Iterator[BaseShape]) -> Iterator[str]:
    for shape in shapes:
        if isinstance(shape, GroupShape):
            yield from _shape_texts(iter(shape.shapes))
        elif isinstance(shape, Shape) and shape.has_text_frame:
            yield shape.text_frame.text
        elif isinstance(shape, GraphicFrame) and shape.has_table:
            for row in shape.table.rows:
                yield "\t".join(cell.text for cell in row.cells)


_TEXT_EXTENSIONS: Final = (
    "txt", "md", "csv", "c", "cpp", "cs", "css", "go", "java", "js", "ts", "php", "py", "rb",
    "sh", "tex",
)  # fmt: skip

_READERS: Final[dict[str, Callable[[BinaryIO, str], str]]] = {
    **dict.fromkeys(_TEXT_EXTENSIONS, _read_text),
    "json": _read_json,
    "html": _read_html,
    "htm": _read_html,
    "pdf": _parsing(_read_pdf, "PDF"),
    "docx": _parsing(_read_docx, "Word"),
    "pptx": _parsing(_read_pptx, "PowerPoint"),
}
