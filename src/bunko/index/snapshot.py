"""The read view of one committed generation: every question asked of the index goes here.

Nothing outside :mod:`bunko.index` reads segments, FAISS indexes, postings or
SQLite tables directly; retrieval, the update pipeline, benchmarks and tests ask
a :class:`Snapshot` instead.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bunko.errors import IndexCorruptError
from bunko.index.format import (
    DOC_COLUMNS,
    DOCS,
    REBUILD_HINT,
    ChunkRow,
    DocRow,
    read_manifest,
    unpack_vectors,
    verify_files,
)
from bunko.index.lexical import BM25
from bunko.index.segment import Segment

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

Ranked = list[tuple[int, float]]  # (chunk id, score), best first


class Snapshot:
    """One generation opened read-only: a consistent view that later commits never change.

    Args:
        folder: the generation folder (``index/gen-*``).
        eager: open every segment's parts now, so damage is found at open (a
            reader); a writer passes False and touches only what it needs.
    """

    def __init__(self, folder: Path, eager: bool = True) -> None:
        import numpy as np

        self.folder = folder
        self.root = folder.parent
        self.meta = read_manifest(folder)
        verify_files(folder, self.meta, segments=eager)
        dim = int(self.meta["dimension"])
        self.segments: list[Segment] = []
        self.deleted: list[npt.NDArray[np.bool_] | None] = []
        live = 0
        for info in self.meta["segments"]:
            seg = Segment(self.root / info["name"], info, dim)
            dead = None
            if info.get("deletes"):
                try:
                    ids = np.load(self.root / info["deletes"])
                except (OSError, ValueError, EOFError) as exc:
                    raise IndexCorruptError(
                        f"the delete file {self.root / info['deletes']} is damaged ({exc}); "
                        f"{REBUILD_HINT}"
                    ) from exc
                dead = np.zeros(seg.n, dtype=bool)
                dead[seg.rows_of(ids)] = True
            n_dead = int(dead.sum()) if dead is not None else 0
            if n_dead != int(info.get("deleted", 0)):
                raise IndexCorruptError(
                    f"the manifest in {folder} does not match its delete files; {REBUILD_HINT}"
                )
            live += seg.n - n_dead
            self.segments.append(seg)
            self.deleted.append(dead)
        if live != int(self.meta["chunks"]):
            raise IndexCorruptError(
                f"the index in {folder} is inconsistent ({live} live chunks, the manifest "
                f"says {self.meta['chunks']}); {REBUILD_HINT}"
            )
        uri = (folder / DOCS).resolve().as_uri() + "?mode=ro&immutable=1"
        try:
            self.db = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self.n_documents = self.db.execute("SELECT count(*) FROM documents").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise self._damaged(exc) from exc
        self._bm25: BM25 | None = None
        self._selectors: dict[int, Any] = {}
        if eager:
            import faiss

            # A query searches one vector: one thread. FAISS's OpenMP team spins at
            # its barriers, and on a busy 2-core machine a second thread turned a
            # 1 ms search into 36 ms (benchmarks/PERF.md). Index builds use all cores.
            faiss.omp_set_num_threads(1)
            for seg in self.segments:
                seg.open_all()
            _ = self.bm25

    # -- what it is ----------------------------------------------------------

    @property
    def n_chunks(self) -> int:
        return int(self.meta["chunks"])

    @property
    def model(self) -> str:
        return str(self.meta["model"])

    @property
    def dimension(self) -> int:
        return int(self.meta["dimension"])

    @property
    def segment_count(self) -> int:
        return len(self.segments)

    # -- retrieval -----------------------------------------------------------

    @property
    def bm25(self) -> BM25:
        if self._bm25 is None:
            self._bm25 = BM25(
                [(s.postings, d) for s, d in zip(self.segments, self.deleted, strict=True)]
            )
        return self._bm25

    def dense_search(self, qvec: npt.NDArray[np.float32], n: int) -> Ranked:
        """Top ``n`` live chunks by inner product (cosine: vectors are normalised)."""
        import numpy as np

        q = np.ascontiguousarray(np.asarray(qvec, dtype=np.float32).reshape(1, -1))
        found: Ranked = []
        for i, (seg, dead) in enumerate(zip(self.segments, self.deleted, strict=True)):
            live = seg.n - (int(dead.sum()) if dead is not None else 0)
            k = min(n, live)
            if k <= 0:
                continue
            if dead is None:
                scores, rows = seg.index.search(q, k)
            else:
                scores, rows = seg.index.search(q, k, params=self._params(i))
            found.extend(
                (int(seg.ids[r]), float(s))
                for r, s in zip(rows[0], scores[0], strict=True)
                if r >= 0
            )
        found.sort(key=lambda x: (-x[1], x[0]))
        return found[:n]

    def _params(self, i: int) -> Any:
        """FAISS search parameters that skip segment ``i``'s deleted rows."""
        if i not in self._selectors:
            import faiss
            import numpy as np

            dead = self.deleted[i]
            assert dead is not None
            batch = faiss.IDSelectorBatch(np.flatnonzero(dead).astype(np.int64))
            sel = faiss.IDSelectorNot(batch)
            index = self.segments[i].index
            # (The keyword arguments exist at run time, not in faiss's type stubs.)
            ivf = isinstance(index, faiss.IndexIVF)
            kind: Any = faiss.SearchParametersIVF if ivf else faiss.SearchParameters
            params = kind(sel=sel, nprobe=index.nprobe) if ivf else kind(sel=sel)
            # The selectors must outlive the parameters that point at them.
            self._selectors[i] = (params, sel, batch)
        return self._selectors[i][0]

    def lexical_search(
        self, tokens: Sequence[str], n: int, weights: Mapping[str, float] | None = None
    ) -> Ranked:
        """Top ``n`` live chunks by BM25 (terms scaled by ``weights``, default 1);
        chunks with score 0 are not candidates."""
        import numpy as np

        found: Ranked = []
        pruned = self.bm25.top(tokens, n, weights)  # issue 24: exact, without common terms' rows
        if pruned is not None:
            found = [(int(self.segments[i].ids[r]), s) for i, r, s in pruned]
            found.sort(key=lambda x: (-x[1], x[0]))
            return found[:n]
        for seg, scores in zip(self.segments, self.bm25.scores(tokens, weights), strict=True):
            k = min(n, int(np.count_nonzero(scores)))
            if k <= 0:
                continue
            top = np.argpartition(-scores, k - 1)[:k]
            found.extend((int(seg.ids[r]), float(scores[r])) for r in top)
        found.sort(key=lambda x: (-x[1], x[0]))
        return found[:n]

    def idf(self, tokens: Sequence[str]) -> dict[str, float]:
        """idf of each query term the live shelf contains."""
        return self.bm25.idf(tokens)

    def coverage(self, tokens: Sequence[str]) -> float:
        """Share of the question's idf mass the shelf's vocabulary knows (see BM25)."""
        return self.bm25.coverage(tokens)

    def chunks(self, ids: Sequence[int]) -> dict[int, ChunkRow]:
        """Chunk rows by id.

        Raises:
            IndexCorruptError: an id has no row (the index is damaged).
        """
        import numpy as np

        if not ids:
            return {}
        # sorted(set()), not np.unique: np.unique imports numpy.ma (20-30 ms of a cold query).
        want = np.asarray(sorted(set(map(int, ids))), dtype=np.int64)
        out: dict[int, ChunkRow] = {}
        for seg in self.segments:
            mine = want[seg.has(want)]
            for start in range(0, len(mine), 500):
                part = mine[start : start + 500].tolist()
                for row in seg.fetch(f"id IN ({','.join('?' * len(part))})", part):
                    out[row.id] = row
        if missing := set(want.tolist()) - set(out):
            raise self._damaged(f"no chunk rows for vectors {sorted(missing)[:5]}")
        return out

    def sentence_vectors(self, rows: Iterable[ChunkRow]) -> dict[int, npt.NDArray[np.float32]]:
        """Each row's sentence vectors, by chunk id."""
        return {r.id: unpack_vectors(r.sentvecs, self.dimension) for r in rows}

    # -- what the writer asks --------------------------------------------------

    def documents(self) -> dict[str, DocRow]:
        try:
            rows = self.db.execute(f"SELECT {DOC_COLUMNS} FROM documents").fetchall()
            return {r[0]: DocRow.from_sql(r) for r in rows}
        except (sqlite3.DatabaseError, ValueError) as exc:
            raise self._damaged(exc) from exc

    def live_ids_of(self, sources: Sequence[str]) -> list[npt.NDArray[np.int64]]:
        """Per segment, the live chunk ids of ``sources``."""
        import numpy as np

        out = []
        for seg, dead in zip(self.segments, self.deleted, strict=True):
            ids: list[int] = []
            for start in range(0, len(sources), 500):
                part = list(sources[start : start + 500])
                marks = ",".join("?" * len(part))
                ids += [
                    r[0]
                    for r in seg.query(f"SELECT id FROM chunks WHERE source IN ({marks})", part)
                ]
            arr = np.asarray(sorted(ids), dtype=np.int64)
            if dead is not None and len(arr):
                arr = arr[~dead[seg.rows_of(arr)]]
            out.append(arr)
        return out

    def live_rows(
        self, i: int, sources: Sequence[str] | None = None
    ) -> tuple[list[ChunkRow], npt.NDArray[np.float32]]:
        """Segment ``i``'s live rows (of ``sources`` only, if given) with their vectors.

        Reading a whole segment (a merge) first checks its files' checksums, so that
        damage is never copied into a new segment.
        """
        import numpy as np

        seg, dead = self.segments[i], self.deleted[i]
        if sources is None:
            verify_files(self.folder, self.meta, segments={seg.folder.name})
        if sources is None:
            rows = seg.fetch("1 ORDER BY id", [])
        else:
            rows = []
            for start in range(0, len(sources), 500):
                part = list(sources[start : start + 500])
                rows += seg.fetch(f"source IN ({','.join('?' * len(part))})", part)
            rows.sort(key=lambda r: r.id)
        if not rows:
            return [], np.zeros((0, self.dimension), dtype=np.float32)
        pos = seg.rows_of([r.id for r in rows])
        if dead is not None:
            keep = ~dead[pos]
            rows = [r for r, k in zip(rows, keep, strict=True) if k]
            pos = pos[keep]
        return rows, seg.vectors(pos)

    def cached_vectors(
        self, hashes: Sequence[str]
    ) -> dict[str, tuple[npt.NDArray[np.float32], bytes]]:
        """Vectors (chunk vector, packed sentence vectors) stored for chunk text hashes."""
        import numpy as np

        found: dict[str, tuple[Any, bytes]] = {}
        for seg in self.segments:
            todo = [h for h in hashes if h not in found]
            hits: dict[str, tuple[int, bytes]] = {}
            for start in range(0, len(todo), 500):
                part = todo[start : start + 500]
                marks = ",".join("?" * len(part))
                for h, cid, blob in seg.query(
                    f"SELECT hash, id, sentvecs FROM chunks WHERE hash IN ({marks})", part
                ):
                    hits.setdefault(h, (cid, blob))
            if hits:
                keys = list(hits)
                vecs = seg.vectors(seg.rows_of([hits[h][0] for h in keys]))
                for h, v in zip(keys, vecs, strict=True):
                    found[h] = (np.asarray(v, dtype=np.float32), hits[h][1])
        return found

    def live_ids(self) -> npt.NDArray[np.int64]:
        """Every live chunk id, ascending."""
        import numpy as np

        parts = [np.zeros(0, dtype=np.int64)]
        for seg, dead in zip(self.segments, self.deleted, strict=True):
            ids = np.asarray(seg.ids, dtype=np.int64)
            parts.append(ids[~dead] if dead is not None else ids)
        return np.sort(np.concatenate(parts))

    def chunk_vectors(self, ids: Sequence[int]) -> dict[int, npt.NDArray[np.float32]]:
        """The stored (float) chunk vector of each id."""
        import numpy as np

        want = np.asarray(sorted(set(map(int, ids))), dtype=np.int64)
        out: dict[int, Any] = {}
        for seg in self.segments:
            mine = want[seg.has(want)]
            if len(mine):
                for cid, v in zip(mine.tolist(), seg.vectors(seg.rows_of(mine)), strict=True):
                    out[cid] = v
        return out

    def check(self) -> None:
        """Check every invariant a crash or a race could break (slow: reads everything).

        Each segment's chunk table, ids, vectors and postings agree row for row;
        no chunk id is live twice; every live chunk belongs to a document row,
        and each document's chunk count matches its live chunks.

        Raises:
            IndexCorruptError: naming the first broken invariant.
        """
        import numpy as np

        per_source: dict[str, int] = {}
        seen: list[Any] = []
        for seg, dead in zip(self.segments, self.deleted, strict=True):
            rows = seg.query("SELECT id, source FROM chunks ORDER BY id", [])
            if [r[0] for r in rows] != np.asarray(seg.ids).tolist():
                raise self._damaged(f"{seg.folder.name}: chunk table and ids.npy differ")
            if int(seg.index.ntotal) != seg.n or seg.postings.n_rows != seg.n:
                raise self._damaged(f"{seg.folder.name}: vectors, postings and rows differ")
            for r, (_, source) in enumerate(rows):
                if dead is None or not dead[r]:
                    per_source[source] = per_source.get(source, 0) + 1
            seen.append(np.asarray(seg.ids)[~dead] if dead is not None else np.asarray(seg.ids))
        live = np.concatenate(seen) if seen else np.zeros(0, dtype=np.int64)
        if len(np.unique(live)) != len(live) or len(live) != self.n_chunks:
            raise self._damaged("duplicate or missing live chunk ids")
        docs = self.documents()
        if int(self.meta.get("documents", len(docs))) != len(docs):
            raise self._damaged("the manifest's document count is wrong")
        want = {s: d.n_chunks for s, d in docs.items() if d.n_chunks}
        if per_source != want:
            raise self._damaged("chunks without a document, or wrong chunk counts")

    def _damaged(self, why: object) -> IndexCorruptError:
        return IndexCorruptError(f"the index in {self.folder} is damaged ({why}); {REBUILD_HINT}")

    def close(self) -> None:
        self.db.close()
        for seg in self.segments:
            seg.close()
