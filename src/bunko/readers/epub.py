"""E-books: the chapters of an EPUB in spine order, read through the HTML block walker.

A chapter's own headings are kept; a chapter without one gets its table-of-contents
title (or its XHTML ``<title>``) as a heading, so every passage cites its chapter.
Chapters are not run through trafilatura: a book has no boilerplate to remove, and
the extractor would drop short chapters or merge a heading into the first paragraph.
"""

from __future__ import annotations

import io
import posixpath
from typing import Any

from bunko.errors import SkipFile
from bunko.readers import Extracted, TextBuilder, clean_title
from bunko.readers.html import blocks_into

SUFFIXES = (".epub",)
VERSION = 1
LIBRARY = "ebooklib"

_MAX_BYTES = 256 << 20
_MAX_UNPACKED = 1 << 30  # ebooklib unpacks every item into memory: refuse zip bombs


def _toc_titles(toc: Any, out: dict[str, str]) -> dict[str, str]:
    """href (without #fragment) -> the first table-of-contents title that points at it."""
    for entry in toc or ():
        if isinstance(entry, (tuple, list)) and entry:
            _toc_titles([entry[0]], out)
            _toc_titles(entry[1] if len(entry) > 1 else (), out)
            continue
        href = getattr(entry, "href", None)
        title = getattr(entry, "title", None)
        if href and title:
            out.setdefault(str(href).split("#", 1)[0], str(title))
    return out


def read(data: bytes, source: str) -> Extracted:
    """Extract an EPUB's chapters in reading order.

    Raises:
        SkipFile: the book is too large or no chapter could be read.
    """
    if len(data) > _MAX_BYTES:
        raise SkipFile(source, f"EPUB larger than {_MAX_BYTES >> 20} MB")
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as z:
        unpacked = sum(i.file_size for i in z.infolist())
    if unpacked > _MAX_UNPACKED:
        raise SkipFile(
            source,
            f"EPUB unpacks to {unpacked >> 20} MB; bunko reads at most {_MAX_UNPACKED >> 20} MB",
        )
    import ebooklib
    import lxml.etree
    import lxml.html
    from ebooklib import epub

    book = epub.read_epub(io.BytesIO(data), options={"ignore_ncx": False})
    titles = _toc_titles(book.toc, {})
    warnings: list[str] = []
    chapters: list[Any] = []
    for entry in book.spine:
        idref = entry[0] if isinstance(entry, (tuple, list)) else entry
        item = book.get_item_with_id(idref)
        if item is None:
            warnings.append(f"spine entry {idref!r} is not in the manifest; skipped")
        elif item.get_type() == ebooklib.ITEM_DOCUMENT and not isinstance(item, epub.EpubNav):
            # The navigation document repeats the table of contents: not book text.
            chapters.append(item)
    if not chapters:
        documents = [
            i
            for i in book.get_items_of_type(ebooklib.ITEM_DOCUMENT)
            if not isinstance(i, epub.EpubNav)
        ]
        if documents:
            warnings.append("the spine lists no readable chapter; reading them in manifest order")
        chapters = sorted(documents, key=lambda i: str(i.get_name()))
    builder = TextBuilder()
    for item in chapters:
        name = str(item.get_name())
        try:
            root = lxml.html.document_fromstring(item.get_content())
        except (ValueError, lxml.etree.ParserError) as exc:
            warnings.append(f"chapter {name} cannot be parsed ({exc}); skipped")
            continue
        body = root.find("body")
        chapter_title = titles.get(name) or titles.get(posixpath.basename(name))
        if chapter_title is None:
            found = root.findtext(".//title")
            chapter_title = found.strip() if found and found.strip() else None
        has_heading = any(
            el.tag in ("h1", "h2", "h3", "h4", "h5", "h6")
            for el in (body if body is not None else root).iter()
        )
        if chapter_title and not has_heading:
            builder.heading(1, chapter_title)
        blocks_into(builder, body if body is not None else root)
    if not builder.text().strip():
        raise SkipFile(source, "no chapter text found in this EPUB")
    meta = book.get_metadata("DC", "title")
    title = clean_title(str(meta[0][0])) if meta and meta[0] and meta[0][0] else None
    return Extracted(
        text=builder.text(),
        title=title,
        headings=tuple(builder.headings),
        encoding="epub",
        warnings=tuple(warnings),
    )
