"""The index folder: finds the live generation, locks, and commits new ones crash-safely.

A commit (see :mod:`bunko.index.format` for the layout):

1. writes each new segment into a temporary folder, fsyncs it and renames it
   into place (``seg-*``);
2. writes the delete files of segments that lost rows (temp name, fsync, rename);
3. writes the generation: ``docs.sqlite`` and the manifest ``meta.json``, in a
   temporary folder, fsynced and renamed to ``gen-*``;
4. swaps ``CURRENT`` to the new generation and fsyncs the folder.

A crash at any point leaves the previous generation live: nothing it names is
ever modified. Garbage collection then removes only what neither the live nor
the previous manifest names (the previous one stays so that a reader that has
just read CURRENT can still open it).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import shutil
import signal
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bunko import __version__
from bunko.config import fault_point
from bunko.errors import (
    IndexCorruptError,
    IndexLockedError,
    IndexMissingError,
    IndexWriteError,
)
from bunko.index.format import (
    CURRENT,
    DOC_COLUMNS,
    DOCS,
    DOCS_SCHEMA,
    MANIFEST,
    META_SUM,
    REBUILD_HINT,
    ChunkRow,
    DocRow,
    crc32,
    delete_file_name,
    generation_name,
    meta_sum,
    read_manifest,
    segment_name,
)
from bunko.index.segment import segment_files, write_segment
from bunko.index.snapshot import Snapshot

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from bunko.index.ann import IndexType

log = logging.getLogger("bunko")


@dataclass
class NewSegment:
    """Rows (ascending id) and their chunk vectors, to be written as one segment."""

    rows: Sequence[ChunkRow]
    vectors: npt.NDArray[np.float32]
    kind: IndexType


@dataclass
class Commit:
    """Everything one commit changes, relative to the generation it starts from.

    ``segments``: manifest entries of the live segments that stay (their
    ``deletes``/``deleted`` are replaced when ``deletes`` names them);
    ``new``: segments to write; ``deletes``: segment name -> every deleted chunk
    id of that segment as of this commit; ``docs_from``: the docs.sqlite to start
    from (None: an empty table), then ``remove_docs`` and ``upsert_docs``.
    """

    meta: dict[str, Any]
    segments: list[dict[str, Any]]
    new: list[NewSegment]
    deletes: dict[str, npt.NDArray[np.int64]]
    docs_from: Path | None
    upsert_docs: Sequence[DocRow]
    remove_docs: Sequence[str]
    files: dict[str, int]  # sizes of the carried files, by path relative to the index root
    sums: dict[str, int]  # their crc32


class IndexStore:
    """The index folder: finds the live generation, locks, and commits new ones."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def current(self) -> Path | None:
        """The live generation's folder, or None when there is no index yet."""
        try:
            raw = (self.root / CURRENT).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise IndexCorruptError(f"cannot read {self.root / CURRENT}: {exc}") from exc
        try:
            name = raw.decode("ascii").strip()
        except UnicodeDecodeError:  # a stray byte is damage like any other: rebuildable
            raise IndexCorruptError(f"{self.root / CURRENT} is damaged; {REBUILD_HINT}") from None
        if not name.startswith("gen-") or "/" in name:
            raise IndexCorruptError(f"{self.root / CURRENT} is damaged; {REBUILD_HINT}")
        return self.root / name

    def exists(self) -> bool:
        return self.current() is not None

    def load(self, eager: bool = True) -> Snapshot:
        """Open the live generation.

        Raises:
            IndexMissingError: there is no index yet.
            IndexFormatError: the index is of an older format (`bunko index` upgrades it).
            IndexCorruptError: a file is missing, truncated or inconsistent.
        """
        for attempt in range(5):
            folder = self.current()
            if folder is None:
                raise IndexMissingError(
                    f"there is no index in {self.root}; run `bunko index` to build one"
                )
            try:
                return Snapshot(folder, eager=eager)
            except IndexCorruptError:
                # Writers delete old generations, so the one CURRENT named a moment ago
                # may vanish while we open it: that is a newer index, not a damaged one.
                if attempt == 4 or self.current() == folder:
                    raise
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def lock(self, wait: bool = True) -> Iterator[None]:
        """Hold the writer lock; a second writer waits (or fails when ``wait`` is False)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise IndexWriteError(f"cannot write to the index folder {self.root}: {exc}") from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    raise IndexLockedError(
                        f"another bunko process is updating {self.root}; try again when it ends"
                    ) from None
                log.warning("another bunko process is updating %s; waiting for it", self.root)
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def commit(self, change: Commit) -> Path:
        """Write a commit and make it live. Call with the lock held.

        Returns:
            The new generation folder.

        Raises:
            IndexWriteError: the disk is full or the folder is not writable; the
                previous generation is still live.
        """
        try:
            previous = self.current()
        except IndexCorruptError:  # a damaged CURRENT is about to be replaced
            previous = None
        tmp = self.root / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        temps: list[Path] = []
        try:
            _fault_point("commit-begin")
            gen = generation_name(self._next_number("gen-"))
            files = dict(change.files)
            sums = dict(change.sums)
            segments = [dict(s) for s in change.segments]
            # 1. new segments: temp folder, fsync, rename
            number = self._next_number("seg-")
            for new in change.new:
                name = segment_name(number)
                number += 1
                seg_tmp = self.root / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                temps.append(seg_tmp)
                info = write_segment(seg_tmp, new.rows, new.vectors, new.kind, _fault_point)
                info = {"name": name, **info, "deleted": 0, "deletes": None}
                for fname in segment_files(info):
                    _fsync_file(seg_tmp / fname)
                    files[f"{name}/{fname}"] = (seg_tmp / fname).stat().st_size
                    sums[f"{name}/{fname}"] = crc32(seg_tmp / fname)
                _fsync_dir(seg_tmp)
                os.rename(seg_tmp, self.root / name)
                _fault_point("commit-segment")
                segments.append(info)
            # 2. delete files
            import numpy as np

            for seg in segments:
                ids = change.deletes.get(seg["name"])
                if ids is None:
                    continue
                old = seg.get("deletes")
                if old:
                    files.pop(old, None)
                    sums.pop(old, None)
                if len(ids) == 0:
                    seg["deletes"], seg["deleted"] = None, 0
                    continue
                dname = delete_file_name(seg["name"], gen)
                part = self.root / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}.npy"
                temps.append(part)
                with open(part, "wb") as f:
                    np.save(f, np.unique(np.asarray(ids, dtype=np.int64)))
                    f.flush()
                    os.fsync(f.fileno())
                os.rename(part, self.root / dname)
                seg["deletes"], seg["deleted"] = dname, len(np.unique(ids))
                files[dname] = (self.root / dname).stat().st_size
                sums[dname] = crc32(self.root / dname)
            if change.deletes:
                _fsync_dir(self.root)
                _fault_point("commit-deletes")
            # 3. the generation: docs.sqlite and the manifest
            tmp.mkdir(parents=True)
            n_docs = write_docs(tmp / DOCS, change)
            _fault_point("commit-docs")
            live = {s["name"] for s in segments}
            files = {k: v for k, v in files.items() if k.split("/")[0].split(".")[0] in live}
            sums = {k: v for k, v in sums.items() if k in files}
            files[DOCS] = (tmp / DOCS).stat().st_size
            sums[DOCS] = crc32(tmp / DOCS)
            meta = dict(change.meta)
            # What status shows: the ANN settings of the largest segment.
            largest = max(segments, key=lambda s: int(s["n"]), default={})
            for key in ("index_type", "nlist", "nprobe", "recall_at_10"):
                meta.pop(key, None)
                if key in largest:
                    meta[key] = largest[key]
            segments.sort(key=lambda s: (s.get("min_id", 0), s["name"]))
            meta.update(
                generation=gen,
                segments=segments,
                chunks=sum(int(s["n"]) - int(s.get("deleted", 0)) for s in segments),
                documents=n_docs,
                files={k: files[k] for k in sorted(files)},
                crc32={k: sums[k] for k in sorted(sums)},
                bunko_version=__version__,
                updated=_now(),
            )
            meta[META_SUM] = meta_sum(meta)
            (tmp / MANIFEST).write_text(json.dumps(meta, ensure_ascii=False, indent=2), "utf-8")
            _fault_point("commit-meta")
            for name in (DOCS, MANIFEST):
                _fsync_file(tmp / name)
            _fsync_dir(tmp)
            _fault_point("commit-fsync")
            os.rename(tmp, self.root / gen)
            _fault_point("commit-rename")
            # 4. swap CURRENT
            pointer = self.root / f".CURRENT-{uuid.uuid4().hex[:8]}"
            pointer.write_text(gen + "\n", "utf-8")
            _fsync_file(pointer)
            _fault_point("commit-pointer")
            os.replace(pointer, self.root / CURRENT)
            _fault_point("commit-swap")
            _fsync_dir(self.root)
        except (OSError, RuntimeError, sqlite3.Error) as exc:
            for junk in [tmp, *temps]:
                if junk.is_dir():
                    shutil.rmtree(junk, ignore_errors=True)
                else:
                    junk.unlink(missing_ok=True)
            reason = "the disk is full" if getattr(exc, "errno", None) == errno.ENOSPC else exc
            raise IndexWriteError(
                f"could not write the index in {self.root} ({reason}); "
                "the previous index is unchanged"
            ) from exc
        self._collect(keep=[self.root / gen] + ([previous] if previous else []))
        return self.root / gen

    def _next_number(self, prefix: str) -> int:
        nums = [
            int(p.name[4:10])
            for p in self.root.glob(prefix + "*")
            if p.name[4:10].isdigit() and "." not in p.name
        ]
        return max(nums, default=0) + 1

    def _collect(self, keep: Sequence[Path]) -> None:
        """Delete what neither the live nor the previous manifest names (lock held).

        Not simply the newest other generation: a writer killed between renaming
        its generation into place and swapping CURRENT leaves a newer one that
        never went live.
        """
        names = {p.name for p in keep}
        for gen in keep:
            try:
                meta = read_manifest(gen)
            except IndexCorruptError:
                continue  # an older format or a damaged one: its files are not ours to keep
            for seg in meta.get("segments", []):
                names.add(seg["name"])
                if seg.get("deletes"):
                    names.add(seg["deletes"])
        for old in sorted(self.root.glob("gen-*")) + sorted(self.root.glob("seg-*")):
            if old.name in names:
                continue
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    old.unlink()
            _fault_point("commit-collect")
        for junk in self.root.glob(".tmp-*"):
            if junk.is_dir():
                shutil.rmtree(junk, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    junk.unlink()
        for junk in self.root.glob(".CURRENT-*"):
            with contextlib.suppress(OSError):
                junk.unlink()


def write_docs(path: Path, change: Commit) -> int:
    """docs.sqlite for the commit: a copy of the previous table with the changes applied.

    Copying the file costs O(bytes) at disk speed; re-inserting every row would
    cost O(documents) in Python.
    """
    if change.docs_from is not None:
        shutil.copyfile(change.docs_from, path)
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA journal_mode=OFF")  # the whole file is new; atomicity comes from rename
        db.execute("PRAGMA synchronous=OFF")  # we fsync the finished file ourselves
        if change.docs_from is None:
            db.executescript(DOCS_SCHEMA)
        gone = list(change.remove_docs) + [d.source for d in change.upsert_docs]
        for start in range(0, len(gone), 500):
            part = gone[start : start + 500]
            db.execute(f"DELETE FROM documents WHERE source IN ({','.join('?' * len(part))})", part)
        db.executemany(
            f"INSERT INTO documents ({DOC_COLUMNS}) VALUES ({','.join('?' * 8)})",
            [d.to_sql() for d in change.upsert_docs],
        )
        db.commit()
        n = int(db.execute("SELECT count(*) FROM documents").fetchone()[0])
    finally:
        db.close()
    return n


def _fault_point(name: str) -> None:
    """Test hook: the crash tests set BUNKO_FAULT=<point>[:<signal>] to die right here.

    The signal is KILL unless named (e.g. ``commit-rename:INT``). Unset, it costs
    one dictionary lookup.
    """
    spec = fault_point()
    if spec and spec.partition(":")[0] == name:
        os.kill(os.getpid(), getattr(signal, "SIG" + (spec.partition(":")[2] or "KILL")))


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        _fsync_file(path)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
