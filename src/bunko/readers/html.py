"""Saved web pages: the article text (trafilatura), its headings, title and canonical URL.

trafilatura drops navigation, sidebars, cookie banners and footers; its XML output
keeps the article's headings (``<head rend="h2">``), which become the heading path.
The title and the canonical URL are read from the page itself with lxml.
"""

from __future__ import annotations

import codecs
import re
from typing import Any

from bunko.errors import SkipFile
from bunko.readers import CJK_BREAK, Extracted, TextBuilder, clean_title

SUFFIXES = (".html", ".htm", ".xhtml")
VERSION = 1
LIBRARY = "trafilatura"

_MAX_BYTES = 64 << 20  # a saved page larger than this is not an article
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_XML_ENCODING = re.compile(rb"""<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_.:-]+)""", re.I)
# "Title | Site", "Title｜Site", "Title - Site", "Title :: Site"
_SEPARATORS = (" | ", "｜", " - ", " – ", " — ", " :: ", " · ", "|")
_ALIASES = {
    "shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932",
    "windows-31j": "cp932", "ms_kanji": "cp932", "euc-jp": "euc_jp", "x-euc-jp": "euc_jp",
}  # fmt: skip
_BLOCKS = {
    "p", "item", "li", "quote", "blockquote", "code", "pre", "row", "tr", "dt", "dd",
    "figcaption", "caption", "lb",
}  # fmt: skip
_HEADS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}


def decode(data: bytes) -> tuple[str, str]:
    """The page as text and the encoding used: a BOM, then a ``<meta>`` or XML
    declaration, then UTF-8, then the Japanese legacy encodings.

    Many Japanese pages say Shift_JIS only in ``<meta>``; cp932 is read for it,
    since Windows-made pages use its extra characters (①, ㈱) under that name.
    """
    for bom, codec in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                       (codecs.BOM_UTF16_BE, "utf-16-be")):  # fmt: skip
        if data.startswith(bom):
            return data[len(bom) :].decode(codec, "replace"), codec
    head = data[:4096]
    m = _META_CHARSET.search(head) or _XML_ENCODING.search(head)
    if m:
        name = m.group(1).decode("ascii").lower()
        codec = _ALIASES.get(name, name)
        try:
            codecs.lookup(codec)
        except LookupError:
            codec = ""
        if codec:
            return data.decode(codec, "replace"), codec
    for codec in ("utf-8", "cp932", "euc_jp"):
        try:
            return data.decode(codec), codec
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", "replace"), "utf-8"


def strip_site(title: str, site: str | None) -> str:
    """Drop the site name from a page title: "Article | Site" -> "Article".

    After a bar ("|", "｜") the tail is almost always the site, so it goes; after a
    dash or "::" only when it names the site or is shorter than the rest. "Site |
    Article" keeps the article.
    """
    at, sep = max((title.rfind(s), s) for s in _SEPARATORS)
    if at <= 0:
        return title
    head, tail = title[:at].strip(), title[at + len(sep) :].strip()
    if site and site.lower() in head.lower() and site.lower() not in tail.lower():
        return tail or title
    bar = sep.strip() in ("|", "｜")
    if bar or (site and site.lower() in tail.lower()) or len(tail) <= len(head):
        return head or title
    return title


def _page_facts(tree: Any) -> tuple[str | None, str | None, str | None, str | None]:
    """(title, first <h1>, canonical URL, site name) from the parsed page."""

    def first(xpath: str) -> str | None:
        for value in tree.xpath(xpath):
            text = " ".join(str(value).split())
            if text:
                return text
        return None

    url = first("//link[contains(concat(' ', normalize-space(@rel), ' '), ' canonical ')]/@href")
    if not (url and url.startswith(("http://", "https://"))):
        url = first("//meta[@property='og:url']/@content")
    if not (url and url.startswith(("http://", "https://"))):
        url = None
    title = first("//meta[@property='og:title']/@content") or first("//title//text()")
    h1 = first("normalize-space(//h1)")
    site = first("//meta[@property='og:site_name']/@content")
    return title, h1, url, site


def blocks_into(builder: TextBuilder, root: Any, level_shift: int = 0) -> None:
    """Walk an element tree (trafilatura XML or XHTML) into ``builder``.

    A heading becomes a heading; a block element with no block inside it becomes
    a paragraph; ``<br>`` splits nothing (its line break is squeezed like any other).
    The tree is changed in place (each ``<br>`` gets a newline as its text).
    """
    for br in root.iter("lb", "br", "{*}br"):
        br.text = "\n"  # a line break inside a paragraph: a space, or nothing in Japanese
    for el in root.iter():
        tag = el.tag if isinstance(el.tag, str) else ""
        tag = tag.rsplit("}", 1)[-1].lower()
        level = _HEADS.get(tag) or (
            _HEADS.get(str(el.get("rend", "")).lower()) if tag == "head" else None
        )
        if tag == "head" and level is None:
            level = 2
        if level is not None:
            builder.heading(min(6, level + level_shift), "".join(el.itertext()))
        elif tag in _BLOCKS and tag != "lb" and not _has_block(el):
            text = "".join(el.itertext())
            if tag in ("item", "li"):
                text = "・" + text.strip() if text.strip() else ""
            elif tag in ("row", "tr"):
                text = " | ".join(" ".join(c.itertext()).strip() for c in el)
            builder.block(text)


def _has_block(el: Any) -> bool:
    for child in el.iterdescendants():
        tag = child.tag if isinstance(child.tag, str) else ""
        tag = tag.rsplit("}", 1)[-1].lower()
        if (tag in _BLOCKS or tag in _HEADS or tag == "head") and tag != "lb":
            return True
    return False


def read(data: bytes, source: str) -> Extracted:
    """Extract the article of one saved web page.

    Raises:
        SkipFile: the page is too large or has no article text.
    """
    if len(data) > _MAX_BYTES:
        raise SkipFile(source, f"HTML page larger than {_MAX_BYTES >> 20} MB")
    import lxml.etree
    import lxml.html
    import trafilatura

    text, encoding = decode(data)
    if not text.strip():
        raise SkipFile(source, "empty HTML page")
    # A line break in the markup between two Japanese chars is source wrapping, not
    # a space (trafilatura would turn it into one): drop it before parsing.
    tree = lxml.html.document_fromstring(CJK_BREAK.sub("", text))
    title, h1, url, site = _page_facts(tree)
    xml = trafilatura.extract(
        tree,
        output_format="xml",
        include_comments=False,
        include_tables=True,
        include_links=False,
        include_images=False,
        include_formatting=False,
        deduplicate=False,
    )
    if not xml:
        raise SkipFile(source, "no article text found in this HTML page (only navigation?)")
    doc = lxml.etree.fromstring(xml.encode("utf-8"))
    builder = TextBuilder()
    main = doc.find("main")
    blocks_into(builder, main if main is not None else doc)
    if not builder.text().strip():
        raise SkipFile(source, "no article text found in this HTML page (only navigation?)")
    site = site or doc.get("sitename")
    name = clean_title(strip_site(title, site) if title else None) or clean_title(h1)
    return Extracted(
        text=builder.text(),
        title=name,
        headings=tuple(builder.headings),
        url=url,
        encoding=encoding,
    )
