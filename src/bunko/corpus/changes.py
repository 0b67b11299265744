"""Which corpus files differ from the index: one check for ``bunko query``'s freshness
test and ``bunko status``.

The check is cheap on purpose, since every ``bunko query`` runs it: one ``stat``
per file, and a file's bytes are hashed only when its mtime differs from the
indexed record while its size does not (a touched but unchanged file is not a
change). ``bunko index`` makes the same stat-first decision
(:func:`same_stat`) in :func:`bunko.corpus.diff.diff_corpus`, which also reads
the files it finds changed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bunko.corpus.paths import opened_inside
from bunko.errors import SourceError

if TYPE_CHECKING:
    from bunko.index.snapshot import Snapshot
    from bunko.types import SkippedFile, StatusReport


class DocRecord(Protocol):
    @property
    def size(self) -> int: ...
    @property
    def mtime_ns(self) -> int: ...
    @property
    def sha256(self) -> str: ...


@dataclass(frozen=True)
class CorpusChanges:
    """Files that differ between the corpus folder and the index.

    ``skipped``: (source, reason) of files the index remembers as unindexable and
    that have not changed since (same size, mtime and reader); not news.
    """

    new: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.new or self.changed or self.removed)

    def summary(self) -> str:
        """One line for stderr, e.g. ``2 new (a.md, b.md), 1 changed (c.txt)``."""
        parts = []
        for label, files in (("new", self.new), ("changed", self.changed),
                             ("removed", self.removed)):  # fmt: skip
            if files:
                shown = ", ".join(files[:3]) + (", …" if len(files) > 3 else "")
                parts.append(f"{len(files)} {label} ({shown})")
        return ", ".join(parts)


def same_stat(st: os.stat_result, prev: DocRecord) -> bool:
    """The file's size and mtime are those the index recorded: taken as unchanged."""
    return st.st_size == prev.size and st.st_mtime_ns == prev.mtime_ns


SkipMemory = Mapping[str, Mapping[str, Any]]


def skip_key(source: str) -> str:
    """How a skipped file is named in the index: as printed, since a name that is not
    valid UTF-8 (lone surrogates in Python) cannot be stored as it is."""
    return source.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def skip_record(path: Path, reason: str) -> dict[str, Any] | None:
    """What the index remembers of a file it skipped: size, mtime, reader, reason
    (None when the file cannot even be stat'ed: it is looked at again next time)."""
    from bunko.ingest import reader_label

    try:
        st = path.stat()
    except OSError:
        return None
    return {
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "reader": reader_label(path),
        "reason": reason,
    }


def still_skipped(path: Path, st: os.stat_result, known: Mapping[str, Any] | None) -> bool:
    """The file is the one the index skipped: same size, mtime and reader version."""
    if not known:
        return False
    from bunko.ingest import reader_label

    return (
        st.st_size == known.get("size")
        and st.st_mtime_ns == known.get("mtime_ns")
        and known.get("reader") == reader_label(path)
    )


def corpus_changes(
    corpus: Path,
    indexed: Mapping[str, DocRecord],
    indexable: Callable[[Path], bool] | None = None,
    skipped: SkipMemory | None = None,
) -> CorpusChanges:
    """Compare the corpus folder with the indexed documents: stat first, then hash.

    Args:
        corpus: the corpus folder.
        indexed: the index's documents by source.
        indexable: if given, a new or changed file counts only when this says
            indexing would take it (``bunko status`` lists the others as skipped).
        skipped: the files the index remembers as skipped (``meta["skipped"]``):
            while unchanged they are not news, and are not read again.

    Raises:
        CorpusError: the corpus folder is missing or unreadable.
    """
    from bunko.ingest import list_corpus, source_of

    new: list[str] = []
    changed: list[str] = []
    quiet: list[tuple[str, str]] = []
    seen: set[str] = set()
    memory = skipped or {}
    for path in list_corpus(corpus):
        src = source_of(path, corpus)
        seen.add(src)
        prev = indexed.get(src)
        known = memory.get(skip_key(src))
        if known is not None:
            try:
                if still_skipped(path, path.stat(), known):
                    quiet.append((skip_key(src), str(known.get("reason", ""))))
                    continue
            except OSError:
                pass
        if prev is None:
            # A file nobody may read would be skipped by the update again: it is not
            # news, or every query would re-run an update that adds nothing.
            if os.access(path, os.R_OK) and (indexable is None or indexable(path)):
                new.append(src)
            continue
        try:
            st = path.stat()
            if same_stat(st, prev):
                continue
            if (st.st_size != prev.size or sha256_file(corpus, path) != prev.sha256) and (
                indexable is None or indexable(path)
            ):
                changed.append(src)
        except (OSError, SourceError):
            # Unreadable, or it now leads outside the corpus: the update looks at it
            # (and skips it, saying why).
            changed.append(src)
    removed = sorted(s for s in indexed if s not in seen)
    return CorpusChanges(tuple(new), tuple(changed), tuple(removed), tuple(quiet))


def sha256_file(corpus: Path, path: Path) -> str:
    """The SHA-256 of the article ``path``, read from one descriptor confined to ``corpus``.

    Raises:
        SourceError: the path leads outside the corpus, or changed while opening.
        OSError: missing, unreadable or not a regular file.
    """
    h = hashlib.sha256()
    with opened_inside(corpus, path) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def status_report(
    corpus: Path, index: Path, loaded: Snapshot | None, read_new: bool = True
) -> StatusReport:
    """``bunko status``: what the index ``loaded`` holds (None: no index yet), which
    corpus files it has not caught up with, and which files indexing skips and why.

    Args:
        read_new: read each new or changed file to tell whether indexing would skip
            it. A server passes False while its background update is indexing them
            (a large new file would make every status call read it).
    """
    from bunko.embedding import recorded_engine
    from bunko.types import SkippedFile, StatusReport

    indexed = loaded.documents() if loaded is not None else {}
    skipped: list[SkippedFile] = []
    changes = CorpusChanges((), (), tuple(sorted(indexed)))
    aliases: tuple[tuple[str, str], ...] = ()
    if corpus.is_dir():
        changes = corpus_changes(
            corpus,
            indexed,
            (lambda p: _indexable(p, corpus, skipped)) if read_new else None,
            skipped=skip_memory(loaded.meta) if loaded is not None else None,
        )
        skipped += [SkippedFile(src, reason) for src, reason in changes.skipped]
        skipped.sort(key=lambda sk: sk.source)
        from bunko.ingest import corpus_listing

        aliases = tuple(sorted(corpus_listing(corpus).aliases.items()))
    meta = loaded.meta if loaded is not None else {}
    return StatusReport(
        corpus=str(corpus),
        index=str(index),
        exists=loaded is not None,
        model=meta.get("model"),
        dimension=meta.get("dimension"),
        index_type=meta.get("index_type"),
        documents=len(indexed),
        chunks=loaded.n_chunks if loaded is not None else 0,
        created=meta.get("created"),
        updated=meta.get("updated"),
        stale_new=tuple(changes.new),
        stale_changed=tuple(changes.changed),
        stale_removed=tuple(changes.removed),
        recall_at_10=meta.get("recall_at_10"),
        nprobe=meta.get("nprobe"),
        skipped=tuple(skipped),
        engine=recorded_engine(meta) if loaded is not None else None,
        aliases=aliases,
        engine_choice=meta.get("engine_choice"),
    )


def skip_memory(meta: Mapping[str, Any]) -> dict[str, Any] | None:
    """The files an index remembers as skipped (``meta["skipped"]``), if it has any."""
    memory = meta.get("skipped")
    return memory if isinstance(memory, dict) else None


def _indexable(path: Path, corpus: Path, skipped: list[SkippedFile]) -> bool:
    """Whether indexing would take ``path``; if not, record why in ``skipped``."""
    from bunko import shelfops
    from bunko.errors import SkipFile
    from bunko.types import SkippedFile

    try:
        shelfops.check_file(path, corpus)
    except SkipFile as skip:
        skipped.append(SkippedFile(skip.path, skip.reason))
        return False
    return True
