"""Measuring abstention: does the top confidence tell answerable questions from the rest?"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class AbstentionScores:
    """How the top confidence separates answerable from unanswerable questions.

    ``answered``: share of answerable questions marked answerable (want high);
    ``abstained``: share of unanswerable questions marked not answerable (want high);
    ``auroc``: probability that an answerable question's top confidence beats an
    unanswerable one's (ties count half); None unless both kinds are present.
    """

    n_answerable: int
    n_unanswerable: int
    threshold: float
    answered: float | None
    abstained: float | None
    auroc: float | None


def auroc(positive: Sequence[float], negative: Sequence[float]) -> float | None:
    """Area under the ROC curve of a score separating positives from negatives."""
    if not positive or not negative:
        return None
    neg = sorted(negative)
    import bisect

    total = 0.0
    for p in positive:
        below = bisect.bisect_left(neg, p)
        ties = bisect.bisect_right(neg, p) - below
        total += below + 0.5 * ties
    return total / (len(positive) * len(negative))


def abstention_scores(
    answerable: Sequence[float], unanswerable: Sequence[float], threshold: float
) -> AbstentionScores:
    """Scores from the top confidences of answerable and unanswerable questions."""
    return AbstentionScores(
        n_answerable=len(answerable),
        n_unanswerable=len(unanswerable),
        threshold=threshold,
        answered=sum(c >= threshold for c in answerable) / len(answerable) if answerable else None,
        abstained=(
            sum(c < threshold for c in unanswerable) / len(unanswerable) if unanswerable else None
        ),
        auroc=auroc(answerable, unanswerable),
    )
