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
- ``coverage``: the idf-weighted share of the question's words found in the passage.

Because the signals do not depend on the ranking, the same passage gets the same
confidence in every mode.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Logistic coefficients (intercept, sentence, gap, coverage); fitted by
# benchmarks/quality.py --fit-confidence on tuning data (see the README).
INTERCEPT = -38.0
W_SENTENCE = 42.0
W_GAP = 20.0
W_COVERAGE = 4.0
DEFAULT_MIN_CONFIDENCE = 0.5


@dataclass(frozen=True)
class Signals:
    """The raw evidence behind one passage's confidence."""

    sentence: float
    gap: float
    coverage: float

    def as_row(self) -> tuple[float, float, float]:
        return (self.sentence, self.gap, self.coverage)


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
    z = INTERCEPT + W_SENTENCE * s.sentence + W_GAP * s.gap + W_COVERAGE * s.coverage
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
