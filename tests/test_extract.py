"""Text extraction for file_search: every supported type from real files, every refusal.

Documents are built by real writers (python-docx, python-pptx, fpdf2) and read back through
`extract_text` as the ingestion will call it, with a binary file object.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import docx
import pptx
import pytest
from fpdf import FPDF
from harness.memory import AllocationPeak
from pptx.util import Inches

from compat_core.retrieval import extract
from compat_core.retrieval.extract import MAX_TEXT_CHARS, ExtractionError, extract_text


def run(filename: str, data: bytes) -> str:
    return extract_text(filename, io.BytesIO(data))


def refused(filename: str, data: bytes) -> ExtractionError:
    with pytest.raises(ExtractionError) as caught:
        run(filename, data)
    return caught.value


def pdf_bytes(pages: list[str]) -> bytes:
    document = FPDF()
    document.set_font("Helvetica", size=12)
    for text in pages:
        document.add_page()
        document.cell(text=text)
    return bytes(document.output())


def docx_bytes() -> bytes:
    document = docx.Document()
    document.add_paragraph("First paragraph about otters.")
    document.add_paragraph("Second paragraph about beavers.")
    table = document.add_table(rows=2, cols=3)
    table.cell(0, 0).merge(table.cell(0, 1)).text = "Merged header"
    table.cell(0, 2).text = "Count"
    for column, value in enumerate(["otter", "river", "7"]):
        table.cell(1, column).text = value
    document.add_paragraph("After the table.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def pptx_bytes() -> bytes:
    presentation = pptx.Presentation()
    first = presentation.slides.add_slide(presentation.slide_layouts[1])
    assert first.shapes.title is not None
    first.shapes.title.text = "Quarterly otters"
    first.placeholders[1].text_frame.text = "Otters grew by ten percent"
    first.notes_slide.notes_text_frame.text = "Mention the river survey"
    second = presentation.slides.add_slide(presentation.slide_layouts[5])
    assert second.shapes.title is not None
    second.shapes.title.text = "Beaver table"
    table = second.shapes.add_table(2, 2, Inches(1), Inches(2), Inches(4), Inches(1)).table
    for (row, column), value in zip(
        [(0, 0), (0, 1), (1, 0), (1, 1)], ["dam", "count", "north", "3"], strict=True
    ):
        table.cell(row, column).text = value
    out = io.BytesIO()
    presentation.save(out)
    return out.getvalue()


# Text formats


def test_utf8_text_and_code_files_are_returned_as_written() -> None:
    text = "Résumé: naïve café ✓\nline two\n"
    for name in ("notes.txt", "README.md", "main.py", "lib.ts", "paper.tex", "data.csv"):
        assert run(name, text.encode()) == text


def test_utf8_bom_is_dropped() -> None:
    assert run("bom.txt", b"\xef\xbb\xbfhello \xe2\x9c\x93") == "hello ✓"


def test_utf16_with_bom_is_decoded() -> None:
    assert run("windows.txt", "Grüße aus Notepad".encode("utf-16")) == "Grüße aus Notepad"


def test_latin1_text_falls_back_to_an_8bit_decoding() -> None:
    assert run("old.txt", "café déjà vu".encode("latin-1")) == "café déjà vu"
    # Windows-1252's curly quotes (0x93, 0x94) are text, not Latin-1 control characters.
    assert run("word.txt", b"\x93quoted\x94 \x96 dash") == "\u201cquoted\u201d \u2013 dash"


def test_extension_is_matched_without_case() -> None:
    assert run("SHOUT.TXT", b"loud") == "loud"


def test_empty_text_file_is_empty_text() -> None:
    assert run("empty.txt", b"") == ""


def test_binary_in_a_text_file_is_invalid() -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
    error = refused("image.txt", png)
    assert error.code == "invalid_file"
    assert ".txt" in error.message
    # No NUL at all, but far more control characters than any text has.
    noise = bytes(b for b in range(1, 256)) * 20
    assert refused("noise.py", noise).code == "invalid_file"


def test_a_few_stray_control_characters_are_still_text() -> None:
    text = "log line\n" * 200 + "\x1b[1mbold\x1b[0m\n"
    assert run("build.txt", text.encode()) == text


def test_bom_promising_utf8_that_is_not_is_invalid() -> None:
    assert refused("liar.txt", b"\xef\xbb\xbfok \xff\xfe").code == "invalid_file"


def test_json_is_kept_as_text_once_valid() -> None:
    text = '{"animals": ["otter", "beaver"], "count": 2}'
    assert run("data.json", text.encode()) == text
    error = refused("broken.json", b'{"animals": [')
    assert (error.code, error.message) == ("invalid_file", "The .json file is not valid JSON.")


def test_html_keeps_visible_text_only() -> None:
    page = b"""<!doctype html><html><head><title>Otters</title>
    <style>body { color: red }</style><script>var secret = "hidden";</script></head>
    <body><h1>River&nbsp;life</h1><p>Otters   eat
    fish &amp; crabs.</p><template><p>not shown</p></template>
    <table><tr><td>dam</td><td>3</td></tr></table><pre>keep   spacing</pre></body></html>"""
    text = run("page.html", page)
    assert text == "Otters\n\nRiver life\n\nOtters eat fish & crabs.\n\ndam\t3\n\nkeep   spacing"
    assert run("page.htm", b"<p>short</p>") == "short"


# Documents


def test_pdf_pages_are_read_in_order() -> None:
    pages = ["Page one talks about otters.", "Page two is beavers.", "Page three: muskrats."]
    text = run("report.pdf", pdf_bytes(pages))
    assert [page.strip() for page in text.split("\n\n")] == pages


def test_docx_paragraphs_and_tables_in_reading_order() -> None:
    text = run("memo.docx", docx_bytes())
    assert text.splitlines() == [
        "First paragraph about otters.",
        "Second paragraph about beavers.",
        "Merged header\tCount",
        "otter\triver\t7",
        "After the table.",
    ]


def test_pptx_slides_with_tables_and_notes() -> None:
    text = run("deck.pptx", pptx_bytes())
    assert text.split("\n\n") == [
        "Quarterly otters\nOtters grew by ten percent\nMention the river survey",
        "Beaver table\ndam\tcount\nnorth\t3",
    ]


def test_empty_docx_is_empty_text() -> None:
    out = io.BytesIO()
    docx.Document().save(out)
    assert run("blank.docx", out.getvalue()) == ""


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("fake.pdf", b"This is plain text pretending to be a PDF."),
        ("cut.pdf", pdf_bytes(["truncated"])[:200]),
        ("garbled.pdf", b"%PDF-1.7\n" + bytes(range(256)) * 8),
        ("fake.docx", b"plain text, not a zip"),
        ("cut.docx", docx_bytes()[:-300]),
        ("fake.pptx", b"\x00\x01\x02 not a zip"),
        ("cut.pptx", pptx_bytes()[:-300]),
    ],
)
def test_corrupt_documents_are_invalid(name: str, data: bytes) -> None:
    error = refused(name, data)
    assert error.code == "invalid_file"
    assert name.rpartition(".")[2] in error.message
    assert "Traceback" not in error.message


def test_a_document_of_the_wrong_format_is_invalid() -> None:
    error = refused("slides.docx", pptx_bytes())
    assert (error.code, error.message) == (
        "invalid_file",
        "The .docx file is not a readable Word document.",
    )
    assert refused("memo.pptx", docx_bytes()).code == "invalid_file"


@pytest.mark.parametrize(
    "name", ["setup.exe", "legacy.doc", "sheet.xlsx", "Makefile", ".bashrc", "photo.png"]
)
def test_unknown_extensions_are_unsupported(name: str) -> None:
    assert refused(name, b"anything").code == "unsupported_file"


def test_messages_never_carry_the_path_or_a_strange_extension() -> None:
    error = refused("/srv/uploads/secret-plan.exe", b"MZ")
    assert error.message == "Files of type .exe are not supported."
    odd = refused("x.<script>alert(1)</script>", b"")
    assert odd.message == "Files of type this kind are not supported."
    invalid = refused("/srv/uploads/secret-plan.pdf", b"nope")
    assert "/srv" not in invalid.message
    assert "secret" not in invalid.message


# Bounds


def test_text_at_the_bound_is_kept_and_one_more_character_is_invalid() -> None:
    assert len(run("big.txt", b"a" * MAX_TEXT_CHARS)) == MAX_TEXT_CHARS
    error = refused("big.txt", b"a" * (MAX_TEXT_CHARS + 1))
    assert error.code == "invalid_file"
    assert str(MAX_TEXT_CHARS) in error.message


def test_a_text_file_is_read_without_reserving_its_bound(tmp_path: Path) -> None:
    """From a real (buffered) file, as the ingestion hands over a blob: reading up to the
    bound there would allocate all 80 MB of it for a file of a few bytes."""
    path = tmp_path / "note.txt"
    path.write_bytes(b"Zebracorns eat clover.\n")
    with path.open("rb") as source, AllocationPeak() as peak:
        text = extract_text("note.txt", source)
    assert text == "Zebracorns eat clover.\n"
    assert peak.bytes < 1_000_000


def test_document_text_is_bounded_while_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    pages = ["Page one talks about otters.", "Page two is beavers."]
    monkeypatch.setattr(extract, "MAX_TEXT_CHARS", 40)
    assert refused("long.pdf", pdf_bytes(pages)).code == "invalid_file"
    assert refused("long.docx", docx_bytes()).code == "invalid_file"
    assert refused("long.pptx", pptx_bytes()).code == "invalid_file"
    assert run("short.pdf", pdf_bytes(pages[:1])).strip() == pages[0]


def test_pdf_pages_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extract, "MAX_PAGES", 2)
    error = refused("many.pdf", pdf_bytes(["one", "two", "three"]))
    assert (error.code, error.message) == ("invalid_file", "The .pdf file has more than 2 pages.")


def test_zip_bomb_is_refused_by_its_declared_size() -> None:
    """A member claiming 3 GiB is refused before any library inflates it."""
    data = bytearray(docx_bytes())
    # Central directory entries: signature, then the uncompressed size at 24, the name at 46.
    name = b"word/document.xml"
    entry = data.index(b"PK\x01\x02")
    while data[entry + 46 : entry + 46 + len(name)] != name:
        entry = data.index(b"PK\x01\x02", entry + 1)
    data[entry + 24 : entry + 28] = struct.pack("<I", 3 * 1024**3)
    error = refused("bomb.docx", bytes(data))
    assert error.code == "invalid_file"
    assert "unpacks to more than" in error.message
