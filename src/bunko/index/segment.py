"""One immutable segment: chunk rows, their vectors and their BM25 postings.

Rows of a segment are in ascending chunk id; ``ids.npy`` maps a row number to
its chunk id, and the FAISS index and the postings are keyed by row number, so
one row number means one chunk across the three.

A segment is written once (:func:`write_segment`, into a temporary folder the
store renames into place) and then only read (:class:`Segment`).
"""

from __future__ import annotations

import sqlite3
from array import array
from collections.abc import Iterable, Iterator, Sequence
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bunko.errors import IndexCorruptError
from bunko.index import ann
from bunko.index.format import (
    CHUNK_COLUMNS,
    CHUNK_COLUMNS_BEFORE_SENT_TOKENS,
    CHUNKS_SCHEMA,
    LEGACY_VOCAB,
    REBUILD_HINT,
    SEGMENT_FILES,
    ChunkRow,
)
from bunko.index.lexical import Postings

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


def write_segment(
    folder: Path,
    rows: Iterable[ChunkRow],
    vectors: npt.NDArray[np.float32],
    kind: ann.IndexType,
    fault: Any = None,
) -> dict[str, Any]:
    """Write a segment of ``rows`` (ascending id) and their chunk ``vectors`` into ``folder``.

    The rows are read once, in blocks: a million of them never sit in memory together.

    Returns:
        What the manifest records about the segment (without name, files and sums).
    """
    import faiss
    import numpy as np

    fault = fault or (lambda name: None)
    folder.mkdir(parents=True)
    ids = array("q")
    db = sqlite3.connect(folder / "chunks.sqlite")
    try:
        db.execute("PRAGMA journal_mode=OFF")  # the whole file is new; atomicity comes from rename
        db.execute("PRAGMA synchronous=OFF")  # we fsync the finished file ourselves
        db.executescript(CHUNKS_SCHEMA)

        def tokens() -> Iterator[Sequence[str]]:
            for block in _blocks(rows, 5_000):
                if (ids and block[0].id <= ids[-1]) or any(
                    a.id >= b.id for a, b in pairwise(block)
                ):
                    raise ValueError("segment rows must be in ascending id order")
                insert_chunks(db, block)
                ids.extend(r.id for r in block)
                yield from (r.tokens for r in block)

        postings = Postings.build(tokens())
        db.commit()
    finally:
        db.close()
    fault("commit-sqlite")
    postings.save(folder)
    del postings
    fault("commit-lexical")
    id_arr = np.frombuffer(ids, dtype=np.int64) if ids else np.zeros(0, dtype=np.int64)
    np.save(folder / "ids.npy", id_arr)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if len(vectors) != len(id_arr):
        raise ValueError(f"{len(vectors)} vectors for {len(id_arr)} rows")
    index, info = ann.build(vectors, np.arange(len(id_arr), dtype=np.int64), kind)
    index = ann.for_writing(index)
    # Not faiss.write_index(index, path): its C writer reports a failed flush at
    # close (ENOSPC) only on stderr and returns, leaving a truncated file that
    # would then go live. Python's write raises instead.
    with open(folder / "vectors.faiss", "wb") as f:
        f.write(faiss.serialize_index(index).data)
    del index
    if info["index_type"] != "flat":
        with open(folder / "vectors.npy", "wb") as f:
            np.save(f, vectors)
    fault("commit-faiss")
    return {
        "n": len(id_arr),
        "vocab": "npz",  # the terms live in lexical.npz; no lexical_vocab.json
        "sent_tokens": True,  # the chunk table has the sent_tokens column
        "min_id": int(id_arr[0]) if len(id_arr) else 0,
        "max_id": int(id_arr[-1]) if len(id_arr) else 0,
        **info,
    }


def _blocks(rows: Iterable[ChunkRow], size: int) -> Iterator[list[ChunkRow]]:
    block: list[ChunkRow] = []
    for r in rows:
        block.append(r)
        if len(block) == size:
            yield block
            block = []
    if block:
        yield block


def insert_chunks(db: sqlite3.Connection, rows: Iterable[ChunkRow]) -> None:
    db.executemany(
        f"INSERT INTO chunks ({CHUNK_COLUMNS}) VALUES ({','.join('?' * 15)})",
        (r.to_sql() for r in rows),
    )


def segment_files(info: dict[str, Any]) -> tuple[str, ...]:
    """The files of a segment, by its manifest entry."""
    files: tuple[str, ...] = SEGMENT_FILES
    if info.get("vocab") != "npz":  # written before the terms moved into lexical.npz
        files += (LEGACY_VOCAB,)
    extra = ("vectors.npy",) if info.get("index_type", "flat") != "flat" else ()
    return files + extra


class Segment:
    """A committed segment, opened read-only; heavy parts load on first use."""

    def __init__(self, folder: Path, info: dict[str, Any], dim: int) -> None:
        import numpy as np

        self.folder = folder
        self.info = info
        self.dim = dim
        self.n = int(info["n"])
        try:
            self.ids: npt.NDArray[np.int64] = np.load(folder / "ids.npy", mmap_mode="r")
        except (OSError, ValueError, EOFError) as exc:
            raise self._damaged("ids.npy", exc) from exc
        if self.ids.ndim != 1 or len(self.ids) != self.n:
            raise self._damaged("ids.npy", f"{len(self.ids)} ids for {self.n} rows")
        self._db: sqlite3.Connection | None = None
        self._index: Any = None
        self._postings: Postings | None = None
        self._columns = (
            CHUNK_COLUMNS if info.get("sent_tokens") else CHUNK_COLUMNS_BEFORE_SENT_TOKENS
        )

    def _damaged(self, name: str, why: object) -> IndexCorruptError:
        return IndexCorruptError(
            f"the index file {self.folder / name} is damaged ({why}); {REBUILD_HINT}"
        )

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            # Segments are never modified once committed, so SQLite may treat the file
            # as immutable: no locks, no journal, and it works in a read-only folder.
            uri = (self.folder / "chunks.sqlite").resolve().as_uri() + "?mode=ro&immutable=1"
            try:
                db = sqlite3.connect(uri, uri=True, check_same_thread=False)
                n_rows = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
            except sqlite3.DatabaseError as exc:
                raise self._damaged("chunks.sqlite", exc) from exc
            if n_rows != self.n:
                db.close()
                raise self._damaged("chunks.sqlite", f"{n_rows} rows, the manifest says {self.n}")
            self._db = db
        return self._db

    @property
    def index(self) -> Any:
        if self._index is None:
            import faiss

            # An approximate (IVF) segment's lists are memory-mapped, not read: the
            # process holds the pages of the lists its queries probe, as page cache
            # the system can reclaim, and opening a million-chunk segment takes
            # milliseconds, not a 380 MB read (benchmarks/PERF.md). Committed files
            # are never modified, and their size is checked before this.
            flags = faiss.IO_FLAG_MMAP if self.info.get("index_type", "flat") != "flat" else 0
            try:
                index = faiss.read_index(str(self.folder / "vectors.faiss"), flags)
            except RuntimeError as exc:
                raise self._damaged("vectors.faiss", str(exc).splitlines()[0]) from exc
            if int(index.d) != self.dim or int(index.ntotal) != self.n:
                raise self._damaged(
                    "vectors.faiss",
                    f"{index.ntotal} vectors of dimension {index.d}, the manifest says "
                    f"{self.n} of dimension {self.dim}",
                )
            self._index = index
        return self._index

    @property
    def postings(self) -> Postings:
        if self._postings is None:
            post = Postings.load(self.folder)
            # (Not rows.max(): that would read every posting of a large segment at open;
            # the checksum guards the postings of any segment up to CRC_LIMIT.)
            if post.n_rows != self.n:
                raise self._damaged("lexical.npz", f"{post.n_rows} rows for {self.n}")
            self._postings = post
        return self._postings

    def open_all(self) -> None:
        """Load every part now (a reader wants damage found at open, not mid-query)."""
        _ = self.db, self.index, self.postings

    def rows_of(self, ids: Sequence[int] | npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Row numbers of chunk ids (which must be in this segment)."""
        import numpy as np

        want = np.asarray(ids, dtype=np.int64)
        pos = np.searchsorted(self.ids, want)
        pos = np.minimum(pos, max(0, self.n - 1))
        if self.n == 0 or not bool(np.all(self.ids[pos] == want)):
            raise self._damaged("ids.npy", "a chunk id is not in its segment")
        return pos.astype(np.int64)

    def has(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        import numpy as np

        if self.n == 0:
            return np.zeros(len(ids), dtype=bool)
        pos = np.minimum(np.searchsorted(self.ids, ids), self.n - 1)
        return np.asarray(self.ids[pos] == ids)

    def vectors(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """Float chunk vectors by row number (for merges and the embedding cache)."""
        import numpy as np

        if len(rows) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.info.get("index_type", "flat") == "flat":
            return ann.reconstruct(self.index, np.asarray(rows, dtype=np.int64))
        try:
            full = np.load(self.folder / "vectors.npy", mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise self._damaged("vectors.npy", exc) from exc
        return np.asarray(full[np.asarray(rows)], dtype=np.float32)

    def fetch(self, sql_where: str, args: Sequence[Any]) -> list[ChunkRow]:
        try:
            return [
                ChunkRow.from_sql(r)
                for r in self.db.execute(
                    f"SELECT {self._columns} FROM chunks WHERE {sql_where}", list(args)
                )
            ]
        except (sqlite3.DatabaseError, ValueError) as exc:
            raise self._damaged("chunks.sqlite", exc) from exc

    def query(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            return list(self.db.execute(sql, list(args)))
        except sqlite3.DatabaseError as exc:
            raise self._damaged("chunks.sqlite", exc) from exc

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
