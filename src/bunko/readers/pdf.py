"""PDFs, read page by page with PDFium (pypdfium2), with paragraphs and pages kept.

PDFium gives each page's text with a line break at every printed line, in content
order, and the box of every char. From the boxes this reader

- rejoins the lines of a paragraph (no space between Japanese lines, one space
  between English ones) and starts a new paragraph at a wider gap, a jump back up
  (the next column) or a short line that ends a sentence;
- puts vertical text (縦書き) in reading order: columns right to left, each top to
  bottom;
- skips pages whose text is garbage or absent (scans) with a warning, since bunko
  does no OCR.

Only one page is open at a time, so a long PDF costs the memory of its text.
pypdfium2 was measured against pdfminer.six and pypdf (benchmarks/pdf_readers.py):
it is the fastest by far and reads reportlab's non-embedded Japanese CID fonts.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

from bunko.errors import SkipFile
from bunko.readers import Extracted, clean_title, is_cjk

SUFFIXES = (".pdf",)
VERSION = 1
LIBRARY = "pypdfium2"

MAX_PAGES = 20_000
_ZERO_PAGES = re.compile(rb"/Type\s*/Pages\b[^>]*/Count\s+0\b|/Count\s+0\b[^>]*/Type\s*/Pages\b")
_CID = re.compile(r"\(cid:\d+\)")
_BAD = re.compile("[\ufffd\ufffe\x00-\x08\x0b\x0c\x0e-\x1f\ue000-\uf8ff]")
_SENTENCE_END = tuple("。．.!?！？」』）)")
_PLACEHOLDER_TITLES = {"untitled", "無題", "title", "document", "microsoft word"}


@dataclass(frozen=True)
class _Line:
    text: str
    left: float
    bottom: float
    right: float
    top: float
    vertical: bool


def _lines(textpage: Any) -> list[_Line]:
    """The page's printed lines with their boxes, in PDFium's order."""
    full: str = textpage.get_text_range()
    n = textpage.count_chars()
    aligned = len(full) == n
    out: list[_Line] = []
    at = 0
    for raw in full.split("\n"):
        start, at = at, at + len(raw) + 1
        text = raw.rstrip("\r")
        if not text.strip():
            continue
        if not aligned:  # no geometry to trust: keep the line, in order
            out.append(_Line(text, 0.0, -float(len(out)), 1.0, 1.0 - len(out), False))
            continue
        first = start + len(text) - len(text.lstrip())
        last = start + len(text.rstrip()) - 1
        l1, b1, r1, t1 = textpage.get_charbox(first)
        l2, b2, r2, t2 = textpage.get_charbox(last)
        # The middle char, not the last: punctuation sits off-centre in a vertical line.
        lm, _, _, tm = textpage.get_charbox((first + last) // 2)
        size = max(t1 - b1, r1 - l1, 1.0)
        vertical = last > first + 1 and abs(lm - l1) < size * 0.6 and (t1 - tm) > size * 0.8
        out.append(
            _Line(text.strip(), min(l1, l2), min(b1, b2), max(r1, r2), max(t1, t2), vertical)
        )
    return out


def _join(lines: list[str]) -> str:
    text = lines[0]
    for line in lines[1:]:
        if is_cjk(text[-1:]) or is_cjk(line[:1]):
            text += line
        elif text.endswith("-") and len(text) > 1 and text[-2].isalpha() and line[:1].islower():
            text = text[:-1] + line  # a word hyphenated at the line end
        else:
            text += " " + line
    return text


def _paragraphs(lines: list[_Line]) -> list[str]:
    """Group a page's lines into paragraphs and rejoin each one."""
    if not lines:
        return []
    vertical = sum(ln.vertical for ln in lines) * 2 > len(lines)
    if vertical:
        # Columns right to left; PDFium orders them by x. Each column reads top down.
        lines = sorted(lines, key=lambda ln: (-round(ln.right, 1), -ln.top))
        steps = [a.right - b.right for a, b in itertools.pairwise(lines)]
    else:
        steps = [a.bottom - b.bottom for a, b in itertools.pairwise(lines)]
    # The usual line pitch: the lower quartile of the steps, since paragraph gaps
    # can be as common as line steps on a page of short paragraphs.
    pitches = sorted(s for s in steps if s > 0) or [0.0]
    normal = pitches[len(pitches) // 4]
    far = max(line.right for line in lines) if not vertical else 0.0
    paras: list[list[str]] = [[lines[0].text]]
    for prev, line, step in zip(lines, lines[1:], steps, strict=False):
        if vertical:
            short = False
        else:
            short = prev.right < far - 0.15 * (far - min(ln.left for ln in lines))
        new = step <= 0 or (normal > 0 and step > normal * 1.4)
        if new or (short and prev.text.endswith(_SENTENCE_END)):
            paras.append([])
        paras[-1].append(line.text)
    return [_join(p) for p in paras if p]


def _garbage(text: str) -> str | None:
    """Why a page's text is unusable, or None if it is fine."""
    body = "".join(text.split())
    if not body:
        return "no text layer"
    cid = sum(len(m) for m in _CID.findall(body))
    bad = len(_BAD.findall(body))
    if (cid + bad) > 0.3 * len(body):
        return "unreadable text (unmapped glyphs)"
    return None


def _title(doc: Any) -> str | None:
    try:
        title = doc.get_metadata_value("Title")
    except Exception:  # a damaged Info dictionary is no reason to lose the text
        return None
    title = clean_title(title)
    if title and title.lower() not in _PLACEHOLDER_TITLES:
        return title
    return None


def _pages_label(pages: list[int]) -> str:
    return ("page " if len(pages) == 1 else "pages ") + ", ".join(map(str, pages))


def read(data: bytes, source: str) -> Extracted:
    """Extract the text of a PDF, one page at a time.

    Raises:
        SkipFile: encrypted, damaged, no pages, or no page with a usable text layer.
    """
    import pypdfium2 as pdfium

    try:
        doc = pdfium.PdfDocument(data)
    except pdfium.PdfiumError:
        # PDFium's error code can be stale (left from an earlier file), so look at the
        # bytes: an /Encrypt dictionary, or a page tree that counts zero pages (which
        # PDFium refuses to open).
        if b"/Encrypt" in data:
            raise SkipFile(
                source, "encrypted PDF (it needs a password); bunko cannot read it"
            ) from None
        if _ZERO_PAGES.search(data):
            raise SkipFile(source, "the PDF has no pages") from None
        raise SkipFile(source, "damaged or not a PDF; PDFium cannot open it") from None
    try:
        n_pages = len(doc)
        if n_pages == 0:
            raise SkipFile(source, "the PDF has no pages")
        if n_pages > MAX_PAGES:
            raise SkipFile(source, f"the PDF has {n_pages} pages; bunko reads at most {MAX_PAGES}")
        title = _title(doc)
        parts: list[str] = []
        starts: list[int] = []
        length = 0
        bad: dict[str, list[int]] = {}
        vertical_pages = 0
        for i in range(n_pages):
            page = doc[i]
            try:
                textpage = page.get_textpage()
                try:
                    lines = _lines(textpage)
                finally:
                    textpage.close()
            finally:
                page.close()
            why = _garbage("".join(ln.text for ln in lines))
            if why is not None:
                bad.setdefault(why, []).append(i + 1)
                starts.append(length + (2 if parts else 0))
                continue
            vertical_pages += sum(ln.vertical for ln in lines) * 2 > len(lines)
            if parts:
                parts.append("\n\n")
                length += 2
            starts.append(length)
            page_text = "\n\n".join(_paragraphs(lines))
            parts.append(page_text)
            length += len(page_text)
    finally:
        doc.close()
    if not parts:
        reasons = "; ".join(bad) or "no text"
        raise SkipFile(
            source,
            f"{reasons} on any of its {n_pages} pages (a scan?); OCR is not supported",
        )
    warnings = tuple(
        f"{_pages_label(pages)} skipped: {why}; OCR is not supported" for why, pages in bad.items()
    )
    # A skipped page at the very end would start past the text; clamp it.
    text = "".join(parts)
    return Extracted(
        text=text,
        title=title,
        pages=tuple(min(s, len(text)) for s in starts),
        encoding="pdf",
        warnings=warnings,
    )
