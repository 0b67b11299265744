"""The FAISS index: exact search for a small shelf, an approximate one for a large one.

Below :func:`threshold` chunks the index is ``flat`` (``IndexIDMap2`` over
``IndexFlatIP``): exact, and a query reads every vector. From there on it is
``ivf-sq8`` (``IndexIVFScalarQuantizer``, 8 bits a dimension, inner product): a
quarter of the memory, and a query scans only ``nprobe`` of ``nlist`` clusters.
``nprobe`` is chosen when the index is built, as the smallest that keeps
recall@10 against exact search at or above :data:`TUNE_TARGET` on sample
queries near the shelf's vectors; the measured recall goes into ``meta.json``.

In an ``ivf-sq8`` index, FAISS rows have no order of their own, so the row
order shared with the lexical index is ascending chunk id.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from bunko.config import DEFAULT_ANN_THRESHOLD, env_int

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

IndexType = Literal["flat", "ivf-sq8"]

DEFAULT_THRESHOLD = DEFAULT_ANN_THRESHOLD
RECALL_TARGET = 0.95
# The sample recall must clear this margin over the target: the sample queries
# are synthetic (see tune), and 256 of them measure recall to about ±0.01.
TUNE_TARGET = 0.97
TUNE_QUERIES = 256
TUNE_NOISE = 0.75  # length of the noise added to a unit vector: cosine about 0.8
NPROBES = (4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
RETRAIN_GROWTH = 4  # retrain the clusters when the shelf grew 4x since training


def threshold() -> int:
    """Chunks from which the index is approximate (``BUNKO_ANN_THRESHOLD``, else the default)."""
    return env_int("BUNKO_ANN_THRESHOLD", DEFAULT_THRESHOLD)


def index_type(index: Any) -> IndexType:
    import faiss

    return "ivf-sq8" if isinstance(index, faiss.IndexIVF) else "flat"


def wanted_type(n: int, current: IndexType | None, limit: int) -> IndexType:
    """The type for ``n`` chunks; an IVF index stays until the shelf halves (no flapping)."""
    if n >= limit or (current == "ivf-sq8" and n >= limit // 2):
        return "ivf-sq8"
    return "flat"


def n_lists(n: int) -> int:
    """IVF clusters for ``n`` vectors: about 2·sqrt(n), 39+ training points each.

    With sqrt(n) clusters a million synthetic chunks needed nprobe 256 of 1,000
    (a quarter of the shelf scanned per query) for recall@10 0.97.
    """
    return int(max(1, min(4096, round(2 * n**0.5), n // 39)))


def row_ids(index: Any) -> npt.NDArray[np.int64]:
    """Chunk ids in row order (see the module docstring)."""
    import faiss
    import numpy as np

    if isinstance(index, faiss.IndexIVF):
        inv: Any = index.invlists
        parts = [np.zeros(0, dtype=np.int64)]
        for lst in range(index.nlist):
            size = inv.list_size(lst)
            if size:
                parts.append(faiss.rev_swig_ptr(inv.get_ids(lst), size).astype(np.int64))
        return np.sort(np.concatenate(parts))
    if hasattr(index, "id_map"):
        return np.asarray(faiss.vector_to_array(index.id_map), dtype=np.int64)
    return np.arange(index.ntotal, dtype=np.int64)


def reconstruct(index: Any, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
    """Stored vectors by chunk id (an IVF index gives back its 8-bit approximation)."""
    import faiss
    import numpy as np

    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if len(ids) == 0:
        return np.zeros((0, index.d), dtype=np.float32)
    if isinstance(index, faiss.IndexIVF) and index.direct_map.type == _direct_map().NoMap:
        index.set_direct_map_type(_direct_map().Hashtable)
    return np.asarray(index.reconstruct_batch(ids), dtype=np.float32)


def for_writing(index: Any) -> Any:
    """Drop the id lookup table that :func:`reconstruct` may have added (not stored)."""
    import faiss

    if isinstance(index, faiss.IndexIVF) and index.direct_map.type != _direct_map().NoMap:
        index.set_direct_map_type(_direct_map().NoMap)
    return index


def build(
    vectors: npt.NDArray[np.float32], ids: npt.NDArray[np.int64], kind: IndexType, seed: int = 0
) -> tuple[Any, dict[str, Any]]:
    """A new index of ``kind`` over ``vectors`` (normalised) with chunk ``ids``.

    Returns:
        The index, and what meta.json records about it.
    """
    import faiss
    import numpy as np

    n, dim = vectors.shape
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if kind == "flat":
        flat = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        if n:
            flat.add_with_ids(vectors, ids)
        return flat, {"index_type": "flat"}
    with _all_cores():
        return _build_ivf(vectors, ids, seed)


def _build_ivf(
    vectors: npt.NDArray[np.float32], ids: npt.NDArray[np.int64], seed: int
) -> tuple[Any, dict[str, Any]]:
    import faiss
    import numpy as np

    n, dim = vectors.shape
    nlist = n_lists(n)
    quantizer = faiss.IndexFlatIP(dim)
    ivf = faiss.IndexIVFScalarQuantizer(
        quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    ivf.cp.seed = seed
    rng = np.random.default_rng(seed)
    # 64 points a cluster is plenty for k-means and keeps training in seconds.
    sample = np.sort(rng.choice(n, size=min(n, 64 * nlist), replace=False))
    ivf.train(vectors[sample])
    ivf.add_with_ids(vectors, ids)
    nprobe, recall = tune(ivf, vectors, ids, seed)
    ivf.nprobe = nprobe
    info = {
        "index_type": "ivf-sq8",
        "nlist": nlist,
        "nprobe": nprobe,
        "recall_at_10": round(recall, 4),
        "trained_on": int(n),
    }
    return ivf, info


def tune(
    ivf: Any, vectors: npt.NDArray[np.float32], ids: npt.NDArray[np.int64], seed: int = 0
) -> tuple[int, float]:
    """The smallest nprobe whose recall@10 on a sample reaches :data:`TUNE_TARGET`.

    There are no real questions at build time, so the sample queries are stored
    vectors moved by random noise to a cosine of about 0.8 from where they were,
    roughly how far a question's vector lies from its passage with e5.
    """
    import faiss
    import numpy as np

    n, dim = vectors.shape
    rng = np.random.default_rng(seed + 1)
    sample = rng.choice(n, size=min(n, TUNE_QUERIES), replace=False)
    noise = rng.normal(size=(len(sample), dim)).astype(np.float32) * (TUNE_NOISE / dim**0.5)
    queries = vectors[sample] + noise
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    k = min(10, n)
    _, exact = faiss.knn(queries, vectors, k, faiss.METRIC_INNER_PRODUCT)
    truth = np.where(exact >= 0, ids[np.maximum(exact, 0)], -1)
    nprobes = [p for p in NPROBES if p < ivf.nlist] + [ivf.nlist]
    for nprobe in nprobes:
        ivf.nprobe = nprobe
        _, found = ivf.search(queries, k)
        recall = recall_at(truth, found)
        if recall >= TUNE_TARGET:
            return nprobe, recall
    return ivf.nlist, recall


def recall_at(exact: Any, found: Any, k: int = 10) -> float:
    """Mean share of each query's exact top ``k`` found in its approximate top ``k``.

    Rows of ``exact`` and ``found`` are chunk ids, best first, -1 for none.
    """
    hits = 0
    total = 0
    for want, got in zip(exact, found, strict=True):
        want_k = {int(w) for w in want[:k] if w >= 0}
        hits += len(want_k & {int(g) for g in got[:k] if g >= 0})
        total += len(want_k)
    return hits / total if total else 1.0


@contextlib.contextmanager
def _all_cores() -> Iterator[None]:
    """Let FAISS use every core for a build (queries set it to one, see snapshot.py)."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(len(os.sched_getaffinity(0)))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _direct_map() -> Any:
    import faiss

    # Present at run time, missing from faiss's type stubs.
    return faiss.DirectMap  # type: ignore[attr-defined]
