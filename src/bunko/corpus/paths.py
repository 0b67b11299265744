"""The one place that confines a path to the corpus folder and opens it, once.

Every reader of corpus files goes through here: indexing (:func:`bunko.ingest.read_document`),
``bunko show``, ``GET /api/read`` and the MCP ``read`` tool. Two rules hold:

* a name from outside (an HTTP or MCP ``source``, a ``show`` target) is checked
  before it touches the disk (:func:`check_name`), and only a file that indexing
  would list as an article is served (:func:`article_path`);
* a file is opened once, and what is read is what was checked. Checking where a
  link points and then opening the path again is a race: a link swapped in
  between leads the second open outside. :func:`open_inside` resolves the path,
  refuses it unless it lies in the corpus, then opens that resolved path one
  component at a time with ``O_NOFOLLOW``, so a link swapped in after the check
  fails the open instead of being followed, and reads from that descriptor.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from bunko.errors import SourceError, SourceNotFoundError

MAX_NAME_CHARS = 1_000
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO swapped in must not block the open
# Walking with dir_fd + O_NOFOLLOW needs POSIX; elsewhere the open descriptor is
# compared with the resolved path instead (see _open_compare).
_WALK = bool(_NOFOLLOW and _DIRECTORY) and os.open in os.supports_dir_fd


class OutsideCorpus(SourceError):
    """A path leads outside the corpus folder, or changed while it was being opened."""


def inside(path: str, root: str) -> bool:
    """Whether the absolute, resolved ``path`` is ``root`` or lies under it."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def check_name(source: str) -> tuple[str, ...]:
    """The parts of a corpus-relative name from outside, refused if it could leave the corpus.

    Refused: empty or over-long names, NUL bytes, absolute paths, ``.``/``..``
    parts, and hidden parts (indexing never lists hidden files).

    Raises:
        SourceError: with a message that says what is allowed.
    """
    if not source or len(source) > MAX_NAME_CHARS or "\x00" in source:
        raise SourceError("source must be a corpus path such as 'notes/article.md'")
    norm = source.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        raise SourceError(
            f"source {source!r} is an absolute path; give the path relative to the corpus, "
            "as in the citation"
        )
    parts = PurePosixPath(norm).parts
    if not parts or any(p in ("..", ".") or p.startswith(".") for p in parts):
        raise SourceError(f"source {source!r} leaves the corpus or names a hidden file; refused")
    return parts


def article_path(corpus: Path, source: str) -> Path:
    """The file of article ``source``: only what indexing would list is served.

    The name must pass :func:`check_name`, end in a suffix bunko reads, and name
    a regular file whose real path is inside the corpus. A ``config.yaml`` or a
    ``credentials`` file in the corpus folder is no article and is refused.
    (The file is opened later, by :func:`read_inside`, which checks again.)

    Raises:
        SourceError: refused (outside, hidden, not an article) or not found.
    """
    from bunko.ingest import SUPPORTED_SUFFIXES

    parts = check_name(source)
    if not parts[-1].lower().endswith(SUPPORTED_SUFFIXES):
        raise SourceNotFoundError(
            f"no source {source!r} in the corpus: only articles "
            f"({', '.join(SUPPORTED_SUFFIXES)}) are served"
        )
    path = corpus.joinpath(*parts)
    try:
        real = os.path.realpath(path, strict=True)
    except (OSError, RuntimeError):
        raise SourceNotFoundError(
            f"no source {source!r} in the corpus: no article has that name; use a `source` "
            "from a search result"
        ) from None
    if not inside(real, os.path.realpath(corpus)):
        raise OutsideCorpus(f"source {source!r} links outside the corpus; refused")
    if not os.path.isfile(real):
        raise SourceError(f"source {source!r} is not a file in the corpus")
    return path


def open_inside(root: Path, path: Path) -> int:
    """Open ``path`` for reading, only if the file opened lies inside ``root``.

    Links inside the corpus are followed (resolved first); the resolved path is
    then opened without following any link, so a swap after the check fails.

    Returns:
        A file descriptor the caller must close.

    Raises:
        OutsideCorpus: the path leads outside ``root``, or changed while opening.
        OSError: the file is missing or unreadable.
    """
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if not inside(real, real_root):
        raise OutsideCorpus(f"{path} links outside the corpus folder {root}; refused")
    rel = os.path.relpath(real, real_root)
    parts = [] if rel == os.curdir else rel.split(os.sep)
    if not parts:
        raise OutsideCorpus(f"{path} is the corpus folder itself, not a file")
    if _WALK:
        return _open_walk(real_root, parts, path)
    return _open_compare(real, path)


def _open_walk(real_root: str, parts: list[str], shown: Path) -> int:
    folder = os.open(real_root, _READ_FLAGS | _DIRECTORY)
    try:
        for part in parts[:-1]:
            try:
                nxt = os.open(part, _READ_FLAGS | _DIRECTORY | _NOFOLLOW, dir_fd=folder)
            except OSError as exc:
                raise _changed(exc, shown) from None
            os.close(folder)
            folder = nxt
        try:
            return os.open(parts[-1], _READ_FLAGS | _NOFOLLOW | _NONBLOCK, dir_fd=folder)
        except OSError as exc:
            raise _changed(exc, shown) from None
    finally:
        os.close(folder)


def _changed(exc: OSError, shown: Path) -> Exception:
    # ELOOP (a link where the resolved path had none) or ENOTDIR: swapped meanwhile.
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        return OutsideCorpus(f"{shown} changed while it was being opened; refused")
    return exc


def _open_compare(real: str, shown: Path) -> int:
    fd = os.open(real, _READ_FLAGS | _NONBLOCK)
    try:
        st, now = os.fstat(fd), os.lstat(real)
    except OSError:
        os.close(fd)
        raise
    if (st.st_dev, st.st_ino) != (now.st_dev, now.st_ino) or stat.S_ISLNK(now.st_mode):
        os.close(fd)
        raise OutsideCorpus(f"{shown} changed while it was being opened; refused")
    return fd


@contextmanager
def opened_inside(root: Path, path: Path) -> Iterator[BinaryIO]:
    """The regular file ``path``, opened once by :func:`open_inside`, for reading.

    Raises:
        OutsideCorpus: the path leads outside ``root``, or changed while opening.
        IsADirectoryError: not a regular file (a folder, FIFO, device).
        OSError: missing or unreadable.
    """
    fd = open_inside(root, path)
    with os.fdopen(fd, "rb", closefd=True) as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise IsADirectoryError(errno.EISDIR, "not a regular file", str(path))
        if _NONBLOCK:
            os.set_blocking(f.fileno(), True)
        yield f


def read_inside(root: Path, path: Path) -> tuple[bytes, os.stat_result]:
    """The bytes of the regular file ``path`` and its stat, read from one descriptor
    opened by :func:`open_inside`.

    The stat is taken before reading: if the file changes meanwhile, the recorded
    mtime is older than the content, so the next update looks again.

    Raises:
        OutsideCorpus: the path leads outside ``root``, or changed while opening.
        IsADirectoryError: not a regular file (a folder, FIFO, device).
        OSError: missing or unreadable.
    """
    with opened_inside(root, path) as f:
        st = os.fstat(f.fileno())
        return f.read(), st
