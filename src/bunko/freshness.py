"""Has the corpus changed since the index was last updated? And is it the same corpus?

The check is cheap on purpose, since every ``bunko query`` runs it: one ``stat``
per file, and a file's bytes are hashed only when its size or mtime differs from
the indexed record (a touched but unchanged file is not a change).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bunko.errors import CorpusError


class _DocRecord(Protocol):
    @property
    def size(self) -> int: ...
    @property
    def mtime_ns(self) -> int: ...
    @property
    def sha256(self) -> str: ...


@dataclass(frozen=True)
class CorpusChanges:
    """Files that differ between the corpus folder and the index."""

    new: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]

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


def corpus_changes(corpus: Path, indexed: Mapping[str, _DocRecord]) -> CorpusChanges:
    """Compare the corpus folder with the indexed documents: stat first, then hash.

    Raises:
        CorpusError: the corpus folder is missing or unreadable.
    """
    from bunko.ingest import list_corpus, source_of

    new: list[str] = []
    changed: list[str] = []
    seen: set[str] = set()
    for path in list_corpus(corpus):
        src = source_of(path, corpus)
        seen.add(src)
        prev = indexed.get(src)
        if prev is None:
            # A file nobody may read would be skipped by the update again: it is not
            # news, or every query would re-run an update that adds nothing.
            if os.access(path, os.R_OK):
                new.append(src)
            continue
        try:
            st = path.stat()
            if st.st_size == prev.size and st.st_mtime_ns == prev.mtime_ns:
                continue
            if st.st_size != prev.size or _sha256(path) != prev.sha256:
                changed.append(src)
        except OSError:
            changed.append(src)
    removed = sorted(s for s in indexed if s not in seen)
    return CorpusChanges(tuple(new), tuple(changed), tuple(removed))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def corpus_key(corpus: Path) -> str:
    """How an index records its corpus folder: the absolute, resolved path."""
    return str(corpus.resolve())


def check_corpus(corpus: Path, index: Path, meta: Mapping[str, Any]) -> None:
    """Refuse an index built from another corpus folder, or a corpus folder that is gone.

    The index knows its corpus by absolute path and by its path relative to the
    index folder, so a project folder holding both can be moved or copied whole.
    An index written before bunko recorded its corpus (no ``meta["corpus"]``) is
    accepted; its next update records the folder.

    Raises:
        CorpusError: the folder is missing, or the index belongs to another folder.
    """
    if not corpus.is_dir():
        raise CorpusError(
            f"the corpus folder {corpus} does not exist; create it, or pass --corpus DIR "
            "for the folder you indexed"
        )
    recorded = meta.get("corpus")
    if not isinstance(recorded, str) or not recorded:
        return
    here = os.path.normcase(corpus_key(corpus))
    rel = meta.get("corpus_from_index")
    moved = isinstance(rel, str) and os.path.normcase(str((index / rel).resolve())) == here
    if os.path.normcase(recorded) != here and not moved:
        if isinstance(rel, str) and (index / rel).is_dir():
            recorded = str((index / rel).resolve())  # where it lives now, if moved whole
        raise CorpusError(
            f"the index in {index} was built from the corpus {recorded}, not {corpus_key(corpus)}. "
            f"Pass --index DIR to keep a second shelf for {corpus}, or run "
            f"`bunko index --rebuild --corpus {corpus}` to rebuild {index} for it"
        )
