"""Dense and lexical retrieval and their fusion (the highlight: retrieval/highlight.py).

Fusion is a convex combination of per-query standardised scores (z-scores over
each retriever's candidates). The lexical weight is scaled by how much of the
question the corpus vocabulary knows (:meth:`Snapshot.coverage`): BM25 over
Japanese text is blind to an English question, and plain RRF would let its noise
push good dense hits down. It backs off further when BM25's best candidate
hardly stands out from the next ones (:func:`lexical_distinctness`): a match on
generic words ("o", "1", 訓練) is no evidence for one passage over another.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from bunko.text import LOOKALIKE_DIGIT, digits_for_lookalikes
from bunko.types import Mode

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from bunko.index.snapshot import Snapshot

Fusion = Literal["convex", "rrf"]


# The lexical share when the whole question is known to the corpus. 0.6 (0.5 before),
# with DISTINCT_FULL 0.25 (0.3) and DISTINCT_POWER 2 (1): JSQuAD valid MRR@10 0.940
# -> 0.942, JaQuAD dev 0.925 -> 0.928 (400 questions each), and the README's o1
# example right again on the onnx-engine index (README, "What moved the numbers").
LEXICAL_WEIGHT = 0.6
COVERAGE_POWER = 3.0  # a question the corpus half knows (English over Japanese) gets 1/8 of it


def lexical_weight(coverage: float) -> float:
    """The lexical share of the fusion for a question, from its vocabulary coverage."""
    return float(LEXICAL_WEIGHT * coverage**COVERAGE_POWER)


_LATIN_WORD = re.compile(r"[A-Za-z0-9]+")


def digit_spellings(question: str) -> list[str]:
    """The question's Latin words that hold a look-alike letter before a digit,
    spelt with the digit instead ("o1" -> "01", "GPT-o3" -> "03"; "4o" is left alone).

    The caller keeps the variants' tokens only where the corpus vocabulary knows
    them, so nothing changes for a corpus that spells the word as the question does.
    """
    text = unicodedata.normalize("NFKC", question)
    return [
        digits_for_lookalikes(w) for w in _LATIN_WORD.findall(text) if LOOKALIKE_DIGIT.search(w)
    ]


DISTINCT_AT = 6  # BM25's best score is compared with the score at this rank
DISTINCT_FULL = 0.25  # ... and gets its full weight when it is this share above it
# Below that, the weight falls with the square: a flat BM25 list (top 17 % above the
# 6th) keeps 0.46 of the weight, not 0.68. Linear (power 1) let a DeepSeek R1 passage
# sharing only "o", "1", 訓練 with the README's o1 example beat the o1 article (on the
# onnx-engine index: by 0.006 at weight 0.5 / full at 0.3, by 0.12 at 0.6 / 0.25).
DISTINCT_POWER = 2.0


def lexical_distinctness(lexical: Ranked) -> float:
    """How much the lexical evidence singles out its best passage, in [0, 1].

    ``((top - score at rank DISTINCT_AT) / top / DISTINCT_FULL) ** DISTINCT_POWER``,
    capped at 1. Fewer candidates than that rank: fully distinct.
    Measured on 400 JSQuAD-valid questions and dev-qa (README, "What moved the
    numbers"): it puts the o1 article first for the README's example, which
    min-max fusion ranked second behind a passage matching only "o", "1", 訓練.
    """
    if len(lexical) < DISTINCT_AT or lexical[0][1] <= 0:
        return 1.0
    top, later = lexical[0][1], lexical[DISTINCT_AT - 1][1]
    return float(min(1.0, (top - later) / top / DISTINCT_FULL) ** DISTINCT_POWER)


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


def lexical_candidates(
    index: Snapshot, tokens: Sequence[str], n: int, weights: Mapping[str, float] | None = None
) -> Ranked:
    """Top ``n`` chunks by BM25 (terms scaled by ``weights``, default 1); chunks with
    score 0 are not candidates."""
    return index.lexical_search(tokens, n, weights)


def fuse(
    dense: Ranked,
    lexical: Ranked,
    lexical_weight: float,
    k: int,
    method: Fusion = "convex",
) -> list[Hit]:
    """Merge two ranked lists into the top ``k`` hits.

    ``convex``: (1-w)·dense + w·lexical, each standardised (z-score) over its own
    candidates (a candidate missing from a list gets that list's lowest z-score).
    ``rrf``: reciprocal rank fusion with the same weights.
    """
    d_rank = {cid: (r, s) for r, (cid, s) in enumerate(dense, 1)}
    l_rank = {cid: (r, s) for r, (cid, s) in enumerate(lexical, 1)}
    w = lexical_weight

    def zscores(items: Ranked) -> tuple[dict[int, float], float]:
        if not items:
            return {}, 0.0
        values = [s for _, s in items]
        mean = sum(values) / len(values)
        sd = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5 or 1.0
        z = {cid: (s - mean) / sd for cid, s in items}
        return z, min(z.values())

    if method == "rrf":
        fused = {
            cid: ((1 - w) / (RRF_K + d_rank[cid][0]) if cid in d_rank else 0.0)
            + (w / (RRF_K + l_rank[cid][0]) if cid in l_rank else 0.0)
            for cid in d_rank.keys() | l_rank.keys()
        }
    else:
        (dz, d_low), (lz, l_low) = zscores(dense), zscores(lexical)
        fused = {
            cid: (1 - w) * dz.get(cid, d_low) + w * lz.get(cid, l_low)
            for cid in d_rank.keys() | l_rank.keys()
        }
    # (rounded: float noise must not break a tie that dense rank should break)
    order = sorted(fused, key=lambda c: (-round(fused[c], 9), d_rank.get(c, (1 << 30,))[0], c))[:k]
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


SENTENCE_WEIGHT = 0.5  # dense score = (1-s)·chunk cosine + s·best sentence cosine


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
