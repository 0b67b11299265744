"""Corpus-relative source names from paths as a person types them, and "did you mean".

``show``, ``remove`` and ``--source`` name articles by their corpus-relative name
(``batch/sourdough.md``), but a shell completes paths from the current folder:
``corpus/batch/sourdough.md`` from the shelf's root, ``sourdough.md`` from inside
``corpus/batch/``, or an absolute path. :func:`from_user` maps all of these to the
corpus-relative name; it only computes names, and never opens anything (confining a
path to the corpus, and reading it, is done where the file is opened).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

_GLOB_CHARS = frozenset("*?[")


def _inside(path: str, root: str) -> str | None:
    """``path`` relative to ``root`` ("/" separators) when it lies strictly inside it."""
    rel = os.path.relpath(path, root)
    if rel == "." or rel == ".." or rel.startswith(".." + os.sep) or os.path.isabs(rel):
        return None
    return rel.replace(os.sep, "/")


def from_user(pattern: str, corpus: Path, cwd: Path | None = None) -> str:
    """The corpus-relative form of ``pattern`` when it is written as a path from ``cwd``
    (default: the current folder) or as an absolute path inside the corpus; otherwise
    ``pattern`` unchanged (it is then read as corpus-relative, and checked by the caller).

    A name without glob characters is taken from ``cwd`` when that file or folder exists
    inside the corpus (``sourdough.md`` in ``corpus/batch/``). A glob is taken from ``cwd``
    only when it is written through the corpus folder (``corpus/2024/*`` from the shelf's
    root) or is absolute, so ``'2024/*'`` keeps meaning the corpus's 2024 folder.
    """
    p = os.path.expanduser(pattern.strip())
    if not p:
        return pattern
    here = os.path.abspath(cwd or Path.cwd())
    full = os.path.normpath(os.path.join(here, p))
    roots = dict.fromkeys([os.path.abspath(corpus), os.path.realpath(corpus)])
    for root in roots:
        rel = _inside(full, root)
        if rel is None:
            continue
        if os.path.isabs(p):
            return rel
        if _GLOB_CHARS & set(p):
            # Only a glob that walks into the corpus from outside it ("corpus/2024/*").
            if _inside(here, root) is None and here != root:
                return rel
            continue
        if os.path.lexists(full):
            return rel
    return pattern


def suggestion(name: str, sources: Iterable[str]) -> str:
    """A "; did you mean …?" tail naming the closest article(s) to ``name``, or ""."""
    names = list(sources)
    if not names or _GLOB_CHARS & set(name):
        return ""
    close = difflib.get_close_matches(name, names, n=2, cutoff=0.6)
    if not close:  # the file name alone: "sourdough.md" for "batch/sourdough.md"
        base = PurePosixPath(name).name
        by_base: dict[str, list[str]] = {}
        for s in names:
            by_base.setdefault(PurePosixPath(s).name, []).append(s)
        for b in difflib.get_close_matches(base, list(by_base), n=2, cutoff=0.6):
            close.extend(by_base[b])
    if not close:
        return ""
    return "; did you mean " + " or ".join(close[:2]) + "?"
