"""Corpus files -> :class:`Document` records.

Everything a later stage needs to cite a passage is settled here: the decoded
text (line endings kept, so char offsets and line numbers match the file), where
the body starts after any YAML front matter, a title, and the Markdown headings.
One bad file never stops a run: it becomes a :class:`SkipFile` the caller reports.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bunko import readers
from bunko.corpus.paths import OutsideCorpus, inside, read_inside
from bunko.errors import CorpusError, SkipFile
from bunko.types import Document, Heading

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
# HTML, PDF, EPUB, ...: each read by its module in bunko.readers (text extracted).
SUPPORTED_SUFFIXES = TEXT_SUFFIXES + readers.suffixes()

log = logging.getLogger("bunko")

_BINARY_SNIFF = 8192  # NUL bytes this early mean "not a text file"
_SCORE_CHARS = 20_000  # enough text to tell Shift-JIS from EUC-JP
_FRONT_MATTER_MAX = 65_536  # a closing "---" further in is a Markdown rule, not YAML
_TITLE_MAX = 120
_BOMS = (  # UTF-32 first: its little-endian BOM starts with UTF-16's
    (b"\xff\xfe\x00\x00", "utf-32-le", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be", "utf-32-be"),
    (b"\xef\xbb\xbf", "utf-8", "utf-8-sig"),
    (b"\xff\xfe", "utf-16-le", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be", "utf-16-be"),
)

_FM_OPEN = re.compile(r"---[ \t]*(?:\r\n|\n|\r)")
# "(?<![^\r\n])" = at the start of a line, for \n, \r\n and old-Mac \r endings alike.
_FM_CLOSE = re.compile(r"(?<![^\r\n])(?:---|\.\.\.)[ \t]*(?:\r\n|\n|\r|\Z)")
_MARKS = re.compile(
    r"(?<![^\r\n])(?:(?P<hashes>#{1,6})[ \t]+(?P<heading>[^\r\n]*)"
    r"|[ ]{0,3}(?P<fence>`{3,}|~{3,})(?P<info>[^\r\n]*))"
)
_LINE = re.compile(r"[^\r\n]+")
_LEAD_MARKUP = re.compile(r"^[\s#>*+\-=_]+")
_TRAIL_MARKUP = re.compile(r"[\s#*_]+$")
_JA_GOOD = re.compile(r"[\u3000-\u30ff\u4e00-\u9fff\uff01-\uff5e]")
# cp932 maps the never-used single bytes 0x80, 0xA0 and 0xFD-0xFF to these instead
# of failing, so a reading that contains them is not really cp932.
_CP932_STRAYS = re.compile(r"[\x80\uf8f0-\uf8f3]")
_JA_BAD = re.compile(r"[^\x00-\x7f\u3000-\u30ff\u4e00-\u9fff\uff01-\uff5e]")


def source_of(path: Path, root: Path) -> str:
    """The stable name of a corpus file: its path under ``root``, "/"-separated.

    Raises:
        ValueError: ``path`` is not under ``root`` (a caller bug).
    """
    try:
        rel = path.relative_to(root)
    except ValueError:
        rel = Path(os.path.abspath(path)).relative_to(os.path.abspath(root))
    return rel.as_posix()


def _check_root(root: Path) -> None:
    if not root.exists():
        raise CorpusError(
            f"corpus folder {root} does not exist; create it and put .txt or .md articles in it"
        )
    if not root.is_dir():
        raise CorpusError(
            f"corpus path {root} is not a folder; the corpus must be a folder "
            "of .txt or .md articles"
        )


@dataclass(frozen=True)
class CorpusListing:
    """What a walk of the corpus folder found.

    ``files`` are the articles to index, one per real file; ``aliases`` maps a
    source that is a link to another listed article onto that article's source
    (indexed once, under the real name); ``outside`` are links that lead out of
    the corpus folder (never read).
    """

    files: tuple[Path, ...]
    aliases: dict[str, str]
    outside: tuple[str, ...]


# What was last said about links, per corpus folder: each is logged once per
# change, not on every query or request.
_SAID_LINKS: dict[str, frozenset[str]] = {}


def list_corpus(root: Path) -> list[Path]:
    """All supported article files under ``root``, sorted by their source name
    (see :func:`corpus_listing`; links to listed articles are left out).

    Raises:
        CorpusError: ``root`` is missing, not a folder or unreadable.
    """
    return list(corpus_listing(root).files)


def corpus_listing(root: Path) -> CorpusListing:
    """Walk ``root`` for articles.

    Hidden files and folders are skipped. A symlink that leads outside the corpus
    folder is skipped with a warning: nothing outside the corpus is ever read.
    A file is listed once by its real path: a link to an article that is listed
    anyway is an alias (said once), so its passages are not indexed twice.
    Symlinked folders are followed once per real folder, and only after every
    folder reachable without links, so a link loop cannot hang and a real path
    wins over a linked one. The walk uses its own stack, so depth is no problem.

    Raises:
        CorpusError: ``root`` is missing, not a folder or unreadable.
    """
    _check_root(root)
    real_root = os.path.realpath(root)
    # (path, real path, reached through a link)
    found: list[tuple[Path, str, bool]] = []
    outside: list[str] = []
    seen: set[tuple[int, int]] = set()
    plain: list[tuple[Path, str, bool]] = [(root, real_root, False)]
    linked: list[tuple[Path, str, bool]] = []
    while plain or linked:
        folder, real_folder, via_link = plain.pop() if plain else linked.pop()
        try:
            st = folder.stat()
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name, reverse=True)
        except OSError as err:
            if folder == root:
                raise CorpusError(f"cannot read corpus folder {root}: {err.strerror}") from err
            log.warning("cannot read folder %s: %s", folder, err.strerror)
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_link = entry.is_symlink()
                real = (
                    os.path.realpath(entry.path)
                    if is_link
                    else f"{real_folder}{os.sep}{entry.name}"
                )
                if is_link and not inside(real, real_root):
                    outside.append(source_of(Path(entry.path), root))
                    continue
                if entry.is_dir():  # follows symlinks; the seen-set stops loops
                    item = (Path(entry.path), real, via_link or is_link)
                    (linked if is_link else plain).append(item)
                elif entry.is_file() and entry.name.lower().endswith(SUPPORTED_SUFFIXES):
                    found.append((Path(entry.path), real, via_link or is_link))
            except OSError:  # vanished or unreadable while listing
                continue
    # One file per real path: the one reached without links, else the first by name.
    found.sort(key=lambda f: (f[2], source_of(f[0], root)))
    first: dict[str, Path] = {}
    aliases: dict[str, str] = {}
    for path, real, _ in found:
        if real in first:
            aliases[source_of(path, root)] = source_of(first[real], root)
        else:
            first[real] = path
    files = tuple(sorted(first.values(), key=lambda p: source_of(p, root)))
    listing = CorpusListing(files, aliases, tuple(sorted(outside)))
    _say_links(real_root, root, listing)
    return listing


def _say_links(key: str, root: Path, listing: CorpusListing) -> None:
    said = frozenset(
        [f"out:{s}" for s in listing.outside]
        + [f"alias:{a}>{t}" for a, t in listing.aliases.items()]
    )
    if _SAID_LINKS.get(key) == said:
        return
    before = _SAID_LINKS.get(key, frozenset())
    _SAID_LINKS[key] = said
    for src in listing.outside:
        if f"out:{src}" not in before:
            log.warning("skipping %s: it links outside the corpus folder", root / src)
    for alias, target in sorted(listing.aliases.items()):
        if f"alias:{alias}>{target}" not in before:
            log.info("%s is a link to %s; indexed once, as %s", alias, target, target)


def _japanese_score(text: str) -> int:
    """How much ``text`` looks like Japanese: kana, kanji and full-width marks count
    for, anything else outside ASCII (half-width kana, private use) against."""
    sample = text[:_SCORE_CHARS]
    return len(_JA_GOOD.findall(sample)) - len(_JA_BAD.findall(sample))


def _decode(data: bytes, source: str) -> tuple[str, str]:
    """Decode ``data`` strictly and say which encoding it was; never guess silently."""
    for bom, codec, name in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(codec), name
            except UnicodeDecodeError as err:
                raise SkipFile(source, f"cannot decode as {name}: {err.reason}") from None
    if b"\x00" in data[:_BINARY_SNIFF]:
        raise SkipFile(source, "binary file (NUL bytes), not text")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    # Both legacy Japanese encodings often decode the same bytes without error
    # (EUC-JP read as cp932 turns into half-width katakana), so score each reading
    # instead of trusting the first that succeeds. Ties go to cp932, the commoner.
    readings: list[tuple[int, str, str]] = []
    for codec in ("cp932", "euc_jp"):
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        if codec == "cp932" and _CP932_STRAYS.search(text):
            continue
        readings.append((_japanese_score(text), codec, text))
    if not readings:
        raise SkipFile(source, "cannot decode as UTF-8, UTF-16, UTF-32, Shift-JIS or EUC-JP")
    _, codec, text = max(readings, key=lambda r: r[0])
    return text, codec


def _front_matter(text: str, source: str) -> tuple[dict[str, Any], int]:
    """Parse a leading ``---`` YAML block; return its fields and where the body starts."""
    opening = _FM_OPEN.match(text)
    if not opening:
        return {}, 0
    closing = _FM_CLOSE.search(text, opening.end(), _FRONT_MATTER_MAX)
    if not closing or closing.end() == _FRONT_MATTER_MAX < len(text):  # \Z at the cut
        return {}, 0
    import yaml  # type: ignore[import-untyped,unused-ignore]

    block = text[opening.end() : closing.start()]

    # Dates stay text: bunko does not use them, and an impossible one (2024-02-30)
    # would make PyYAML reject the whole block, title included.
    class _Loader(yaml.SafeLoader):
        yaml_implicit_resolvers = {  # noqa: RUF012 (PyYAML reads this class attribute)
            k: [r for r in v if r[0] != "tag:yaml.org,2002:timestamp"]
            for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
        }

    try:
        fields = yaml.load(block, Loader=_Loader)  # a SafeLoader
    except (yaml.YAMLError, ValueError) as err:
        log.warning("%s: ignoring malformed YAML front matter: %s", source, err)
        return {}, closing.end()
    if fields is None:
        return {}, closing.end()
    if not isinstance(fields, dict):  # prose between two "---" rules, not front matter
        return {}, 0
    return fields, closing.end()


def _headings(text: str, start: int) -> Iterator[Heading]:
    """ATX headings from ``start`` on, skipping fenced code (where "#" is a comment)."""
    fence: tuple[str, int] | None = None
    for m in _MARKS.finditer(text, start):
        marker = m.group("fence")
        if marker is not None:
            info = m.group("info")
            if fence is None and not (marker[0] == "`" and "`" in info):
                fence = (marker[0], len(marker))
            elif fence and marker[0] == fence[0] and len(marker) >= fence[1] and not info.strip():
                fence = None
        elif fence is None:
            title = m.group("heading").strip()
            bare = title.rstrip("#")
            if not bare or bare[-1] in " \t":  # a closing "##" run, not "C#"
                title = bare.rstrip()
            if title:
                yield Heading(level=len(m.group("hashes")), text=title, start=m.start())


# Titles: what a reader would call the article, short enough for one line of output.
TITLE_CAP = 50  # chars; longer candidates are cut at a sentence end or a soft break
_TITLE_SCAN_LINES = 30  # how far into the body a title line may sit
_IMAGE_OR_LINK = re.compile(
    r"!?\[[^\]]*\]\([^)]*\)|<img\b[^>]*>|<a\b[^>]*>|</a>|https?://\S+", re.IGNORECASE
)
_PLACEHOLDERS = frozenset({"見出し画像", "画像", "サムネイル", "image", "thumbnail", "cover"})
_SENTENCE_END = re.compile(r"[。．！？!?](?=.)")
_SOFT_BREAK = re.compile(r"[ \u3000、，,・:：)）」』]")


def _is_placeholder(line: str) -> bool:
    """An image placeholder or a line that is only an image, a link or a URL."""
    rest = _IMAGE_OR_LINK.sub("", line).strip(" \t*_#>-[]()!|")
    return not rest or rest.lower() in _PLACEHOLDERS


def cap_title(title: str) -> str:
    """``title`` cut to :data:`TITLE_CAP` chars: at its first sentence end when that
    fits, else at the last soft break (space, 、, closing bracket) past half-way."""
    title = " ".join(title.split())
    if len(title) <= TITLE_CAP:
        return title
    end = _SENTENCE_END.search(title)
    if end and end.end() <= TITLE_CAP:
        return title[: end.start()]
    head = title[:TITLE_CAP]
    cuts = [m.end() for m in _SOFT_BREAK.finditer(head) if m.end() > TITLE_CAP // 2]
    return head[: cuts[-1]].rstrip(" \u3000、，,・:：") + "…" if cuts else head + "…"


def _choose_title(text: str, body_start: int, headings: tuple[Heading, ...]) -> str | None:
    """The first heading, else the first line (cut short). Image placeholders
    ("見出し画像", a line that is only an image, a link or a URL) never count."""
    for h in headings:
        if not _is_placeholder(h.text):
            return cap_title(h.text)
    for n, m in enumerate(_LINE.finditer(text, body_start)):
        if n >= _TITLE_SCAN_LINES:
            break
        # Cut before the trailing-markup regex so that it never backtracks over a huge line.
        line = _TRAIL_MARKUP.sub("", _LEAD_MARKUP.sub("", m.group()[: _TITLE_MAX * 4])).strip()
        if line and not _is_placeholder(line):
            return cap_title(line)
    return None


def read_document(path: Path, root: Path, confine: bool = True) -> Document:
    """Read one corpus file into a :class:`Document`.

    Args:
        path: the file.
        root: the corpus folder; source names are relative to it.
        confine: read only if the file opened lies inside ``root`` (see
            :mod:`bunko.corpus.paths`); off only for a file a user names to ``add``.

    Raises:
        SkipFile: the file vanished, is unreadable, binary, undecodable, empty,
            or has front matter and no body.
    """
    source = source_of(path, root)
    try:
        source.encode("utf-8")
    except UnicodeEncodeError:
        # Bytes that are not UTF-8 in a name (Python keeps them as lone surrogates)
        # cannot be stored or printed; say which file, in a form that prints.
        shown = source.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise SkipFile(shown, "the file name is not valid UTF-8; rename the file") from None
    try:
        if confine:
            # One descriptor, checked to lie inside the corpus, is what gets read: a
            # link swapped in after the listing cannot carry the read outside.
            data, st = read_inside(root, path)
        else:
            st = path.stat()
            if not stat.S_ISREG(st.st_mode):
                raise SkipFile(source, "not a regular file")
            data = path.read_bytes()
    except OutsideCorpus:
        reason = "it links outside the corpus folder (or changed while read)"
        raise SkipFile(source, reason, transient=True) from None
    except IsADirectoryError:
        raise SkipFile(source, "not a regular file") from None
    except FileNotFoundError:
        raise SkipFile(source, "file vanished before it could be read", transient=True) from None
    except PermissionError:
        raise SkipFile(source, "permission denied", transient=True) from None
    except OSError as err:
        raise SkipFile(source, f"cannot read: {err.strerror or err}", transient=True) from None
    reader = readers.reader_for(path)
    if reader is not None:  # Document.text is then the extracted text
        return readers.read_document(path, source, data, st.st_mtime_ns, reader)
    text, encoding = _decode(data, source)
    if not text or text.isspace():
        raise SkipFile(source, "empty file")
    fields, body_start = _front_matter(text, source)
    if body_start and (body_start == len(text) or text[body_start:].isspace()):
        raise SkipFile(source, "front matter only, no body")
    headings = tuple(_headings(text, body_start))
    raw_title = fields.get("title")
    title = ""
    if raw_title is not None and not isinstance(raw_title, (bool, dict, list)):
        title = str(raw_title).strip()
    title = cap_title(title) if title else (_choose_title(text, body_start, headings) or "")
    title = title or path.stem
    return Document(
        source=source,
        path=str(path),
        title=title,
        text=text,
        body_start=body_start,
        headings=headings,
        sha256=hashlib.sha256(data).hexdigest(),
        encoding=encoding,
        size=len(data),
        mtime_ns=st.st_mtime_ns,
    )


TEXT_READER = "text/1"  # raise when read_document's decoding or skipping rules change
_LABELS: dict[str, str] = {}


def reader_label(path: Path) -> str:
    """Which reader (and version) judges ``path``: a file skipped by one reader is
    read again when it changes, e.g. after an upgrade that can read it."""
    suffix = path.suffix.lower()
    if suffix not in _LABELS:
        reader = readers.reader_for(path)
        _LABELS[suffix] = TEXT_READER if reader is None else readers.extractor(reader)
    return _LABELS[suffix]


def load_corpus(root: Path) -> tuple[list[Document], list[SkipFile]]:
    """Read every article under ``root``; bad files are logged and collected, not fatal.

    Returns:
        The documents in source order, and one :class:`SkipFile` per skipped file.
        Both may be empty; whether an empty corpus is an error is the caller's call.

    Raises:
        CorpusError: ``root`` is missing or not a folder.
    """
    docs: list[Document] = []
    skipped: list[SkipFile] = []
    for path in list_corpus(root):
        try:
            docs.append(read_document(path, root))
        except SkipFile as skip:
            log.warning("skipping %s: %s", skip.path, skip.reason)
            skipped.append(skip)
    return docs, skipped
