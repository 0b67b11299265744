"""The on-disk index: FAISS vectors, a SQLite chunk table, BM25 postings and meta.json.

Layout (all files of one version live in one *generation* folder)::

    index/
      CURRENT          name of the live generation, replaced atomically
      gen-000007/      meta.json, chunks.sqlite, vectors.faiss, lexical.npz, lexical_vocab.json
      .lock            held by the process that is writing

A writer builds a complete new generation in a temporary folder, fsyncs it,
renames it into place and only then swaps CURRENT. A crash at any point leaves
the previous generation live, and a reader that opened a generation keeps a
consistent snapshot because committed generations are never modified.
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
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bunko import __version__
from bunko.errors import (
    IndexCorruptError,
    IndexLockedError,
    IndexMissingError,
    IndexWriteError,
)
from bunko.lexical import LexicalIndex

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

log = logging.getLogger("bunko")

FORMAT_VERSION = 3  # 3: documents.extra
CRC_LIMIT = 256 << 20  # bytes: files up to this size are checksummed on every load
CURRENT = "CURRENT"
FILES = ("meta.json", "chunks.sqlite", "vectors.faiss", "lexical.npz", "lexical_vocab.json")
REBUILD_HINT = "run `bunko index --rebuild` to rebuild it from the corpus"

SCHEMA = """
CREATE TABLE documents (
    source TEXT PRIMARY KEY, title TEXT NOT NULL, sha256 TEXT NOT NULL,
    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, encoding TEXT NOT NULL,
    n_chunks INTEGER NOT NULL, extra TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY, source TEXT NOT NULL, title TEXT NOT NULL, heading TEXT,
    text TEXT NOT NULL, char_start INTEGER NOT NULL, char_end INTEGER NOT NULL,
    line_start INTEGER NOT NULL, line_end INTEGER NOT NULL, sentences TEXT NOT NULL,
    n_tokens INTEGER NOT NULL, hash TEXT NOT NULL, tokens TEXT NOT NULL,
    sentvecs BLOB NOT NULL
);
CREATE INDEX chunks_source ON chunks(source);
CREATE INDEX chunks_hash ON chunks(hash);
"""
CHUNK_COLUMNS = (
    "id, source, title, heading, text, char_start, char_end, line_start, line_end, "
    "sentences, n_tokens, hash, tokens, sentvecs"
)
TOKEN_SEP = "\x1f"


@dataclass(frozen=True)
class ChunkRow:
    """A chunk as stored in the chunk table."""

    id: int
    source: str
    title: str
    heading: str | None
    text: str
    char_start: int
    char_end: int
    line_start: int
    line_end: int
    sentences: tuple[tuple[int, int], ...]
    n_tokens: int
    hash: str
    tokens: tuple[str, ...]
    sentvecs: bytes = b""  # one packed vector per sentence (see pack_vectors)

    @classmethod
    def from_sql(cls, row: Sequence[Any]) -> ChunkRow:
        return cls(
            row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8],
            tuple(tuple(s) for s in json.loads(row[9])), row[10], row[11],
            tuple(row[12].split(TOKEN_SEP)) if row[12] else (), row[13],
        )  # fmt: skip

    def to_sql(self) -> tuple[Any, ...]:
        return (
            self.id, self.source, self.title, self.heading, self.text, self.char_start,
            self.char_end, self.line_start, self.line_end, json.dumps(self.sentences),
            self.n_tokens, self.hash, TOKEN_SEP.join(self.tokens), self.sentvecs,
        )  # fmt: skip


def pack_vectors(vecs: npt.NDArray[np.float32]) -> bytes:
    """Unit vectors as int8 with a float32 scale each: 4 + dim bytes per vector.

    Sentence vectors are only used to re-rank a few candidates and to pick the
    highlight, so 8 bits (cosine error about 0.002) is plenty and keeps the
    chunk table small.
    """
    import numpy as np

    if len(vecs) == 0:
        return b""
    scale = np.abs(vecs).max(axis=1, keepdims=True).astype(np.float32) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(np.rint(vecs / scale), -127, 127).astype(np.int8)
    return b"".join(s.tobytes() + v.tobytes() for s, v in zip(scale, q, strict=True))


def unpack_vectors(blob: bytes, dim: int) -> npt.NDArray[np.float32]:
    """The inverse of :func:`pack_vectors`: an (n, dim) float32 array."""
    import numpy as np

    width = 4 + dim
    n = len(blob) // width
    raw = np.frombuffer(blob, dtype=np.uint8, count=n * width).reshape(n, width)
    scale = raw[:, :4].copy().view(np.float32)
    return raw[:, 4:].copy().view(np.int8).astype(np.float32) * scale


@dataclass(frozen=True)
class DocRow:
    source: str
    title: str
    sha256: str
    size: int
    mtime_ns: int
    encoding: str
    n_chunks: int
    # Free-form per-document metadata, stored as JSON and returned unchanged
    # (a web page's "url", a PDF's page start offsets "pages").
    extra: dict[str, Any] = field(default_factory=dict)


class LoadedIndex:
    """One committed generation, opened read-only."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.meta = _read_meta(folder)
        for name in FILES:
            path = folder / name
            if not path.is_file():
                raise IndexCorruptError(f"index file {path} is missing; {REBUILD_HINT}")
            want = self.meta.get("files", {}).get(name)
            if want is not None and path.stat().st_size != want:
                raise IndexCorruptError(
                    f"index file {path} has the wrong size (truncated or altered); {REBUILD_HINT}"
                )
            # Sizes miss damage in place (a bad disk block, a stray write), and SQLite
            # reads only the pages a query touches, so such damage would surface later
            # as wrong text or a crash. crc32 runs at GB/s, but reading a multi-GB index
            # on every query would undo memory-mapping: large files get the size check.
            crc = self.meta.get("crc32", {}).get(name)
            if crc is not None and (want or 0) <= CRC_LIMIT and _crc32(path) != crc:
                raise IndexCorruptError(
                    f"index file {path} is damaged (checksum mismatch); {REBUILD_HINT}"
                )
        import faiss
        import numpy as np

        # A query searches one vector: one thread. FAISS's OpenMP team spins at
        # its barriers, and on a busy 2-core machine a second thread turned a
        # 1 ms search into 36 ms (benchmarks/PERF.md). Index builds use all cores.
        faiss.omp_set_num_threads(1)
        try:
            self.vectors: Any = faiss.read_index(str(folder / "vectors.faiss"))
        except RuntimeError as exc:
            raise IndexCorruptError(
                f"cannot read {folder / 'vectors.faiss'} ({str(exc).splitlines()[0]}); "
                f"{REBUILD_HINT}"
            ) from exc
        self.lexical = LexicalIndex.load(folder)
        # Generations are never modified once committed, so SQLite may treat the
        # file as immutable: no locks, no journal, and it works in a read-only folder.
        uri = (folder / "chunks.sqlite").resolve().as_uri() + "?mode=ro&immutable=1"
        try:
            self.db = sqlite3.connect(uri, uri=True, check_same_thread=False)
            n_rows = self.db.execute("SELECT count(*) FROM chunks").fetchone()[0]
            self.n_documents = self.db.execute("SELECT count(*) FROM documents").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise IndexCorruptError(
                f"the chunk table {folder / 'chunks.sqlite'} is damaged ({exc}); {REBUILD_HINT}"
            ) from exc
        self.row_ids: npt.NDArray[np.int64] = _id_map(self.vectors)
        if int(self.vectors.d) != self.meta["dimension"]:
            raise IndexCorruptError(
                f"{folder / 'vectors.faiss'} has dimension {self.vectors.d}, but meta.json "
                f"says {self.meta['dimension']}; {REBUILD_HINT}"
            )
        counts = {
            "vectors": int(self.vectors.ntotal),
            "chunk rows": int(n_rows),
            "lexical rows": self.lexical.n_rows,
            "meta.json": int(self.meta.get("chunks", -1)),
        }
        if len(set(counts.values())) != 1 or len(np.unique(self.row_ids)) != len(self.row_ids):
            raise IndexCorruptError(
                f"the index in {folder} is inconsistent ({counts}); {REBUILD_HINT}"
            )

    @property
    def n_chunks(self) -> int:
        return int(self.vectors.ntotal)

    @property
    def model(self) -> str:
        return str(self.meta["model"])

    def chunks(self, ids: Sequence[int]) -> dict[int, ChunkRow]:
        """Chunk rows by id."""
        if not ids:
            return {}
        want = list(map(int, ids))
        marks = ",".join("?" * len(want))
        sql = f"SELECT {CHUNK_COLUMNS} FROM chunks WHERE id IN ({marks})"
        try:
            out = {r[0]: ChunkRow.from_sql(r) for r in self.db.execute(sql, want)}
        except (sqlite3.DatabaseError, ValueError) as exc:
            raise self._damaged(exc) from exc
        if missing := set(want) - set(out):
            raise self._damaged(f"no chunk rows for vectors {sorted(missing)[:5]}")
        return out

    def documents(self) -> dict[str, DocRow]:
        try:
            rows = self.db.execute(
                "SELECT source, title, sha256, size, mtime_ns, encoding, n_chunks, extra "
                "FROM documents"
            ).fetchall()
            return {
                r[0]: DocRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]))
                for r in rows
            }
        except (sqlite3.DatabaseError, ValueError) as exc:
            raise self._damaged(exc) from exc

    def _damaged(self, why: object) -> IndexCorruptError:
        return IndexCorruptError(
            f"the chunk table {self.folder / 'chunks.sqlite'} is damaged ({why}); {REBUILD_HINT}"
        )

    def close(self) -> None:
        self.db.close()


def _id_map(index: Any) -> npt.NDArray[np.int64]:
    from bunko.ann import row_ids

    return row_ids(index)


def _read_meta(folder: Path) -> dict[str, Any]:
    path = folder / "meta.json"
    try:
        meta = json.loads(path.read_text("utf-8"))
    except FileNotFoundError as exc:
        raise IndexCorruptError(f"index file {path} is missing; {REBUILD_HINT}") from exc
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"{path} is not valid JSON ({exc}); {REBUILD_HINT}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
        raise IndexCorruptError(
            f"{path} is not a bunko index of format {FORMAT_VERSION}; {REBUILD_HINT}"
        )
    for key in ("model", "fingerprint", "dimension", "chunker", "chunks"):
        if key not in meta:
            raise IndexCorruptError(f"{path} lacks {key!r}; {REBUILD_HINT}")
    return meta


class IndexStore:
    """The index folder: finds the live generation, locks, and commits new ones."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def current(self) -> Path | None:
        """The live generation's folder, or None when there is no index yet."""
        try:
            name = (self.root / CURRENT).read_text("utf-8").strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise IndexCorruptError(f"cannot read {self.root / CURRENT}: {exc}") from exc
        if not name.startswith("gen-") or "/" in name:
            raise IndexCorruptError(f"{self.root / CURRENT} is damaged; {REBUILD_HINT}")
        return self.root / name

    def exists(self) -> bool:
        return self.current() is not None

    def load(self) -> LoadedIndex:
        """Open the live generation.

        Raises:
            IndexMissingError: there is no index yet.
            IndexCorruptError: a file is missing, truncated or inconsistent.
        """
        for attempt in range(5):
            folder = self.current()
            if folder is None:
                raise IndexMissingError(
                    f"there is no index in {self.root}; run `bunko index` to build one"
                )
            try:
                return LoadedIndex(folder)
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

    def commit(
        self,
        meta: dict[str, Any],
        documents: Sequence[DocRow],
        rows: Iterable[ChunkRow],
        vectors: Any,
        lexical: LexicalIndex,
        copy_from: tuple[Path, Sequence[str]] | None = None,
    ) -> Path:
        """Write a complete generation and make it live. Call with the lock held.

        ``copy_from`` = (old generation, sources) copies those documents' chunk rows
        from the old table without decoding them in Python.

        Raises:
            IndexWriteError: the disk is full or the folder is not writable; the
                previous generation is still live.
        """
        import faiss

        try:
            previous = self.current()
        except IndexCorruptError:  # a damaged CURRENT is about to be replaced
            previous = None
        tmp = self.root / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            _fault_point("commit-begin")
            tmp.mkdir(parents=True)
            _write_sqlite(tmp / "chunks.sqlite", documents, rows, copy_from)
            _fault_point("commit-sqlite")
            # Not faiss.write_index(index, path): its C writer reports a failed
            # flush at close (ENOSPC) only on stderr and returns, leaving a truncated
            # file that would then go live. Python's write raises instead.
            with open(tmp / "vectors.faiss", "wb") as f:
                f.write(faiss.serialize_index(vectors).data)
            _fault_point("commit-faiss")
            lexical.save(tmp)
            _fault_point("commit-lexical")
            meta = dict(meta)
            data = [n for n in FILES if n != "meta.json"]
            meta["files"] = {n: (tmp / n).stat().st_size for n in data}
            meta["crc32"] = {n: _crc32(tmp / n) for n in data}
            meta["bunko_version"] = __version__
            meta["updated"] = _now()
            (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2), "utf-8")
            _fault_point("commit-meta")
            for name in FILES:
                _fsync_file(tmp / name)
            _fsync_dir(tmp)
            _fault_point("commit-fsync")
            gen = self.root / f"gen-{self._next_generation():06d}"
            os.rename(tmp, gen)
            _fault_point("commit-rename")
            pointer = self.root / f".CURRENT-{uuid.uuid4().hex[:8]}"
            pointer.write_text(gen.name + "\n", "utf-8")
            _fsync_file(pointer)
            _fault_point("commit-pointer")
            os.replace(pointer, self.root / CURRENT)
            _fault_point("commit-swap")
            _fsync_dir(self.root)
        except (OSError, RuntimeError, sqlite3.Error) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            reason = "the disk is full" if getattr(exc, "errno", None) == errno.ENOSPC else exc
            raise IndexWriteError(
                f"could not write the index in {self.root} ({reason}); "
                "the previous index is unchanged"
            ) from exc
        self._collect(keep={gen.name} | ({previous.name} if previous else set()))
        return gen

    def _next_generation(self) -> int:
        nums = [int(p.name[4:]) for p in self.root.glob("gen-*") if p.name[4:].isdigit()]
        return max(nums, default=0) + 1

    def _collect(self, keep: set[str]) -> None:
        """Delete old generations and leftovers of crashed writers (lock held).

        ``keep`` holds the live generation and the one live just before it, kept a
        little longer so that a reader that has just read CURRENT can still open it.
        (Not simply the newest other one: a writer killed between renaming its
        generation into place and swapping CURRENT leaves a newer one that never
        went live.)
        """
        for old in sorted(p for p in self.root.glob("gen-*") if p.name not in keep):
            shutil.rmtree(old, ignore_errors=True)
            _fault_point("commit-collect")
        for junk in self.root.glob(".tmp-*"):
            shutil.rmtree(junk, ignore_errors=True)
        for junk in self.root.glob(".CURRENT-*"):
            with contextlib.suppress(OSError):
                junk.unlink()


def _write_sqlite(
    path: Path,
    documents: Sequence[DocRow],
    rows: Iterable[ChunkRow],
    copy_from: tuple[Path, Sequence[str]] | None,
) -> None:
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA journal_mode=OFF")  # the whole file is new; atomicity comes from rename
        db.execute("PRAGMA synchronous=OFF")  # we fsync the finished file ourselves
        db.executescript(SCHEMA)
        db.executemany(
            "INSERT INTO documents VALUES (?,?,?,?,?,?,?,?)",
            [
                (
                    d.source,
                    d.title,
                    d.sha256,
                    d.size,
                    d.mtime_ns,
                    d.encoding,
                    d.n_chunks,
                    json.dumps(d.extra, ensure_ascii=False),
                )
                for d in documents
            ],
        )
        if copy_from is not None and copy_from[1]:
            old_db, sources = copy_from
            db.execute("ATTACH DATABASE ? AS old", (str(old_db / "chunks.sqlite"),))
            db.execute("CREATE TEMP TABLE keep (source TEXT PRIMARY KEY)")
            db.executemany("INSERT INTO keep VALUES (?)", [(s,) for s in sources])
            db.execute(
                f"INSERT INTO chunks SELECT {CHUNK_COLUMNS} FROM old.chunks "
                "WHERE source IN (SELECT source FROM keep)"
            )
        db.executemany(
            f"INSERT INTO chunks ({CHUNK_COLUMNS}) VALUES ({','.join('?' * 14)})",
            (r.to_sql() for r in rows),
        )
        db.commit()
        if copy_from is not None and copy_from[1]:
            db.execute("DETACH DATABASE old")
    finally:
        db.close()


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            crc = zlib.crc32(block, crc)
    return crc


def _fault_point(name: str) -> None:
    """Test hook: the crash tests set BUNKO_FAULT=<point>[:<signal>] to die right here.

    The signal is KILL unless named (e.g. ``commit-rename:INT``). Unset, it costs
    one dictionary lookup.
    """
    spec = os.environ.get("BUNKO_FAULT")
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
