"""How likely a passage is to answer the question: the signals, and the earlier model.

Since issue 19 a passage's ``confidence`` is the answer stage's probability
(:mod:`bunko.retrieval.answer_stage`), which reads the signals below among
others; :func:`confidence` and its weights are the earlier model, kept for
``benchmarks/abstention.py`` comparisons and no longer used by the query path.

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
  for a question without Japanese script over a Japanese passage, the share of
  its content words found in the passage as themselves or as one of their JMdict
  translations (:func:`translated_coverage`): "mortgage" is found as 住宅ローン.
  The two kinds of coverage get their own weights;
- ``cross``: 1 when a question without Japanese script meets a Japanese passage:
  the model's cross-language cosines run lower, so the same cosine means more.

Because the signals do not depend on the ranking, the same passage gets the same
confidence in every mode.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from bunko.text import JAPANESE, digits_for_lookalikes

# Logistic coefficients, fitted by `python benchmarks/quality.py --abstention --fit`'s
# procedure (classes balanced, each set weighted equally) on dev-qa + dev-unanswerable
# in Japanese, the same in English, and 300 + 300 JSQuAD-valid questions with 20 % of
# its articles held out, on the default onnx engine. A refit on all 1,000 + 762
# JSQuAD questions ranks as well (English AUROC 0.947) but puts the English boundary
# higher (9 of 15 answerable English questions answered), so these stay (README,
# "Abstention"). No tuning set has Japanese questions over English text; they share
# the cross-language weights.
INTERCEPT = -28.3
W_SENTENCE = 27.35
W_GAP = 36.24
W_COVERAGE = 9.85  # same-language questions: word coverage
W_COVERAGE_CROSS = 22.33  # cross-language questions: translated coverage
W_CROSS = -3.81
DEFAULT_MIN_CONFIDENCE = 0.5


@dataclass(frozen=True)
class Signals:
    """The raw evidence behind one passage's confidence."""

    sentence: float
    gap: float
    coverage: float
    cross: float = 0.0

    def as_row(self) -> tuple[float, float, float, float, float]:
        """The features of the logistic model, in the order of its weights."""
        same = self.coverage * (1.0 - self.cross)
        return (self.sentence, self.gap, same, self.coverage * self.cross, self.cross)


def cross_lingual(question: str, passage: str) -> float:
    """1.0 when one of question and passage has Japanese script and the other has none
    (an English question over a Japanese passage, or the other way round), else 0.0."""
    return float(bool(JAPANESE.search(question)) != bool(JAPANESE.search(passage)))


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


_LATIN_WORD = re.compile(r"[A-Za-z0-9]+(?:[.\-+'][A-Za-z0-9]+)*")


def question_words(question: str) -> list[str]:
    """The content words of a question written in Latin script (names kept as written:
    "GPT-4.5", "o1"), without function words, in order, once each."""
    from bunko.retrieval.translate import STOPWORDS

    text = unicodedata.normalize("NFKC", question)
    out = []
    for w in _LATIN_WORD.findall(text):
        w = w[:-2] if w.endswith("'s") else w
        if len(w) > 1 and any(c.isalpha() for c in w) and w.lower() not in STOPWORDS:
            out.append(w)
    return list(dict.fromkeys(out))


def translated_coverage(
    question: str, passage: str, passage_tokens: Sequence[str] | None = None
) -> float:
    """Share of the question's content words found in the passage (0..1), each as
    written (names: "ChatGPT"; a look-alike letter read as a digit: "o1" as "01")
    or as one of its JMdict translations: a term of two characters or more inside
    the text, a one-character term ("mountain": 山) only as a whole passage token."""
    text = unicodedata.normalize("NFKC", passage).casefold()
    if JAPANESE.search(question):
        return _english_coverage(question, text)
    words = _word_tests(question)
    if not words:
        return 0.0
    tokens: set[str] | None = None  # made only when a one-character term needs it
    found = 0
    for inside, whole in words:
        if any(map(text.__contains__, inside)):
            found += 1
        elif whole:
            if tokens is None:
                tokens = set(passage_tokens or ())
            found += not whole.isdisjoint(tokens)
    return found / len(words)


@lru_cache(maxsize=256)
def _word_tests(question: str) -> tuple[tuple[tuple[str, ...], frozenset[str]], ...]:
    """Per content word of a Latin-script question, made once per question, not once
    per passage the answer stage scores (about 45): the texts that count when found
    inside the passage (its forms as written, its JMdict translations of two
    characters or more) and those that count only as whole passage tokens (its
    one-character translations)."""
    from bunko.retrieval.translate import translations

    out = []
    for w in question_words(question):
        terms = translations(w)
        inside = [w.casefold(), digits_for_lookalikes(w).casefold()]
        inside += [t for t in terms if len(t) >= 2]
        out.append((tuple(dict.fromkeys(inside)), frozenset(t for t in terms if len(t) < 2)))
    return tuple(out)


_KATAKANA = re.compile("[\u30a1-\u30fa\u30fc]{2,}")
_DIGITS = re.compile("[0-9]{2,}")


def name_terms(question: str) -> list[str]:
    """The question's name-like terms, the ones a passage that answers it must repeat:
    Latin words with a capital letter or a digit ("Gemini", "GPT-4.5", "o1"),
    katakana words (マグルー) and numbers of two digits or more (years)."""
    text = unicodedata.normalize("NFKC", question)
    out = [w for w in question_words(text) if any(c.isupper() or c.isdigit() for c in w)]
    out += _KATAKANA.findall(text)
    out += [d for d in _DIGITS.findall(text) if not any(d in w for w in out)]
    return list(dict.fromkeys(out))


def name_coverage(terms: Sequence[str], passage: str, translate: bool = True) -> float:
    """Share of ``terms`` (:func:`name_terms`) found in the passage: as written, with a
    look-alike letter read as a digit ("o1" as "01"), or, with ``translate`` (a question
    without Japanese script), for a Latin word over a Japanese passage as one of its
    JMdict translations ("Japan": 日本). 1.0 without terms. A Japanese question passes
    ``translate=False``: it never opens the dictionary."""
    from bunko.retrieval.translate import translations

    if not terms:
        return 1.0
    text = unicodedata.normalize("NFKC", passage).casefold()
    japanese = translate and bool(JAPANESE.search(text))
    found = 0
    for w in terms:
        forms = {w.casefold(), digits_for_lookalikes(w).casefold()}
        if any(f in text for f in forms) or (
            japanese
            and w.isascii()
            and not w.isdigit()
            and any(len(t) >= 2 and t in text for t in translations(w))
        ):
            found += 1
    return found / len(terms)


def _english_coverage(question: str, text: str) -> float:
    """Share of a Japanese question's content words found in an English passage
    (already NFKC and case-folded): as written (names, numbers) or as a word of
    one of their JMdict glosses (温度: "temperature")."""
    from bunko.retrieval.translate import glosses, japanese_words

    words = japanese_words(question)
    if not words:
        return 0.0
    present = set(_LATIN_WORD.findall(text))
    present |= {w[:-1] for w in present if w.endswith("s")}  # plurals: "degrees"
    found = sum(1 for w in words if w.casefold() in present or not glosses(w).isdisjoint(present))
    return found / len(words)


def confidence(s: Signals) -> float:
    """Probability-like confidence in [0, 1] that the passage answers the question."""
    weights = (W_SENTENCE, W_GAP, W_COVERAGE, W_COVERAGE_CROSS, W_CROSS)
    z = INTERCEPT + sum(w * x for w, x in zip(weights, s.as_row(), strict=True))
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
