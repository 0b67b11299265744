"""The answer stage: which places of a fixed candidate pool answer the question, and how surely.

Retrieval fuses dense and lexical candidates into one ranked list. This last
step takes a pool of those hits that does not depend on how many results are
shown (the top ``search.CANDIDATES`` fused hits), groups them into places
(:func:`bunko.retrieval.passages.group_places`, spans fixed from the pool),
reads a few raw, cheap signals of each place and maps them through one logistic
model to the probability that the place answers the question. That probability
is the passage's ``confidence``; results are ordered by it and only then cut to
``k``, so ``-k 3`` shows exactly the first three results of ``-k 10``, and
``answerable`` (rank 1's confidence against ``min_confidence``) is read from the
most confident passage, never from a less confident one shown first.

Signals (:data:`FEATURES`), each computed from what retrieval already holds
(no extra model call, no tagging pass):

- where retrieval put the place: its fused score min-max scaled over the pool,
  the log of its rank among the pool's places, its best chunk cosine and BM25
  score relative to the pool's best, and how many pool hits it gathered;
- the confidence signals of :mod:`bunko.retrieval.confidence`: best sentence
  cosine, its gap to the question's dense background, word coverage (same
  language) or translated coverage (a question in another script), the cross flag;
- the best sentence cosine relative to the pool's best (a place far below the
  best sentence of the pool rarely holds the answer);
- answer type: the question asks for an amount or price (料金, いくら, how much,
  cost ...), a count, or a date, and the place (or its best sentence) holds a
  money amount, a number with a unit, or a date;
- title match: the share of the place's title (character bigrams) that the
  question repeats.

The weights are fitted by ``python benchmarks/answer_stage.py --fit`` (see
:data:`WEIGHTS`); figures are in docs/answer-stage.md.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bunko.retrieval import confidence as conf
from bunko.retrieval.passages import group_places, merge_rows

if TYPE_CHECKING:
    from bunko.index.format import ChunkRow
    from bunko.search import Hit

FEATURES = (
    "fused",  # fused score, min-max scaled over the pool (1 = the pool's best)
    "log_rank",  # log of the place's rank among the pool's places, by fused score
    "dense",  # best chunk dense score minus the pool's best (<= 0)
    "lexical",  # best BM25 score over the pool's best (0 when BM25 did not find it)
    "hits",  # log of the number of pool hits the place gathered
    "sentence",  # best sentence cosine (raw)
    "gap",  # that cosine minus the question's dense background (median chunk cosine)
    "sentence_top",  # best sentence cosine minus the pool's best sentence cosine (<= 0)
    "coverage",  # idf word coverage (same script), 0 for a cross-language place
    "tcoverage",  # translated coverage (question in another script), 0 otherwise
    "cross",  # 1 for a question in another script than the place
    "cross_sentence",  # cross x sentence: cross-language cosines run lower
    "cross_gap",  # cross x gap
    "type_match",  # the question asks for an amount/count/date and the place holds one
    "type_best",  # ... and the best sentence (or its neighbour) holds it
    "type_miss",  # the question asks for one and the place holds none
    "title",  # share of the title's character bigrams found in the question
    "names",  # share of the question's names, numbers, katakana words found in the place
    "no_names",  # 1 when the question has none of those
)

# Logistic weights over FEATURES, fitted by `python benchmarks/answer_stage.py --fit` on
# every place of the pool of 1,738 questions over the tuning shelf (JSQuAD valid + JaQuAD
# dev paragraphs without 16 held-out articles, eval/XLING.md): 797 + 372 Japanese and
# 397 + 172 English (hand-translated) answerable + unanswerable questions; a place is
# positive when it holds the answer span; each question weighs the same. Then calibrated
# for rank 1: the intercept so that Japanese rank-1 scores leave the most room to
# answered >= 0.95 and abstained >= 0.80 at 0.5, the `cross` weight so that English
# ones are balanced. 5-fold cross-validated (by article) figures: docs/answer-stage.md.
INTERCEPT = -13.2472
WEIGHTS: dict[str, float] = {
    "fused": 2.9025,
    "log_rank": -0.3631,
    "dense": 16.8409,
    "lexical": 1.1760,
    "hits": -0.1607,
    "sentence": 7.6638,
    "gap": 27.3105,
    "sentence_top": 14.8203,
    "coverage": 6.5204,
    "tcoverage": 4.5708,
    "cross": 0.0896,
    "cross_sentence": 2.4977,
    "cross_gap": -5.4124,
    "type_match": -0.4016,
    "type_best": 0.5858,
    "type_miss": -0.4843,
    "title": -0.4583,
    "names": 0.9208,
    "no_names": -0.3892,
}


@dataclass(frozen=True)
class Asks:
    """What kind of value a question asks for."""

    money: bool
    number: bool
    date: bool

    @property
    def any(self) -> bool:
        return self.money or self.number or self.date


def asks(question: str) -> Asks:
    """The answer types a question asks for: an amount or price, a count, a date."""
    from bunko.retrieval.highlight import Q_MONEY, question_cues

    q = unicodedata.normalize("NFKC", question)
    date, number, _, _ = question_cues(q)
    money = bool(Q_MONEY.search(q))
    return Asks(money=money, number=number and not money, date=date)


def holds(text: str, want: Asks) -> bool:
    """Whether ``text`` holds a value of a kind the question asks for."""
    from bunko.retrieval.highlight import DATE, MONEY, NUMBER

    if not want.any:
        return False
    t = unicodedata.normalize("NFKC", text)
    return bool(
        (want.money and MONEY.search(t))
        or (want.number and NUMBER.search(t))
        or (want.date and DATE.search(t))
    )


@dataclass(frozen=True)
class Place:
    """One place of the pool: its merged row, sentence cosines, best hit and scores."""

    row: ChunkRow
    sims: Any  # per-sentence cosines (numpy array) or None
    hit: Hit  # the place's best-ranked fused hit
    signals: conf.Signals  # the confidence signals (kept for the abstention benchmark)
    features: Mapping[str, float]
    confidence: float  # the probability that the place answers the question


def probability(features: Mapping[str, float]) -> float:
    """The fitted logistic model's probability for one place's features."""
    z = INTERCEPT + sum(w * features.get(f, 0.0) for f, w in WEIGHTS.items())
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _bigrams(text: str) -> set[str]:
    t = "".join(filter(str.isalnum, unicodedata.normalize("NFKC", text).casefold()))
    return {t[i : i + 2] for i in range(len(t) - 1)}


def title_match(question: str, title: str) -> float:
    """Share of the title's character bigrams that the question holds (0..1)."""
    tb = _bigrams(title)
    return len(tb & _bigrams(question)) / len(tb) if tb else 0.0


def rank_places(
    question: str,
    q_tokens: Sequence[str],
    pool: Sequence[Hit],
    rows: Mapping[int, ChunkRow],
    sent_sims: Mapping[int, Any],
    idf: Mapping[str, float],
    unseen_idf: float,
    background: float,
) -> list[Place]:
    """Every place of the pool, most likely to answer first.

    Args:
        question: the question as asked (cut to the query limit).
        q_tokens: its lexical tokens.
        pool: the fused hits, best first; it must not depend on how many results
            will be shown.
        rows: chunk rows by id (every hit's chunk).
        sent_sims: per-sentence cosines by chunk id.
        idf: idf of the question's tokens; ``unseen_idf`` the weight of a word
            the index never saw.
        background: the median dense chunk cosine of the question's candidates.

    Returns:
        The places, ordered by confidence (ties: fused order).
    """
    groups = group_places(
        pool, lambda h: (rows[h.chunk_id].source, rows[h.chunk_id].char_start,
                         rows[h.chunk_id].char_end))  # fmt: skip
    if not groups:
        return []
    want = asks(question)
    names = conf.name_terms(question)
    scores = [h.score for h in pool]
    lo, hi = min(scores), max(scores)
    top_dense = max((h.dense_score for h in pool if h.dense_score is not None), default=0.0)
    top_lex = max((h.lexical_score for h in pool if h.lexical_score is not None), default=0.0)
    merged = []
    for group in groups:
        row, sims = merge_rows(
            [rows[h.chunk_id] for h in group], [sent_sims.get(h.chunk_id) for h in group]
        )
        merged.append((group, row, sims))
    best_sims = [
        float(sims.max()) if sims is not None and len(sims) else background for _, _, sims in merged
    ]
    pool_best = max(best_sims)
    places = []
    for i, ((group, row, sims), best) in enumerate(zip(merged, best_sims, strict=True)):
        hit = group[0]
        cross = conf.cross_lingual(question, row.text)
        coverage = (
            conf.translated_coverage(question, row.text, row.tokens)
            if cross
            else conf.word_coverage(q_tokens, row.tokens, idf, unseen_idf)
        )
        signals = conf.Signals(sentence=best, gap=best - background, coverage=coverage, cross=cross)
        dense = max((h.dense_score for h in group if h.dense_score is not None), default=None)
        lex = max((h.lexical_score for h in group if h.lexical_score is not None), default=0.0)
        type_match = holds(row.text, want)
        features = {
            "fused": (hit.score - lo) / (hi - lo) if hi > lo else 1.0,
            "log_rank": math.log(i + 1),
            "dense": (dense - top_dense) if dense is not None else -1.0,
            "lexical": lex / top_lex if top_lex > 0 else 0.0,
            "hits": math.log(len(group)),
            "sentence": best,
            "gap": best - background,
            "sentence_top": best - pool_best,
            "coverage": coverage * (1.0 - cross),
            "tcoverage": coverage * cross,
            "cross": cross,
            "cross_sentence": cross * best,
            "cross_gap": cross * (best - background),
            "type_match": float(type_match),
            "type_best": float(type_match and _best_holds(row, sims, want)),
            "type_miss": float(want.any and not type_match),
            "title": title_match(question, row.title),
            "names": conf.name_coverage(names, row.text),
            "no_names": float(not names),
        }
        places.append(Place(row, sims, hit, signals, features, confidence=probability(features)))
    order = sorted(range(len(places)), key=lambda j: (-round(places[j].confidence, 4), j))
    return [places[j] for j in order]


def _best_holds(row: ChunkRow, sims: Any, want: Asks) -> bool:
    """Whether the place's best sentence by cosine, or a sentence next to it, holds
    the value asked for (the answer often follows the sentence that restates the
    question)."""
    spans = row.sentences
    if sims is None or len(sims) != len(spans) or not spans:
        return holds(row.text, want)
    best = int(sims.argmax())
    lo, hi = max(0, best - 1), min(len(spans) - 1, best + 1)
    start, end = spans[lo][0] - row.char_start, spans[hi][1] - row.char_start
    return holds(row.text[start:end], want)
