"""Dense and lexical retrieval, their fusion, and the highlighted sentence.

Fusion is a convex combination of per-query normalised scores. The lexical
weight is scaled by how much of the question the corpus vocabulary knows
(:meth:`Snapshot.coverage`): BM25 over Japanese text is blind to an English
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

    from bunko.index.snapshot import Snapshot

Fusion = Literal["convex", "rrf"]

LEXICAL_WEIGHT = 0.5  # the lexical share when the whole question is known to the corpus
COVERAGE_POWER = 3.0  # a question the corpus half knows (English over Japanese) gets 1/8 of it


def lexical_weight(coverage: float) -> float:
    """The lexical share of the fusion for a question, from its vocabulary coverage."""
    return float(LEXICAL_WEIGHT * coverage**COVERAGE_POWER)


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


def dense_candidates(index: Snapshot, qvec: npt.NDArray[np.float32], n: int) -> Ranked:
    """Top ``n`` chunks by inner product (cosine: vectors are normalised)."""
    return index.dense_search(qvec, n)


def lexical_candidates(index: Snapshot, tokens: Sequence[str], n: int) -> Ranked:
    """Top ``n`` chunks by BM25; chunks with score 0 are not candidates."""
    return index.lexical_search(tokens, n)


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


SENTENCE_WEIGHT = 0.5  # dense score = (1-s)·chunk cosine + s·best sentence cosine
HIGHLIGHT_DENSE = 0.5  # highlight = (1-h)·word overlap + h·sentence cosine, each scaled to 0..1
HEADING_PENALTY = 0.5  # a heading-like line restates the topic; the answer is in the text


def rescore_dense(
    dense: Ranked, pool: Sequence[int], sent_sims: dict[int, npt.NDArray[np.float32]]
) -> Ranked:
    """Dense scores for every candidate, blending the chunk with its best sentence.

    A long chunk's single vector blurs the one sentence a question is about;
    mixing in the best sentence's cosine ranks that chunk higher. Candidates
    found only by BM25 get the weakest retrieved chunk cosine as their chunk part.
    """
    chunk = dict(dense)
    floor = dense[-1][1] if dense else 0.0
    out = []
    for cid in pool:
        c = chunk.get(cid, floor)
        sims = sent_sims.get(cid)
        best = float(sims.max()) if sims is not None and len(sims) else c
        out.append((cid, (1 - SENTENCE_WEIGHT) * c + SENTENCE_WEIGHT * best))
    out.sort(key=lambda x: -x[1])
    return out


def _heading_like(sentence: str) -> bool:
    s = sentence.strip()
    return s.startswith("#") or (len(s) < 30 and not s.endswith(("。", ".", "！", "？", "!", "?")))


def sentence_scores(
    question_tokens: Sequence[str],
    question: str,
    sentences: Sequence[str],
    sentence_tokens: Sequence[Sequence[str]],
    idf: dict[str, float],
    sims: npt.NDArray[np.float32] | None = None,
) -> list[float]:
    """How well each sentence answers the question (higher is better).

    Word overlap (idf-weighted) plus shared character bigrams, blended with the
    sentence's cosine to the question when sentence vectors are at hand (they
    carry an English question over Japanese text, where words cannot).
    """
    q = set(question_tokens)
    qb = _bigrams(question)
    lex = []
    for sent, toks in zip(sentences, sentence_tokens, strict=True):
        words = sum(idf.get(t, 1.0) for t in q.intersection(toks))
        chars = len(qb & _bigrams(sent)) / (len(qb) or 1)
        lex.append(words + chars)
    top = max(lex, default=0.0)
    scores = [x / top if top > 0 else 0.0 for x in lex]
    if sims is not None and len(sims) == len(sentences) and len(sims) > 0:
        lo, hi = float(sims.min()), float(sims.max())
        dense = [(float(x) - lo) / (hi - lo) if hi > lo else 1.0 for x in sims]
        scores = [
            (1 - HIGHLIGHT_DENSE) * a + HIGHLIGHT_DENSE * b
            for a, b in zip(scores, dense, strict=True)
        ]
    return [
        s * HEADING_PENALTY if _heading_like(t) and len(sentences) > 1 else s
        for s, t in zip(scores, sentences, strict=True)
    ]
