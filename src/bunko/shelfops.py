"""Managing the articles on a shelf: add (files or folders), remove, show, match.

Everything here works on the corpus folder only; the index is brought up to date
by the caller (:class:`bunko.api.Shelf`). Two rules hold for every file:

* nothing is ever written, deleted or read outside the corpus folder;
* a file is judged the way indexing will judge it (:func:`bunko.ingest.read_document`),
  so ``add`` refuses what indexing would skip, and ``show`` prints exactly the text,
  and the line numbers, that citations point into, whatever the file format.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from bunko.corpus.leftovers import TMP_SUFFIX
from bunko.corpus.names import from_user, suggestion
from bunko.corpus.paths import inside
from bunko.errors import AddError, CorpusError, SkipFile, SourceError, SourceNotFoundError
from bunko.types import Document, SkippedFile

_RANGE = re.compile(r"^(?P<start>\d+)(?:-(?P<end>\d+))?$")
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class AddPlan:
    """What ``add`` will do: (source file, corpus-relative name) pairs to copy."""

    copy: tuple[tuple[Path, str], ...]
    identical: tuple[str, ...]
    skipped: tuple[SkippedFile, ...]


@dataclass(frozen=True)
class ShownLine:
    number: int  # 1-based, as in citations
    text: str  # without its line break


@dataclass(frozen=True)
class ShowResult:
    """Lines of one article, numbered as citations number them (``bunko show``)."""

    source: str
    title: str
    heading: str | None  # heading path active at the first shown line
    start: int
    end: int
    total_lines: int
    lines: tuple[ShownLine, ...]


# -- checking a file the way indexing will ---------------------------------------


def check_file(path: Path, root: Path, confine: bool = True) -> Document:
    """Read ``path`` exactly as indexing would, with source names relative to ``root``.

    ``confine=False`` for a file a user names to ``add`` (it may be a link anywhere).

    Raises:
        SkipFile: indexing would skip this file (binary, empty, undecodable, ...).
    """
    from bunko.ingest import read_document

    return read_document(path, root, confine=confine)


# -- add ---------------------------------------------------------------------------


def plan_add(files: Sequence[str | Path], corpus: Path, force: bool = False) -> AddPlan:
    """Check every file before anything is copied.

    A file given by name must be indexable, or the whole add is refused. A folder
    is walked recursively (hidden entries skipped, like the indexer does); its
    articles keep their sub-folder names under ``corpus/<folder name>/``, and
    those that cannot be indexed are skipped with the reason.

    Raises:
        AddError: a named file is missing, of an unsupported kind or not indexable;
            two inputs land on one name; or an article of the same name differs
            and ``force`` is off. Nothing has been copied then.
    """
    from bunko.ingest import SUPPORTED_SUFFIXES, list_corpus, source_of

    copy: list[tuple[Path, str]] = []
    identical: list[str] = []
    skipped: list[SkippedFile] = []
    names: set[str] = set()
    conflicts: list[str] = []

    def take(src: Path, rel: str) -> None:
        if rel in names:
            raise AddError(f"two files named {rel} were given; rename one")
        names.add(rel)
        dest = safe_dest(corpus, rel)
        # A link at the destination is replaced by os.replace, never written through.
        if dest.exists():
            if dest.is_file() and _same_bytes(dest, src):
                identical.append(rel)
                return
            if not force:
                conflicts.append(f"{dest} already exists and differs from {src}")
                return
        copy.append((src, rel))

    for f in map(Path, files):
        if f.is_dir():
            top = os.path.basename(os.path.abspath(f))
            try:
                found = list_corpus(f)
            except CorpusError as exc:
                raise AddError(str(exc)) from exc
            for path in found:
                rel = source_of(path, f)
                shown = f"{top}/{rel}" if top else rel
                try:
                    check_file(path, f)
                except SkipFile as skip:
                    skipped.append(SkippedFile(shown, skip.reason))
                    continue
                take(path, shown)
            continue
        if not f.is_file():
            raise AddError(f"{f} is not a file or a folder")
        name = f.name.lstrip(".") or "article.txt"
        if Path(name).suffix.lower() not in SUPPORTED_SUFFIXES:
            raise AddError(f"{f}: only {', '.join(SUPPORTED_SUFFIXES)} files can be added")
        try:
            check_file(f, f.parent, confine=False)
        except SkipFile as skip:
            raise AddError(f"{f} cannot be indexed ({skip.reason}); nothing was added") from None
        take(f, name)
    if conflicts:
        raise AddError(
            "; ".join(conflicts) + "; nothing was added. Rename the file, or overwrite"
        ).with_cli_hint("pass --force to overwrite")
    return AddPlan(tuple(copy), tuple(identical), tuple(skipped))


def copy_into(plan: AddPlan, corpus: Path, replace: bool = False) -> None:
    """Copy the planned files into the corpus, each through a fresh temporary name.

    Without ``replace`` a file is placed with a no-replace primitive (a hard
    link, then the temporary name unlinked): if a file of that name appeared
    since the plan, the add is refused instead of overwriting it.

    Raises:
        AddError: a copy failed, or its name is taken now (that file is left out;
            earlier ones stay).
    """
    for src, rel in plan.copy:
        dest = safe_dest(corpus, rel)
        dest.parent.mkdir(parents=True, exist_ok=True)
        safe_dest(corpus, rel)  # the folders just made must still be inside the corpus
        # A fresh, exclusively created temp name: a fixed one could already be a
        # symlink pointing out of the corpus, and copying would write through it.
        fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=TMP_SUFFIX, dir=dest.parent)
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
                shutil.copyfileobj(inp, out)
            shutil.copymode(src, tmp)  # mkstemp made it 0600
            if replace:
                os.replace(tmp, dest)
            else:
                _place_new(tmp, dest)
        except FileExistsError:
            raise AddError(
                f"{dest} appeared while adding (another add?); nothing was overwritten"
            ).with_cli_hint("pass --force to overwrite") from None
        except OSError as exc:
            raise AddError(f"could not copy {src} into {corpus}: {exc}") from exc
        finally:  # also on Ctrl-C: no partial copy is left behind
            tmp.unlink(missing_ok=True)


def _place_new(tmp: Path, dest: Path) -> None:
    """Give ``tmp`` the name ``dest`` only if no such name exists (never replaces).

    Raises:
        FileExistsError: ``dest`` exists.
    """
    try:
        os.link(tmp, dest, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError:
        # No hard links here (some FUSE or FAT folders): claim the name with an empty
        # file created exclusively, then rename the full copy over it. A reader sees
        # no file, an empty one (skipped, looked at again) or the whole copy; never half.
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0))
        os.close(fd)
        os.replace(tmp, dest)


def safe_dest(corpus: Path, rel: str) -> Path:
    """``corpus/rel``, refused unless it stays inside the corpus on disk.

    Every existing folder on the way must be a real folder inside the corpus: a
    symlinked sub-folder could otherwise carry a write outside it.

    Raises:
        AddError: ``rel`` is absolute, climbs with "..", or passes through a link.
    """
    parts = PurePosixPath(rel).parts
    if not parts or PurePosixPath(rel).is_absolute() or ".." in parts:
        raise AddError(f"{rel!r} would land outside the corpus folder {corpus}")
    real_root = os.path.realpath(corpus)
    folder = corpus
    for part in parts[:-1]:
        folder = folder / part
        if folder.is_symlink():
            raise AddError(f"{folder} is a symbolic link; bunko will not write through it")
        if folder.exists() and not inside(os.path.realpath(folder), real_root):
            raise AddError(f"{folder} is outside the corpus folder {corpus}")
    return corpus.joinpath(*parts)


def _same_bytes(a: Path, b: Path) -> bool:
    try:
        if a.stat().st_size != b.stat().st_size:
            return False
        return a.read_bytes() == b.read_bytes()
    except OSError:
        return False


# -- matching sources ----------------------------------------------------------------


def check_pattern(pattern: str, corpus: Path) -> str:
    """A corpus-relative source name or glob, normalised to "/" separators.

    Raises:
        SourceError: the pattern is empty, absolute or climbs out with "..".
    """
    p = from_user(pattern, corpus).replace("\\", "/").strip()
    while p.startswith("./"):
        p = p[2:]
    parts = PurePosixPath(p).parts if p else ()
    if not parts or p.startswith("/") or ".." in parts:
        raise SourceError(
            f"{pattern!r} is not inside the corpus folder {corpus}; give a path relative "
            "to it, such as 2024/article.md or '2024/*'"
        )
    return p


def matches(source: str, patterns: Sequence[str]) -> bool:
    """Whether corpus source ``source`` matches any glob (``*`` also crosses "/").

    A pattern without glob characters also matches everything under it as a
    folder: ``2024`` selects ``2024/a.md``.
    """
    for pat in patterns:
        if fnmatch.fnmatchcase(source, pat):
            return True
        if not _GLOB_CHARS & set(pat) and source.startswith(pat.rstrip("/") + "/"):
            return True
    return False


def corpus_sources(corpus: Path) -> dict[str, Path]:
    """Every article the indexer would look at, by source name."""
    from bunko.ingest import list_corpus, source_of

    return {source_of(p, corpus): p for p in list_corpus(corpus)}


# -- remove ----------------------------------------------------------------------------


def plan_remove(patterns: Sequence[str], corpus: Path) -> list[tuple[str, Path]]:
    """The corpus files that ``patterns`` select; checked before anything is deleted.

    Raises:
        SourceError: a pattern points outside the corpus or matches no article, or
            the removal would leave the corpus empty.
    """
    checked = [check_pattern(p, corpus) for p in patterns]
    if not checked:
        raise SourceError("name at least one article to remove")
    sources = corpus_sources(corpus)
    chosen: dict[str, Path] = {}
    for raw, pat in zip(patterns, checked, strict=True):
        hits = {s: p for s, p in sources.items() if matches(s, [pat])}
        if not hits:
            raise SourceError(
                f"no article in {corpus} matches {raw!r}; nothing was removed"
                + suggestion(pat, sources)
            )
        chosen.update(hits)
    if len(chosen) == len(sources):
        raise SourceError(
            f"this would remove every article in {corpus}, leaving nothing to index; "
            "nothing was removed (delete the folder itself to drop the shelf)"
        )
    return sorted(chosen.items())


def delete(files: Sequence[tuple[str, Path]], corpus: Path) -> list[str]:
    """Delete the planned files (a link is removed, never its target); empty folders go too."""
    removed: list[str] = []
    real_root = os.path.realpath(corpus)
    for source, path in files:
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise SourceError(f"could not remove {path}: {exc.strerror or exc}") from exc
        removed.append(source)
        folder = path.parent
        while folder != corpus and inside(os.path.realpath(folder), real_root):
            try:
                folder.rmdir()  # only when empty
            except OSError:
                break
            folder = folder.parent
    return removed


# -- show ------------------------------------------------------------------------------


def parse_target(target: str) -> tuple[str, int | None, int | None]:
    """Split ``SOURCE[:START[-END]]``; a colon not followed by a line range is part of the name.

    Raises:
        SourceError: the range runs backwards or starts at 0.
    """
    source, sep, tail = target.rpartition(":")
    m = _RANGE.match(tail) if sep else None
    if not m:
        return target, None, None
    start = int(m.group("start"))
    end = int(m.group("end")) if m.group("end") else start
    if start < 1 or end < start:
        raise SourceError(f"bad line range {tail!r}: give START or START-END, from line 1")
    return source, start, end


def show(target: str, corpus: Path) -> ShowResult:
    """The text of one article, or lines START-END of it, numbered like citations.

    The file is read by the indexer's own reader, so a citation's line range
    (``fuji.md:3-5``) shows exactly the cited lines, for every format.

    Raises:
        SourceError: no such article in the corpus, it points outside it, or it
            cannot be read (the reason indexing would give).
    """
    from bunko.corpus.lines import source_lines

    name, start, end = parse_target(target)
    source = check_pattern(name, corpus)
    try:
        doc, text_lines = source_lines(corpus, source)
    except SourceNotFoundError as exc:
        raise SourceNotFoundError(str(exc) + suggestion(source, corpus_sources(corpus))) from None
    total = len(text_lines)
    first = start or 1
    last = min(end or total, total)
    if first > total:
        raise SourceError(f"{source} has {total} lines; line {first} is past its end")
    lines = [ShownLine(no, text_lines[no - 1].rstrip("\r\n")) for no in range(first, last + 1)]
    offset = sum(len(t) for t in text_lines[: first - 1])
    return ShowResult(
        source=source,
        title=doc.title,
        heading=heading_at(doc, offset),
        start=first,
        end=last,
        total_lines=total,
        lines=tuple(lines),
    )


def heading_at(doc: Document, offset: int) -> str | None:
    """The heading path ("A > B") in force at char ``offset``, as chunks record it."""
    stack: list[tuple[int, str]] = []
    for h in sorted(doc.headings, key=lambda h: h.start):
        if h.start > offset:
            break
        while stack and stack[-1][0] >= h.level:
            stack.pop()
        stack.append((h.level, h.text.strip()))
    return " > ".join(t for _, t in stack if t) or None
