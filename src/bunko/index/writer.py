"""The index writer: one crash-safe commit from a set of changes.

Adding or changing articles writes one new segment plus delete files for the
chunks they replace; removing articles writes delete files only. After that the
merge policy may fold some segments into one, in the same commit. The cost of
a commit is what changed (and what the policy merges), not the whole shelf.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bunko.index import ann
from bunko.index.format import DOCS, ChunkRow, DocRow
from bunko.index.merge import MergePolicy
from bunko.index.store import Commit, IndexStore, NewSegment

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from bunko.index.snapshot import Snapshot

log = logging.getLogger("bunko")


@dataclass
class Changes:
    """What one update changes.

    ``rows``/``vectors``: new chunks (ids above every existing one, ascending) and
    their vectors. ``replace``: sources whose current chunks are deleted (changed
    and removed articles). ``upsert_docs``/``remove_docs``: the documents table.
    """

    rows: Sequence[ChunkRow] = ()
    vectors: Any = None
    replace: Sequence[str] = ()
    upsert_docs: Sequence[DocRow] = ()
    remove_docs: Sequence[str] = ()


@dataclass
class CommitStats:
    generation: Path
    segments: int
    merged: list[int] = field(default_factory=list)  # rows written by merges


class IndexWriter:
    """Turns :class:`Changes` into a commit on top of ``base`` (None: a fresh index).

    Args:
        store: the index folder (its lock must be held).
        base: the live snapshot to update, or None to start empty (a rebuild).
        meta: what the manifest records about how the index is built.
        threshold: chunks from which a segment gets an approximate FAISS index.
        policy: the merge policy.
    """

    def __init__(
        self,
        store: IndexStore,
        base: Snapshot | None,
        meta: dict[str, Any],
        threshold: int | None = None,
        policy: MergePolicy | None = None,
    ) -> None:
        self.store = store
        self.base = base
        self.meta = meta
        self.threshold = threshold or ann.threshold()
        self.policy = policy or MergePolicy()

    def commit(self, changes: Changes, optimize: bool = False) -> CommitStats:
        import numpy as np

        base = self.base
        dim = int(self.meta["dimension"])
        segments: list[dict[str, Any]] = []
        dead: list[npt.NDArray[np.int64]] = []
        touched: set[int] = set()
        if base is not None:
            segments = [dict(s) for s in base.meta["segments"]]
            for part, mask in zip(base.segments, base.deleted, strict=True):
                dead.append(
                    np.asarray(part.ids[np.flatnonzero(mask)], dtype=np.int64)
                    if mask is not None
                    else np.zeros(0, dtype=np.int64)
                )
            if changes.replace:
                for i, ids in enumerate(base.live_ids_of(list(changes.replace))):
                    if len(ids):
                        dead[i] = np.union1d(dead[i], ids)
                        touched.add(i)
        new_rows = changes.rows  # a sequence that may be generated lazily (benchmarks)
        vectors = (
            np.asarray(changes.vectors, dtype=np.float32)
            if new_rows
            else np.zeros((0, dim), dtype=np.float32)
        )
        # The merge policy sees the segments as they will be, the new one included.
        sizes = [(int(s["n"]) - len(d), len(d)) for s, d in zip(segments, dead, strict=True)]
        if new_rows:
            sizes.append((len(new_rows), 0))
        groups = self.policy.plan(sizes, optimize=optimize)
        merged_away: set[int] = {i for g in groups for i in g}
        out_new: list[NewSegment] = []
        merged_rows: list[int] = []
        for group in groups:
            rows: list[ChunkRow] = []
            vecs: list[Any] = []
            for i in group:
                if i == len(segments):  # the new segment
                    rows += list(new_rows)
                    vecs.append(vectors)
                    continue
                assert base is not None
                r, v = base.live_rows(i)
                if len(dead[i]):
                    keep = ~np.isin(np.asarray([x.id for x in r], dtype=np.int64), dead[i])
                    r = [x for x, k in zip(r, keep, strict=True) if k]
                    v = v[keep]
                rows += r
                vecs.append(v)
            order = np.argsort(np.asarray([r.id for r in rows], dtype=np.int64), kind="stable")
            allv = np.concatenate(vecs) if vecs else np.zeros((0, dim), dtype=np.float32)
            out_new.append(self._segment([rows[j] for j in order], allv[order]))
            merged_rows.append(len(rows))
        if new_rows and len(segments) not in merged_away:
            out_new.insert(0, self._segment(new_rows, vectors))
        keep_segments: list[dict[str, Any]] = []
        deletes: dict[str, npt.NDArray[np.int64]] = {}
        for i, seg in enumerate(segments):
            if i in merged_away or int(seg["n"]) - len(dead[i]) <= 0:
                continue
            keep_segments.append(seg)
            if i in touched:
                deletes[seg["name"]] = dead[i]
        carried = {s["name"] for s in keep_segments}
        files: dict[str, int] = {}
        sums: dict[str, int] = {}
        if base is not None:
            for k, v in base.meta.get("files", {}).items():
                if k.split("/")[0].split(".")[0] in carried:
                    files[k] = v
            sums = {k: v for k, v in base.meta.get("crc32", {}).items() if k in files}
        change = Commit(
            meta=self.meta,
            segments=keep_segments,
            new=out_new,
            deletes=deletes,
            docs_from=(base.folder / DOCS) if base is not None else None,
            upsert_docs=changes.upsert_docs,
            remove_docs=changes.remove_docs,
            files=files,
            sums=sums,
        )
        gen = self.store.commit(change)
        return CommitStats(gen, len(keep_segments) + len(out_new), merged_rows)

    def _segment(self, rows: Sequence[ChunkRow], vectors: npt.NDArray[np.float32]) -> NewSegment:
        return NewSegment(rows, vectors, ann.wanted_type(len(rows), None, self.threshold))
