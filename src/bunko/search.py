"""Dense and lexical retrieval, their fusion, and the highlighted sentence.

Fusion is a convex combination of per-query normalised scores. The lexical
weight is scaled by how much of the question the corpus vocabulary knows
(:meth:`LexicalIndex.coverage`): BM25 over Japanese text is blind to an English
question, and plain RRF would let its noise push good dense hits down.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from bunko.types import Mode

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from bunko.store import LoadedIndex

Fusion = Literal["convex", "rrf"]

LEXICAL_WEIGHT = 0.5  # the lexical share when the whole question is known to the corpus
RRF_K = 60
CANDIDATES = 50  # per retriever, before fusion


@dataclass(frozen=True)
class Hit:
    """A fused result before it is turned into a cited passage."""

    chunk_id: int
    score: float
    dense_rank: int | None
    dense_score: float | None
    lexical_rank: int | None
    lexical_score: float | None
    lexical_weight: float


Ranked = list[tuple[int, float]]  # (chunk id, raw score), best first


def dense_candidates(index: LoadedIndex, qvec: npt.NDArray[np.float32], n: int) -> Ranked:
    """Top ``n`` chunks by inner product (cosine: vectors are normalised)."""
    import numpy as np

    n = min(n, index.n_chunks)
    if n <= 0:
        return []
    scores, ids = index.vectors.search(np.ascontiguousarray(qvec.reshape(1, -1)), n)
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]


def lexical_candidates(index: LoadedIndex, tokens: Sequence[str], n: int) -> Ranked:
    """Top ``n`` chunks by BM25; chunks with score 0 are not candidates."""
    import numpy as np

    scores = index.lexical.scores(tokens)
    n = min(n, int(np.count_nonzero(scores)))
    if n <= 0:
        return []
    top = np.argpartition(-scores, n - 1)[:n]
    top = top[np.argsort(-scores[top], kind="stable")]
    return [(int(index.row_ids[r]), float(scores[r])) for r in top]


def fuse(
    dense: Ranked,
    lexical: Ranked,
    lexical_weight: float,
    k: int,
    method: Fusion = "convex",
) -> list[Hit]:
    """Merge two ranked lists into the top ``k`` hits.

    ``convex``: (1-w)·dense + w·lexical, each min-max normalised over its own
    candidates (a candidate missing from a list gets 0 there).
    ``rrf``: reciprocal rank fusion with the same weights.
    """
    d_rank = {cid: (r, s) for r, (cid, s) in enumerate(dense, 1)}
    l_rank = {cid: (r, s) for r, (cid, s) in enumerate(lexical, 1)}
    w = lexical_weight

    def minmax(items: Ranked) -> dict[int, float]:
        if not items:
            return {}
        hi, lo = items[0][1], items[-1][1]
        span = hi - lo
        return {cid: (s - lo) / span if span > 0 else 1.0 for cid, s in items}

    if method == "rrf":
        fused = {
            cid: ((1 - w) / (RRF_K + d_rank[cid][0]) if cid in d_rank else 0.0)
            + (w / (RRF_K + l_rank[cid][0]) if cid in l_rank else 0.0)
            for cid in d_rank.keys() | l_rank.keys()
        }
    else:
        dn, ln = minmax(dense), minmax(lexical)
        fused = {
            cid: (1 - w) * dn.get(cid, 0.0) + w * ln.get(cid, 0.0)
            for cid in d_rank.keys() | l_rank.keys()
        }
    order = sorted(fused, key=lambda c: (-fused[c], d_rank.get(c, (1 << 30,))[0], c))[:k]
    return [
        Hit(
            chunk_id=cid,
            score=fused[cid],
            dense_rank=d_rank[cid][0] if cid in d_rank else None,
            dense_score=d_rank[cid][1] if cid in d_rank else None,
            lexical_rank=l_rank[cid][0] if cid in l_rank else None,
            lexical_score=l_rank[cid][1] if cid in l_rank else None,
            lexical_weight=w,
        )
        for cid in order
    ]


def single(ranked: Ranked, k: int, mode: Mode) -> list[Hit]:
    """Hits from one retriever alone (``--mode dense`` or ``--mode lexical``)."""
    dense = mode == "dense"
    return [
        Hit(
            chunk_id=cid,
            score=s,
            dense_rank=r if dense else None,
            dense_score=s if dense else None,
            lexical_rank=None if dense else r,
            lexical_score=None if dense else s,
            lexical_weight=0.0 if dense else 1.0,
        )
        for r, (cid, s) in enumerate(ranked[:k], 1)
    ]


def _bigrams(text: str) -> set[str]:
    t = "".join(ch for ch in unicodedata.normalize("NFKC", text).lower() if ch.isalnum())
    return {t[i : i + 2] for i in range(len(t) - 1)}


def best_sentence(
    question_tokens: Sequence[str],
    question: str,
    sentences: Sequence[str],
    sentence_tokens: Sequence[Sequence[str]],
    idf: dict[str, float],
) -> int | None:
    """Index of the sentence that best answers the question by word and character overlap.

    Returns None when no sentence shares anything with the question (for example
    an English question over a Japanese passage); the caller then falls back to
    the embedding model.
    """
    q = set(question_tokens)
    qb = _bigrams(question)
    best, best_score = None, 0.0
    for i, (sent, toks) in enumerate(zip(sentences, sentence_tokens, strict=True)):
        words = sum(idf.get(t, 1.0) for t in q.intersection(toks))
        sb = _bigrams(sent)
        chars = len(qb & sb) / (len(qb) or 1)
        score = words + chars
        if score > best_score:
            best, best_score = i, score
    return best
