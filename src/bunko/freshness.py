"""Has the corpus changed since the index was last updated? And is it the same corpus?

Which files changed is decided in one place, :mod:`bunko.corpus.changes`
(re-exported here); this module binds an index to its corpus folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bunko.corpus.changes import CorpusChanges, corpus_changes
from bunko.errors import CorpusError

__all__ = ["CorpusChanges", "check_corpus", "corpus_changes", "corpus_key"]


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
