"""What an interrupted writer leaves behind, cleaned when the next writer starts.

Ctrl-C during ``bunko add``'s copy can leave ``corpus/.NAME.*.bunko-tmp`` (a
partial copy); a killed update leaves ``index/.tmp-*`` and ``index/.CURRENT-*``.
Writers hold the index's writer lock while making these, so whoever holds the
lock now knows no live writer owns them.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger("bunko")

TMP_SUFFIX = ".bunko-tmp"  # bunko add's temporary copies (see bunko.shelfops.copy_into)


def clean_leftovers(corpus: Path, index: Path) -> list[Path]:
    """Delete leftovers of interrupted adds and updates, saying so. Call with the
    writer lock held.

    Returns:
        The paths removed.
    """
    junk: list[Path] = []
    if index.is_dir():
        junk += sorted(index.glob(".tmp-*")) + sorted(index.glob(".CURRENT-*"))
    if corpus.is_dir():
        for folder, dirs, files in os.walk(corpus):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            junk += [Path(folder, f) for f in files if f.startswith(".") and f.endswith(TMP_SUFFIX)]
    removed: list[Path] = []
    for path in junk:
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("could not remove %s, left by an interrupted update: %s", path, exc)
            continue
        removed.append(path)
    if removed:
        shown = ", ".join(p.name for p in removed[:3]) + (", …" if len(removed) > 3 else "")
        log.warning(
            "removed %d leftover file(s) of an interrupted add or update (%s)", len(removed), shown
        )
    return removed
