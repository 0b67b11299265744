"""The highlighted sentence of a passage: the one most likely to hold the answer.

Each sentence of the passage gets a few features: its idf-weighted word overlap
and character-bigram overlap with the question, its cosine to the question (the
sentence vectors stored in the index) and that cosine's rank within the passage,
its neighbours' scores, whether it looks like a heading, and whether it holds the
kind of thing the question asks for (いつ/when -> a date, 何人/how many -> a
number, 誰/who -> a person's name, どこ/where -> a place). A conditional logit
(a softmax over the passage's sentences) turns them into one score per sentence;
its weights are fitted offline, on tuning data only, by
``python benchmarks/highlight.py fit``.

The highlight is the best sentence; its more likely neighbour joins it when that
neighbour has at least ``JOIN_RATIO`` of its probability, or when the best is
short, up to ``MAX_CHARS`` for the pair. When the best is a heading or a label line ("two
models were announced:"), which restates the question, the highlight is the one
or two sentences after it, where the answer (often a list) is. A section heading
(:func:`opens_section`) never joins the best sentence; the article's "# " title may,
and does when the highlight starts with the lead sentence right under it and that
sentence does not name it: a lead sentence often leaves its subject to the title
(「# 天洋丸級貨客船」 then 「トン数は1万2千トン…」), which may be what is asked.

The word overlap is counted three times: over all the question's words; over those
not in the article's title (``lex_rest``: the title names the topic every sentence of
the article is about, so on a whole article the sentence that answers is the one
matching the rest of the question); and with each word weighed by its nearness to
the question word (``lex_near``: 率いる in 研究チームを率いているのは誰, which asks who
leads, not who researches). An English question's tokens carry the Japanese terms of
its rendering, so its word features count too (all but ``lex_near``: the rendering's
terms have no place in the question's word order).

Measured with ``benchmarks/highlight.py`` (docs/answer-stage.md has the tables),
cross-validated by article, strict: JaQuAD dev 0.832 -> 0.877, JSQuAD valid 0.857 ->
0.866, then 0.902 with the title rule, the whole-article shelves' Japanese questions
0.759 -> 0.819 -> 0.831; English questions (eval/xling-en.jsonl) 0.774 -> 0.779 -> 0.799.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from bunko.text import JAPANESE

if TYPE_CHECKING:
    import numpy.typing as npt

    from bunko.text import Tokenizer


MAX_CHARS = 300  # two joined sentences stay under this; one sentence is never cut
SHORT_CHARS = 60  # a best sentence shorter than this takes its more likely neighbour
# A neighbour with at least this share of the best's probability joins it. It trades
# accuracy for length (JSQuAD valid: 0.5 / 0.3 / 0.2 -> 0.854 / 0.857 / 0.861 strict
# at 92 / 92 / 94 mean chars).
JOIN_RATIO = 0.3

FEATURES = (
    "lex",  # idf word overlap, scaled by the passage's best
    "lex_rest",  # the same for the question's words that are not in the article title
    # (the topic the whole article repeats: 寛保 in 寛保の時代の天皇は誰？ over the
    # article 寛保; the answer sentence is the one with 天皇 and 時代, often without 寛保)
    "lex_share",  # idf word overlap over the question's idf mass
    "bigram",  # share of the question's char bigrams in the sentence
    "cos",  # sentence cosine, min-max scaled within the passage
    "cos_gap",  # cosine minus the passage's best cosine
    "cos_top",  # 1 for the passage's best cosine
    "lex_top",  # 1 for the passage's best word overlap
    "heading",  # a heading-like line
    "tiny",  # fewer than 3 letters or digits ("4.", "---"): never an answer alone
    "log_len",  # log of the sentence length in chars
    "novel",  # share of the sentence's words not in the question (an answer adds something)
    "prev_lex",  # the previous sentence's lex
    "next_lex",  # the next sentence's lex
    "prev_cos",
    "next_cos",
    "cue_date",  # the question asks when, and the sentence has a date or year
    "cue_number",  # the question asks how many/much, and the sentence has a number
    "cue_person",  # the question asks who, and the sentence names a person the question does not
    "cue_place",  # the question asks where, and the sentence names a place the question does not
    "lex_near",  # idf word overlap, each question word weighed by its nearness to the question
    # word (誰/何/いつ/who/what...): 率いる in 研究チームを率いているのは誰 (0 without one)
)

# Conditional-logit weights, one per FEATURES entry: `python benchmarks/highlight.py fit`.
# WEIGHTS: fitted on the Japanese questions (JSQuAD valid, JaQuAD dev, and the whole-article
# shelves of benchmarks/answer_stage.py). WEIGHTS_CROSS: an English question over a
# Japanese passage, whose question tokens carry the Japanese terms of its rendering
# (retrieval/crossling.py), so the word features count: fitted on the hand-translated
# questions (eval/xling-en.jsonl, and the whole-article shelves' English questions).
# Cross-validated figures (5 folds by article): docs/answer-stage.md.
LEXICAL = frozenset(
    {
        "lex",
        "lex_rest",
        "lex_share",
        "bigram",
        "lex_top",
        "novel",
        "prev_lex",
        "next_lex",
        "lex_near",
    }
)
WEIGHTS: dict[str, float] = {
    "lex": -1.915,
    "lex_rest": 2.902,
    "lex_share": 1.529,
    "bigram": 0.704,
    "cos": 1.250,
    "cos_gap": -0.649,
    "cos_top": 0.050,
    "lex_top": 0.272,
    "heading": -1.500,
    "tiny": -0.574,
    "log_len": -0.372,
    "novel": 2.243,
    "prev_lex": 0.558,
    "next_lex": 0.388,
    "prev_cos": 0.326,
    "next_cos": 0.273,
    "cue_date": 2.986,
    "cue_number": 1.430,
    "cue_person": 2.960,
    "cue_place": 2.658,
    "lex_near": 2.306,
}
WEIGHTS_CROSS: dict[str, float] = {
    "lex": -0.277,
    "lex_rest": 1.565,
    "lex_share": 1.487,
    "bigram": -0.444,
    "cos": 2.193,
    "cos_gap": 0.772,
    "cos_top": 0.403,
    "lex_top": 0.014,
    "heading": -1.500,
    "tiny": 0.745,
    "log_len": 0.201,
    "novel": 2.383,
    "prev_lex": 0.269,
    "next_lex": 0.219,
    "prev_cos": 0.484,
    "next_cos": 0.223,
    "cue_date": 2.303,
    "cue_number": 1.580,
    "cue_person": 1.460,
    "cue_place": 0.948,
    "lex_near": 0.000,
}

_Q_DATE = re.compile(
    r"いつ|何年|何月|何日|何時|何世紀|何時代|年代|西暦|\bwhen\b|what year|which year|what date"
    r"|what century",
    re.I,
)
_Q_NUMBER = re.compile(
    r"何(?:人|個|回|歳|倍|割|本|台|社|種類|か国|カ国|ヶ国|名|位|番|件|枚|冊|匹|頭|曲|話|巻|階|点|票"
    r"|円|ドル|キロ|メートル|トン|%|％|パーセント|万|億|千|百|度|時間|分|秒|ヶ月|カ月|週|つ|桁|段)"
    r"|いくつ|いくら|どのくらい|どれくらい|どれほど|何パー"
    r"|\bhow (?:many|much|long|old|far|big|large|tall|high|hot)\b|\bwhat percent|\bnumber of\b"
    r"|温度|気温|\btemperature\b",
    re.I,
)
_Q_PERSON = re.compile(r"誰|だれ|どなた|人物|人は\b|\bwho\b|\bwhom\b|\bwhose\b", re.I)
_Q_PLACE = re.compile(r"どこ|何処|どの国|どの都市|どの地域|何県|何市|何州|\bwhere\b", re.I)
DATE = re.compile(
    r"[0-9０-９]{1,4}\s*(?:年|月|日|世紀|年代)|[一二三四五六七八九十百千〇元]+(?:年|月|日|世紀)"
    r"|\b1[0-9]{3}\b|\b20[0-9]{2}\b|(?:明治|大正|昭和|平成|令和|江戸|室町|鎌倉|平安|奈良)"
    r"|\b(?:january|february|march|april|may|june|july|august|september|october|november"
    r"|december)\b",
    re.I,
)
# A quantity: a number with a unit or counter, not a digit inside a name (GPT-4, o1).
NUMBER = re.compile(
    r"(?<![a-z\-])[0-9][0-9,.]*\s*(?:[倍%人個回歳割本台社名位件枚冊匹頭つ万億兆千百円年月日時分秒度点票]"
    r"|ドル|ユーロ|パーセント|ヶ月|カ月|か月|週|キロ|メートル|トン|percent|times|million|billion"
    r"|thousand|people|dollars|years?|°[CF]?|degrees)|[$¥€][0-9]|[一二三四五六七八九十百千万億兆]+[倍人個回歳割本台社名位件枚冊匹頭つ]",
    re.I,
)

# The question asks for an amount of money or a price; the answer is a money amount.
Q_MONEY = re.compile(
    r"料金|いくら|値段|価格|費用|価額|コスト|運賃|代金|月額|年額|賃金|給料|給与|報酬|税額"
    # "how much" before a verb or at the end ("How much is it?", "how much did it raise"),
    # not before a noun or a comparative ("how much energy", "how much more efficient")
    r"|\bhow much(?=\s*(?:money|is|are|was|were|does|do|did|will|would|can|could|should"
    r"|has|have|had)\b|\s*\?|\s*$)|\bcosts?\b|\bprices?d?\b|\bpricing\b|\bfees?\b"
    r"|\bcharges?\b",
    re.I,
)
# A money amount: a number and a currency word, or a currency sign before a number.
MONEY = re.compile(
    r"[0-9][0-9,.]*\s*(?:[万億千兆百][0-9,.]*)*\s*(?:ドル|円|ユーロ|ポンド|ウォン|セント)"
    r"|[$¥€£]\s?[0-9]|[0-9][0-9,.]*\s*(?:dollars?|yen|euros?|cents?|usd|jpy)\b"
    r"|[一二三四五六七八九十百千万億]+(?:ドル|円)",
    re.I,
)
# The question asks for a temperature; the answer is one (a number of degrees), not any
# number ("50 g"). 何度 alone is not one: it also asks "how many times".
Q_TEMPERATURE = re.compile(
    r"温度|気温|水温|体温|室温|沸点|融点|融解点|\btemperatures?\b|\bhow (?:hot|cold|warm)\b"
    r"|\b(?:boiling|melting|freezing) point\b",
    re.I,
)
TEMPERATURE = re.compile(
    r"[0-9][0-9,.]*\s*(?:°\s*[CF]?|℃|℉|度(?![目])|degrees?\b|deg\b)|(?:摂氏|華氏|マイナス)\s*[0-9]",
    re.I,
)


def is_cross(question: str, passage: str) -> bool:
    """A question with no Japanese script over a passage with some."""
    return not JAPANESE.search(question) and bool(JAPANESE.search(passage))


LIST_ITEM = re.compile(r"\s*(?:[*\-+・•●◦▪]|\d{1,3}[.)．）])\s*")


def heading_like(sentence: str) -> bool:
    """A Markdown heading, or a short line without sentence-final punctuation."""
    s = sentence.strip()
    return s.startswith("#") or (len(s) < 30 and not s.endswith(("。", ".", "！", "？", "!", "?")))


def opens_section(sentence: str, gap: int = 2) -> bool:
    """A heading-like line that opens a section: a Markdown heading, or a short line
    after a blank line (``gap``: the characters between it and the sentence before;
    a blank line is at least two) that is not a list item ("* GPT-4o", "1. ", "・")."""
    if sentence.lstrip().startswith("#"):
        return True
    return gap >= 2 and heading_like(sentence) and not LIST_ITEM.match(sentence)


def markdown_title(sentence: str) -> str:
    """The title of a Markdown title line ("# 天洋丸級貨客船"), or "" for any other line."""
    line = sentence.strip()
    return line[2:].strip() if line.startswith("# ") else ""


def _tiny(sentence: str) -> bool:
    """Fewer than 3 letters or digits (stops counting at 3: sentences can be long)."""
    k = 0
    for ch in sentence:
        if ch.isalnum():
            k += 1
            if k == 3:
                return False
    return True


def _bigrams(text: str) -> set[str]:
    t = "".join(filter(str.isalnum, unicodedata.normalize("NFKC", text).lower()))
    return {t[i : i + 2] for i in range(len(t) - 1)}


def question_cues(question: str) -> tuple[bool, bool, bool, bool]:
    """What the question asks for: (a date, a number, a person, a place)."""
    q = unicodedata.normalize("NFKC", question)
    number = bool(_Q_NUMBER.search(q) or Q_MONEY.search(q))  # a price is a number with a unit
    return (bool(_Q_DATE.search(q)), number, bool(_Q_PERSON.search(q)),
            bool(_Q_PLACE.search(q)))  # fmt: skip


def asked_amount(question: str) -> tuple[bool, bool]:
    """(money, temperature): the (NFKC) question asks for a price, or else for a
    temperature; the answer stage and the highlight read it from here."""
    money = bool(Q_MONEY.search(question))
    return money, not money and bool(Q_TEMPERATURE.search(question))


def answer_cues(
    sentences: Sequence[str], tokenizer: Tokenizer | None, question: str = ""
) -> list[tuple[bool, bool, bool, bool]]:
    """What each sentence holds: (a date, a number, a person's name, a place name).

    Names come from UniDic's proper-noun tags (固有名詞,人名 / 地名) and count only
    when the question does not already name them. Without a tokenizer, names are
    never found (dates and numbers are plain patterns).
    """
    q_names: set[str] = set()
    money, temperature = asked_amount(unicodedata.normalize("NFKC", question))
    if tokenizer is not None and question:
        q_names = {s for s, _ in tokenizer.proper_nouns(question)}
    out = []
    for sent in sentences:
        s = unicodedata.normalize("NFKC", sent)
        person = place = False
        if tokenizer is not None:
            for surface, kind in tokenizer.proper_nouns(sent):
                if surface in q_names:
                    continue
                person |= kind == "人名"
                place |= kind == "地名"
        # A price question wants an amount of money, not any number ("38%"); a
        # temperature question a number of degrees, not "50 g".
        if money:
            number = bool(MONEY.search(s))
        elif temperature:
            number = bool(TEMPERATURE.search(s))
        else:
            number = bool(NUMBER.search(s))
        out.append((bool(DATE.search(s)), number, person, place))
    return out


# The question words a question's tokens are measured from (lex_near).
WH = frozenset({
    "誰", "だれ", "どなた", "何", "なに", "なん", "いつ", "どこ", "どの", "どう", "どんな", "なぜ",
    "何故", "いくつ", "いくら", "どれ", "どちら",
    "who", "whom", "whose", "what", "when", "where", "which", "why", "how",
})  # fmt: skip
NEAR_DECAY = 0.7


def nearness(question_tokens: Sequence[str]) -> dict[str, float]:
    """Each question word's nearness to the question word (1 next to it, times
    ``NEAR_DECAY`` for each word between); empty when the question has none."""
    at = [i for i, t in enumerate(question_tokens) if t.casefold() in WH]
    if not at:
        return {}
    out: dict[str, float] = {}
    for i, t in enumerate(question_tokens):
        if i in at:
            continue
        d = min(abs(i - j) for j in at)
        out[t] = max(out.get(t, 0.0), NEAR_DECAY ** (d - 1))
    return out


def _scaled(values: Sequence[float]) -> list[float]:
    lo, hi = min(values, default=0.0), max(values, default=0.0)
    return [(v - lo) / (hi - lo) if hi > lo else 1.0 for v in values]


def features(
    question: str,
    question_tokens: Sequence[str],
    sentences: Sequence[str],
    sentence_tokens: Sequence[Sequence[str]],
    idf: Mapping[str, float],
    sims: npt.NDArray[np.float32] | None,
    cross: bool,
    cues: Sequence[tuple[bool, bool, bool, bool]] | None = None,
    title_tokens: Collection[str] = (),
) -> npt.NDArray[np.float64]:
    """One row of ``FEATURES`` per sentence (see the module docstring); ``title_tokens``
    are the article title's tokens."""
    n = len(sentences)
    q = set(question_tokens)
    q_mass = sum(idf.get(t, 1.0) for t in q) or 1.0
    qb = _bigrams(question)
    words = [sum(idf.get(t, 1.0) for t in q.intersection(toks)) for toks in sentence_tokens]
    top_words = max(words, default=0.0)
    lex = [w / top_words if top_words > 0 else 0.0 for w in words]
    rest = q.difference(title_tokens)
    rest_words = [sum(idf.get(t, 1.0) for t in rest.intersection(toks)) for toks in sentence_tokens]
    top_rest = max(rest_words, default=0.0)
    bigram = [len(qb & _bigrams(s)) / (len(qb) or 1) for s in sentences]
    # Across languages the question's tokens end with its rendering's Japanese terms,
    # which have no place in its word order: 0 there.
    near = {} if cross else nearness(question_tokens)
    near_words = [
        sum(idf.get(t, 1.0) * v for t, v in near.items() if t in toks)
        for toks in map(set, sentence_tokens)
    ]
    top_near = max(near_words, default=0.0)
    have_sims = sims is not None and len(sims) == n and n > 0
    raw = [float(x) for x in sims] if have_sims and sims is not None else [0.0] * n
    cos = _scaled(raw) if have_sims else [0.0] * n
    best_cos = max(raw, default=0.0)
    q_cues = question_cues(question)
    cues = cues if cues is not None else [(False, False, False, False)] * n
    x = np.zeros((n, len(FEATURES)))
    best_lex = max(range(n), key=lambda i: (lex[i], bigram[i])) if n else -1
    best_sim = max(range(n), key=raw.__getitem__) if have_sims else -1
    for i in range(n):
        toks = sentence_tokens[i]
        novel = len([t for t in toks if t not in q]) / len(toks) if toks else 0.0
        x[i] = (
            lex[i],
            rest_words[i] / top_rest if top_rest > 0 else 0.0,
            words[i] / q_mass,
            bigram[i],
            cos[i],
            raw[i] - best_cos,
            float(i == best_sim),
            float(i == best_lex and top_words > 0),
            float(heading_like(sentences[i]) and n > 1),
            float(_tiny(sentences[i])),
            math.log1p(len(sentences[i])),
            novel,
            lex[i - 1] if i > 0 else 0.0,
            lex[i + 1] if i + 1 < n else 0.0,
            cos[i - 1] if i > 0 else 0.0,
            cos[i + 1] if i + 1 < n else 0.0,
            float(q_cues[0] and cues[i][0]),
            float(q_cues[1] and cues[i][1]),
            float(q_cues[2] and cues[i][2]),
            float(q_cues[3] and cues[i][3]),
            near_words[i] / top_near if top_near > 0 else 0.0,
        )
    return x


def probabilities(x: npt.NDArray[np.float64], weights: Mapping[str, float]) -> Any:
    """Softmax over the passage's sentences of the linear score (``weights`` by feature)."""
    z = x @ np.array([weights.get(f, 0.0) for f in FEATURES], dtype=np.float64)
    p = np.exp(z - z.max())
    return p / p.sum()


def choose(
    question: str,
    question_tokens: Sequence[str],
    sentences: Sequence[str],
    sentence_tokens: Sequence[Sequence[str]],
    spans: Sequence[tuple[int, int]],
    idf: Mapping[str, float],
    sims: npt.NDArray[np.float32] | None = None,
    cross: bool = False,
    tokenizer: Tokenizer | None = None,
    title_tokens: Collection[str] = (),
) -> tuple[int, int]:
    """Indexes (first, last) of the highlighted sentence, or of two adjacent ones.

    Args:
        question: the question as asked.
        question_tokens: its lexical tokens (as the query path made them).
        sentences: the passage's sentences, ``spans`` their char spans.
        sentence_tokens: the lexical tokens of each sentence.
        idf: idf of the question's tokens in the index.
        sims: each sentence's cosine to the question, when the index has them.
        cross: the question is in another language than the passage.
        tokenizer: finds person and place names for who/where questions.
        title_tokens: the article title's lexical tokens.

    Returns:
        ``(first, last)``, with ``last - first`` at most 1, or 2 when an article's
        title joins the two sentences below it.
    """
    n = len(sentences)
    if n <= 1:
        return 0, 0
    # Names need a tagging pass: only for who/where questions.
    names = tokenizer if any(question_cues(question)[2:]) else None
    cues = answer_cues(sentences, names, question)
    x = features(
        question, question_tokens, sentences, sentence_tokens, idf, sims, cross, cues, title_tokens
    )
    p = probabilities(x, WEIGHTS_CROSS if cross else WEIGHTS)
    best = int(np.argmax(p))
    first = last = best

    def fits(a: int, b: int) -> bool:
        return spans[b][1] - spans[a][0] <= MAX_CHARS

    length = spans[best][1] - spans[best][0]
    if heading_like(sentences[best]) and best + 1 < n:
        # A heading restates the question's topic; the answer is what follows it, often
        # a list of short items: the next two sentences (dev-qa ja 11 -> 12 of 15).
        if best + 2 < n and fits(best + 1, best + 2):
            return best + 1, best + 2
        return best + 1, best + 1
    # A short best sentence ("It costs $75.") rarely says enough alone: its more likely
    # neighbour joins it, the one before as well as the one after.
    short = length < SHORT_CHARS
    # The question asks for a value (a price, a count, a date) that the best sentence
    # lacks and a neighbour holds: that neighbour joins it, whatever its probability
    # ("... より高価です。" then "100万トークンあたり75ドルです。").
    asked = question_cues(question)[:2]
    has = [any(a and c for a, c in zip(asked, cue[:2], strict=True)) for cue in cues]
    valued = [j for j in (best - 1, best + 1) if 0 <= j < n and has[j]]
    near = [
        j for j in (best - 1, best + 1) if 0 <= j < n and (short or p[j] >= JOIN_RATIO * p[best])
    ]
    if any(asked) and not has[best] and valued:
        near = valued

    # A section heading never joins the best sentence: after it, it opens the next
    # section; before it, it names this one. A short line right below a sentence (no
    # blank line between) may be a list item going on with it; a Markdown title ("# ")
    # may join: it names the article's subject, which a question may ask for.
    def before(j: int) -> int:  # the characters between sentence j and the one before
        return spans[j][0] - spans[j - 1][1] if j else 2

    near = [j for j in near if fits(min(j, best), max(j, best)) and not (
        (j > best and opens_section(sentences[j], spans[j][0] - spans[best][1]))
        or (j < best and not markdown_title(sentences[j])
            and opens_section(sentences[j], before(j))))]  # fmt: skip
    if near:
        j = max(near, key=lambda j: p[j])
        first, last = min(j, best), max(j, best)
    # A lead sentence that does not name the article's subject leaves it to the title
    # (「# 天洋丸級貨客船」 then 「トン数は1万2千トン…」): when the highlight starts with
    # the sentence right under a Markdown title that it does not name, the title joins.
    title = markdown_title(sentences[0])
    if first == 1 and title and title not in sentences[1] and fits(0, last):
        first = 0
    return first, last
