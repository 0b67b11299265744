"""How likely a passage is to answer the question, as a probability-like number.

The fused ``score`` is min-max scaled per query, so rank 1 is always about 1.0
and says nothing about whether the corpus holds an answer at all. Confidence
instead reads raw, query-independent signals of one passage and maps them
through a small logistic model fitted on tuning data only (dev-qa +
dev-unanswerable over the shipped corpus, and JSQuAD-valid with 20 % of its
articles held out; see ``benchmarks/quality.py --abstention``):

- ``sentence``: the passage's best sentence cosine to the question (raw, not scaled);
- ``gap``: that cosine minus the median chunk cosine of the question's dense
  candidates, a per-question background: a question the corpus does not answer
  sits about as close to its best passage as to everything else;
- ``coverage``: the idf-weighted share of the question's words found in the passage;
- ``cross``: 1 when a question without Japanese script meets a Japanese passage:
  the model's cross-language cosines run lower, so the same cosine means more.

Because the signals do not depend on the ranking, the same passage gets the same
confidence in every mode.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Logistic coefficients, fitted (classes balanced, each set weighted equally) on
# dev-qa + dev-unanswerable and 200 JSQuAD-valid questions with held-out articles:
# `python benchmarks/quality.py --abstention --fit` (see the README for the tables).
INTERCEPT = -36.85
W_SENTENCE = 38.04
W_GAP = 37.75
W_COVERAGE = 9.71
W_CROSS = 3.83
DEFAULT_MIN_CONFIDENCE = 0.5
_JAPANESE = re.compile("[\u3040-\u30ff\u3400-\u9fff]")


@dataclass(frozen=True)
class Signals:
    """The raw evidence behind one passage's confidence."""

    sentence: float
    gap: float
    coverage: float
    cross: float = 0.0

    def as_row(self) -> tuple[float, float, float, float]:
        return (self.sentence, self.gap, self.coverage, self.cross)


def cross_lingual(question: str, passage: str) -> float:
    """1.0 for a question with no Japanese script over a passage with some, else 0.0."""
    return float(not _JAPANESE.search(question) and bool(_JAPANESE.search(passage)))


def word_coverage(
    question_tokens: Sequence[str], passage_tokens: Sequence[str], idf: Mapping[str, float],
    unseen_idf: float,
) -> float:  # fmt: skip
    """Share of the question's idf mass whose words appear in the passage (0..1).

    A question word the corpus never saw weighs ``unseen_idf`` and is missing by
    definition, so an off-topic question scores low.
    """
    terms = [t for t in dict.fromkeys(question_tokens) if t.strip()]
    if not terms:
        return 0.0
    have = set(passage_tokens)
    total = 0.0
    found = 0.0
    for t in terms:
        w = idf.get(t, unseen_idf)
        total += w
        if t in have:
            found += w
    return found / total if total > 0 else 0.0


def confidence(s: Signals) -> float:
    """Probability-like confidence in [0, 1] that the passage answers the question."""
    z = (
        INTERCEPT
        + W_SENTENCE * s.sentence
        + W_GAP * s.gap
        + W_COVERAGE * s.coverage
        + W_CROSS * s.cross
    )
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def median(values: Sequence[float]) -> float:
    if not values:
        return 0.0
    v = sorted(values)
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2
