"""Readers for formats whose text must be extracted: HTML, PDF, EPUB, and any added later.

Each public module in this package is one reader. It declares ``SUFFIXES`` (the
lower-case file name endings it reads), ``VERSION`` (raise it when its output
changes), ``LIBRARY`` (the distribution it extracts with, or None) and
``read(data, source) -> Extracted``; the
registry finds the modules by listing the package, so adding a format (DOCX, say)
is one new module and nothing else. A reader imports its extraction library inside
``read``, so listing the registry or querying an index never loads them.

The extracted text is what bunko chunks, cites and shows: ``chars`` and ``lines``
of a passage point into it. It is re-derived from the file whenever it is needed,
so every reader must be deterministic: the same bytes give the same text.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from bunko.errors import SkipFile
from bunko.types import Document, Heading

log = logging.getLogger("bunko")

_TITLE_MAX = 200


@dataclass(frozen=True)
class Extracted:
    """What a reader got out of one file.

    ``pages`` holds the char offset in ``text`` where each page starts (page 1 at
    index 0); a page with no text starts where the next one does. ``warnings`` are
    problems worth telling the user that did not stop the file being indexed.
    """

    text: str
    title: str | None = None
    headings: tuple[Heading, ...] = ()
    url: str | None = None
    pages: tuple[int, ...] | None = None
    encoding: str = ""
    warnings: tuple[str, ...] = ()

    def extra(self) -> dict[str, Any]:
        """The per-document metadata the index keeps (``DocRow.extra``)."""
        out: dict[str, Any] = {}
        if self.url:
            out["url"] = self.url
        if self.pages is not None:
            out["pages"] = list(self.pages)
        return out


@dataclass
class TextBuilder:
    """Builds an extracted text from blocks, recording where each heading starts.

    Blocks are separated by a blank line, and every block is one line, so a
    passage's line range counts paragraphs, as a reader of the text sees them.
    """

    parts: list[str] = field(default_factory=list)
    headings: list[Heading] = field(default_factory=list)
    length: int = 0

    def _add(self, text: str) -> int:
        if self.parts:
            self.parts.append("\n\n")
            self.length += 2
        start = self.length
        self.parts.append(text)
        self.length += len(text)
        return start

    def heading(self, level: int, text: str) -> None:
        text = " ".join(text.split())
        if text:
            self.headings.append(Heading(level=level, text=text, start=self._add(text)))

    def block(self, text: str) -> None:
        text = squeeze(text)
        if text:
            self._add(text)

    def text(self) -> str:
        return "".join(self.parts)


_CJK = "\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff01-\uff60"
# Whitespace with a line break between two CJK chars is a wrapped line, not a space.
CJK_BREAK = re.compile(rf"(?<=[{_CJK}])[ \t]*[\r\n]\s*(?=[{_CJK}])")
_SPACES = re.compile(r"\s+")


def is_cjk(ch: str) -> bool:
    return bool(ch) and re.match(f"[{_CJK}]", ch) is not None


def squeeze(text: str) -> str:
    """One line of text: breaks between CJK chars vanish, other whitespace runs become a space."""
    return _SPACES.sub(" ", CJK_BREAK.sub("", text)).strip()


def clean_title(title: str | None) -> str | None:
    """A title on one line, bounded, or None when there is none worth showing."""
    if not title:
        return None
    title = " ".join(title.split())[:_TITLE_MAX]
    return title or None


_REGISTRY: dict[str, ModuleType] = {}


def registry() -> dict[str, ModuleType]:
    """Suffix -> reader module, found by listing this package once.

    Listing waits for the first call, so a query (which only needs
    :func:`page_range` and :func:`text_fragment`) never imports the readers.
    """
    if not _REGISTRY:
        import importlib
        import pkgutil

        for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
            if info.name.startswith("_"):
                continue
            module = importlib.import_module(f"{__name__}.{info.name}")
            for suffix in getattr(module, "SUFFIXES", ()):
                _REGISTRY[suffix.lower()] = module
    return _REGISTRY


def suffixes() -> tuple[str, ...]:
    """Every suffix a reader module handles (".epub", ".htm", ".html", ".pdf", ...)."""
    return tuple(sorted(registry()))


def reader_for(path: Path) -> ModuleType | None:
    """The reader module for ``path``'s suffix, or None for plain text and Markdown."""
    return registry().get(path.suffix.lower())


def extract(reader: ModuleType, data: bytes, source: str) -> Extracted:
    """Run ``reader`` on one file's bytes, turning any failure into :class:`SkipFile`.

    Raises:
        SkipFile: the reader refused the file, or its parser crashed on it.
    """
    try:
        result: Extracted = reader.read(data, source)
    except SkipFile:
        raise
    except RecursionError:
        raise SkipFile(source, "too deeply nested to parse") from None
    except Exception as exc:
        # Third-party parsers (PDFium, lxml, ebooklib's zip and XML handling) raise
        # anything on a damaged file. One such file must never stop an index run, so
        # this is the one place bunko catches every Exception; the traceback is kept
        # in the debug log for a bug report.
        log.debug("reader %s crashed on %s", reader.__name__, source, exc_info=True)
        name = reader.__name__.rsplit(".", 1)[-1].upper()
        raise SkipFile(
            source, f"cannot read this {name} file ({type(exc).__name__}: {exc})"
        ) from None
    if not result.text.strip():
        raise SkipFile(source, "no text could be extracted")
    for warning in result.warnings:
        log.warning("%s: %s", source, warning)
    return result


def read_document(
    path: Path, source: str, data: bytes, mtime_ns: int, reader: ModuleType
) -> Document:
    """A :class:`Document` whose text is the extracted text of ``data``.

    Raises:
        SkipFile: nothing could be extracted (see :func:`extract`).
    """
    import hashlib

    got = extract(reader, data, source)
    title = clean_title(got.title) or (got.headings[0].text if got.headings else None)
    return Document(
        source=source,
        path=str(path),
        title=title or path.stem,
        text=got.text,
        body_start=0,
        headings=got.headings,
        sha256=hashlib.sha256(data).hexdigest(),
        encoding=got.encoding,
        size=len(data),
        mtime_ns=mtime_ns,
        extra={**got.extra(), "extractor": extractor(reader)},
    )


def extractor(reader: ModuleType) -> str:
    """Which reader and library version made an extracted text, e.g.
    "html/1 trafilatura 2.3.1". An upgrade can change the text that citations
    point into, so a document whose extractor changed is re-indexed."""
    from importlib.metadata import PackageNotFoundError, version

    name = reader.__name__.rsplit(".", 1)[-1]
    label = f"{name}/{getattr(reader, 'VERSION', 1)}"
    library = getattr(reader, "LIBRARY", None)
    if library:
        try:
            label += f" {library} {version(library)}"
        except PackageNotFoundError:
            label += f" {library}"
    return label


def page_range(pages: Sequence[int] | None, start: int, end: int) -> tuple[int, int] | None:
    """The 1-based [first, last] pages that the chars [start, end) fall on."""
    if not pages:
        return None
    from bisect import bisect_right

    first = max(1, bisect_right(pages, start))
    last = max(first, bisect_right(pages, max(start, end - 1)))
    return first, last


def text_fragment(url: str, text: str) -> str:
    """``url`` with a text fragment (``#:~:text=``) that makes a browser scroll to
    and mark the first line of ``text`` on the page.

    Browsers match fragment terms on word boundaries, so terms are cut only where
    words end: a line up to 150 chars is used whole; a longer English one is named
    by its first and last four words, a longer Japanese one by its first and last
    clauses (cut at 、).
    """
    from urllib.parse import quote

    def q(s: str) -> str:
        return quote(s, safe="").replace("-", "%2D")  # "-" marks a prefix/suffix

    base = url.split("#", 1)[0]
    lines = [ln for ln in (" ".join(ln.split()) for ln in text.splitlines()) if ln]
    line = lines[0].lstrip("・ ") if lines else ""
    if not line:
        return base
    frag = q(line)
    if len(line) > 150:
        words = line.split(" ")
        first, last = line.find("、"), line.rfind("、")
        if len(words) >= 12 and not is_cjk(line[0]):
            frag = q(" ".join(words[:4])) + "," + q(" ".join(words[-4:]))
        elif 0 < first < last < len(line) - 1:
            frag = q(line[: first + 1]) + "," + q(line[last + 1 :])
    return f"{base}#:~:text={frag}"
