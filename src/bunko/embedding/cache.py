"""Chunk and sentence vectors for new chunk rows: reused when cached, else embedded.

A chunk's own vector is, by default (``chunk_vectors="mean"``), the
token-weighted mean of its sentence vectors (half the embedding work);
``"embed"`` embeds the chunk text as well. The cache is the previous index:
a chunk whose text hash (which includes the mode) is stored there with the same
model takes its vectors from it.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

from bunko.index.format import ChunkRow, pack_vectors

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from bunko.embedding import Embedder
    from bunko.embedding.executor import Executor
    from bunko.index.snapshot import Snapshot

ChunkVectors = Literal["mean", "embed"]
ProgressFn = Callable[[str, int, int], None]


def embed_text(chunk_text: str) -> str:
    """The text given to the embedding model for a chunk."""
    return chunk_text


def text_hash(chunk_text: str, mode: str) -> str:
    """The cache key of a chunk's vectors: its text and how its vector is made."""
    return hashlib.sha256((mode + "\n" + embed_text(chunk_text)).encode("utf-8")).hexdigest()[:32]


def vectors_for(
    rows: Sequence[ChunkRow],
    embedder: Embedder,
    cache: Snapshot | None,
    mode: str = "mean",
    progress: ProgressFn | None = None,
    executor: Executor | None = None,
) -> tuple[list[ChunkRow], npt.NDArray[np.float32], int]:
    """Chunk vectors and packed sentence vectors for new rows.

    Only the texts no cached vector covers go to ``executor`` (default: ``embedder``
    in this process; see :mod:`bunko.embedding.executor` for Ray).

    Returns:
        The rows with their sentence vectors filled in, the chunk vectors, and
        how many chunks had to be embedded.
    """
    import numpy as np

    report = progress or (lambda stage, done, total: None)
    out = np.zeros((len(rows), embedder.dim), dtype=np.float32)
    blobs = [b""] * len(rows)
    todo = list(range(len(rows)))
    if cache is not None and rows:
        found = cache.cached_vectors(sorted({r.hash for r in rows}))
        todo = [i for i, r in enumerate(rows) if r.hash not in found]
        for i, r in enumerate(rows):
            if r.hash in found:
                out[i], blobs[i] = found[r.hash]
    if todo:
        # Each distinct sentence is embedded once (overlapping chunks share one).
        texts: list[str] = []
        slot: dict[str, int] = {}
        members: list[list[int]] = []
        for i in todo:
            r = rows[i]
            idx = []
            for a, z in r.sentences:
                t = r.text[a - r.char_start : z - r.char_start]
                idx.append(slot.setdefault(t, len(slot)))
                if idx[-1] == len(texts):
                    texts.append(t)
            members.append(idx)
        chunk_texts = [] if mode == "mean" else [embed_text(rows[i].text) for i in todo]
        total = len(texts) + len(chunk_texts)
        report("embedding", 0, total)
        counts = [embedder.count_tokens(t) for t in texts]
        tokens = sum(counts) + sum(rows[i].n_tokens for i in todo if chunk_texts)
        if executor is None:
            from bunko.embedding.executor import LocalExecutor

            executor = LocalExecutor(embedder)
        # The one place where passages are embedded.
        vecs = executor.embed_passages(
            texts + chunk_texts, progress=lambda n: report("embedding", n, total), tokens=tokens
        )
        sent = vecs[: len(texts)]
        if mode == "mean":
            base = embedder.count_tokens("")
            weight = np.array([max(1, c - base) for c in counts], dtype=np.float32)
        for j, (i, idx) in enumerate(zip(todo, members, strict=True)):
            blobs[i] = pack_vectors(sent[idx])
            if mode == "mean":
                v = (sent[idx] * weight[idx, None]).sum(axis=0)
                out[i] = v / (np.linalg.norm(v) or 1.0)
            else:
                out[i] = vecs[len(texts) + j]
    done = [dataclasses.replace(r, sentvecs=blob) for r, blob in zip(rows, blobs, strict=True)]
    return done, out, len(todo)
