"""An English question's Japanese rendering: names, phrases, dates and words.

A question in English over Japanese articles shares few words with them. Word by word
JMdict glosses (:mod:`bunko.retrieval.expansion`) miss what matters most in a
factoid question: names written in romaji ("Kujō Michiie" is 九条道家), multi-word
terms ("Science and Technology Agency" is 科学技術庁, "rainy season" 梅雨) and
dates ("March 11, 1960" is 1960年3月11日). :func:`render` finds them:

- **names**: capitalised word sequences looked up in JMnedict (:func:`names_for`),
  with macrons and long vowels folded (Kujō = Kujou; Kujo tries Kujou too);
- **phrases**: word sequences looked up as whole JMdict glosses (:func:`phrase_for`),
  a gloss's parenthesised note ignored ("Science and Technology Agency (1956-2001)");
- **dates and numbers**: rewritten the Japanese way (:func:`japanese_dates`);
- the remaining unknown words: their JMdict headwords (:func:`expansion.word_terms`).

It returns weighted lexical terms the corpus knows, and the question's Japanese
rendering (the written forms, in question order) that the dense side can embed
appended to the question. Japanese questions never come here: the caller checks
:func:`expansion.is_japanese` first, so they never open the dictionary.

The dictionary is read through :func:`names_for` and :func:`phrase_for` (the
``Name`` and ``Phrase`` tables of the JMdict file shipped with bunko, built by
``tools/build_jmdict.py``) and :func:`dictionary_words`. On that file they give what
the same lookups gave on jamdict-data's full tables (``tests/test_jmdict_file.py``),
for the JMnedict types the file keeps (people, places, surnames, organisations,
works...; not given names nor unclassified ones).
"""

from __future__ import annotations

import re
import sqlite3
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise
from typing import Literal

from bunko.retrieval import expansion

NAME_WEIGHT = 1.0  # a name's BM25 weight, relative to a question word: names are specific
PHRASE_WEIGHT = 1.0  # a whole-phrase gloss is as specific as a name
DATE_WEIGHT = 0.5  # date parts (年, 月, 3) are generic one by one
MAX_SPAN = 5  # words in a phrase or name looked up whole
MAX_FORMS = 4  # written forms kept per name (a surname has many spellings)
LOOKUP_ROWS = 20  # matching glosses read per name or phrase lookup

# Beyond expansion.ENGLISH_STOP: words that say what is asked, not what it is about.
WORD_STOP = frozenset({
    "name", "names", "called", "call", "kind", "kinds", "type", "types", "way", "ways",
    "thing", "things", "example", "examples", "mean", "means", "meaning", "known", "say",
    "said", "refer", "refers"})  # fmt: skip
# Words that may sit inside a capitalised name or title ("Ministry of Education",
# "Tale of Genji", "Tokyo University of the Arts").
_CONNECTORS = frozenset({"of", "and", "the", "for", "no", "de", "in", "on"})
_POSSESSIVE = re.compile(r"['’]s$")
_HIRAGANA = re.compile("[\u3041-\u309f]")
_WORD = re.compile(r"[A-Za-z\u00c0-\u024f][A-Za-z\u00c0-\u024f'’\-]*")


# -- the dictionary: the two functions that read it ---------------------------


def _long_vowels(word: str) -> list[str]:
    """Spellings of a romanised word as JMnedict writes it (long vowels as ou, uu):
    "Kujō" -> Kujou; "Kujo" -> Kujo, Kujou (a final or pre-consonant o may be long)."""
    if any(c in word for c in "ōūŌŪâôûÂÔÛ"):
        return [word.translate(_MACRONS)]
    out = [word]
    folded = re.sub(r"o(?![uaeio])", "ou", word)
    if folded != word:
        out.append(folded)
    return out


_MACRONS = str.maketrans({"ō": "ou", "ū": "uu", "Ō": "Ou", "Ū": "Uu", "ô": "ou", "û": "uu",
                          "Ô": "Ou", "Û": "Uu", "â": "aa", "Â": "Aa"})  # fmt: skip


@lru_cache(maxsize=4096)
def names_for(romaji: str) -> tuple[str, ...]:
    """Written forms of a romanised name in JMnedict ("Kujō Michiie" -> 九条道家),
    in JMnedict's order; () when there is none or no dictionary. Only the JMnedict
    types the shipped file keeps (``tools/build_jmdict.py``, ``NAME_TYPES``).

    A gloss matches when it is the name itself or the name followed by a
    parenthesised note ("Kujou Michiie (1193-1252.4.1)").
    """
    db = expansion.dictionary().connection()
    if db is None:
        return ()
    words = romaji.split()
    spellings = [""]
    for w in words:  # at most 2 ** (words without macrons) spellings; names are short
        spellings = [f"{s} {v}".strip() for s in spellings for v in _long_vowels(w)][:8]
    out: list[str] = []
    for s in dict.fromkeys(spellings):
        for form in _first_rows(db, "SELECT idseq, n, form FROM Name WHERE head = ?", s):
            if form and form not in out:
                out.append(form)
    return tuple(out)


def _first_rows(db: sqlite3.Connection, sql: str, head: str) -> list[str | None]:
    """The written forms of the first ``LOOKUP_ROWS`` matching glosses, in entry order
    (a gloss matched ``n`` times in an entry counts ``n`` times, as it did on
    jamdict-data's tables). ``head`` never holds "(" (see ``tools/build_jmdict.py``)."""
    if "(" in head:
        return []
    out: list[str | None] = []
    for _, n, form in db.execute(sql + " ORDER BY idseq", (head,)):
        out += [form] * n
        if len(out) >= LOOKUP_ROWS:
            break
    return out[:LOOKUP_ROWS]


@lru_cache(maxsize=4096)
def phrase_for(phrase: str) -> tuple[str, ...]:
    """JMdict headwords whose gloss is the whole multi-word ``phrase`` ("Science and
    Technology Agency" -> 科学技術庁; "rainy season" -> 梅雨), first forms only;
    () when there is none, no dictionary, or ``phrase`` is one word (single words go
    through :func:`dictionary_words`)."""
    db = expansion.dictionary().connection()
    if db is None:
        return ()
    out: list[str] = []
    sql = "SELECT p.idseq, p.n, e.kanji, e.kana FROM Phrase p JOIN Entry e ON e.idseq = p.idseq"
    for kanji, kana in _first_rows_forms(db, sql, phrase):
        form = kanji or kana
        if form and form not in out:
            out.append(form)
    return tuple(out)


def _first_rows_forms(
    db: sqlite3.Connection, sql: str, phrase: str
) -> list[tuple[str | None, str | None]]:
    rows: list[tuple[str | None, str | None]] = []
    if "(" in phrase:
        return rows
    for _, n, kanji, kana in db.execute(sql + " WHERE p.head = ? ORDER BY p.idseq", (phrase,)):
        first = [text for text, _ in expansion.split_forms(kanji)[:1]]
        first_kana = [text for text, _ in expansion.split_forms(kana)[:1]]
        rows += [(first[0] if first else None, first_kana[0] if first_kana else None)] * n
        if len(rows) >= LOOKUP_ROWS:
            break
    return rows[:LOOKUP_ROWS]


def dictionary_words(word: str) -> list[tuple[str, float]]:
    """JMdict headwords glossed as ``word`` (:meth:`expansion.Dictionary.entries`)."""
    return expansion.dictionary().entries(word)


# -- dates and numbers ----------------------------------------------------------

_MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July",
                "August", "September", "October", "November", "December")  # fmt: skip
_MONTHS = {m.lower(): i for i, m in enumerate(_MONTH_NAMES, 1)}
_MONTH = "(" + "|".join(_MONTH_NAMES) + ")"
_ORD = r"(?:st|nd|rd|th)?"
_DATE_RULES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (re.compile(rf"\b{_MONTH}\s+(\d{{1,2}}){_ORD},?\s+(\d{{3,4}})\b"),
     lambda m: f"{m[3]}年{_MONTHS[m[1].lower()]}月{int(m[2])}日"),
    (re.compile(rf"\b(\d{{1,2}}){_ORD}\s+(?:of\s+)?{_MONTH},?\s+(\d{{3,4}})\b"),
     lambda m: f"{m[3]}年{_MONTHS[m[2].lower()]}月{int(m[1])}日"),
    (re.compile(rf"\b{_MONTH},?\s+(?:of\s+)?(\d{{3,4}})\b"),
     lambda m: f"{m[2]}年{_MONTHS[m[1].lower()]}月"),
    (re.compile(rf"\b{_MONTH}\s+(\d{{1,2}}){_ORD}\b"),
     lambda m: f"{_MONTHS[m[1].lower()]}月{int(m[2])}日"),
    (re.compile(rf"\b(\d{{1,2}}){_ORD}\s+(?:of\s+)?{_MONTH}\b"),
     lambda m: f"{_MONTHS[m[2].lower()]}月{int(m[1])}日"),
    (re.compile(rf"\b{_MONTH}\b"), lambda m: f"{_MONTHS[m[1].lower()]}月"),
    (re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)\s+centur(?:y|ies)\b", re.I),
     lambda m: f"{int(m[1])}世紀"),
    (re.compile(r"\b(\d{2,4})0s\b"), lambda m: f"{m[1]}0年代"),
    (re.compile(r"\b(\d{3,4})\s*(?:BC|B\.C\.|BCE)"), lambda m: f"紀元前{m[1]}年"),
    (re.compile(r"\b(\d{1,3}(?:,\d{3})+)\b"), lambda m: m[1].replace(",", "")),
    (re.compile(r"(?<![\d,])\b(1\d{3}|20\d{2})\b(?![,\d])"), lambda m: f"{m[1]}年"),
)  # fmt: skip


def japanese_dates(question: str) -> list[str]:
    """Dates and numbers of an English question written the Japanese way, in order:
    "March 11, 1960" -> 1960年3月11日, "3rd century" -> 3世紀, "1920s" -> 1920年代,
    "35,000" -> 35000. Each stretch of text is rewritten once, by the first rule
    (the most specific) that matches it."""
    taken: list[tuple[int, int, str]] = []
    for pattern, rule in _DATE_RULES:
        for m in pattern.finditer(question):
            if any(s < m.end() and m.start() < e for s, e, _ in taken):
                continue
            taken.append((m.start(), m.end(), rule(m)))
    return [text for *_, text in sorted(taken)]


# -- the rendering ----------------------------------------------------------------

Lever = str  # "names", "phrases", "dates", "words"
ALL_LEVERS: frozenset[Lever] = frozenset({"names", "phrases", "dates", "words"})
LEXICAL_LEVERS: frozenset[Lever] = ALL_LEVERS  # levers whose forms feed BM25


@dataclass(frozen=True)
class Rendering:
    """What an English question becomes in Japanese.

    Attributes:
        terms: extra lexical terms the corpus knows, ``{term: BM25 weight}``.
        translated: the question's tokens that found a Japanese form.
        found: (lever, English text, Japanese form) triples in question order; their
            forms are the text the dense side embeds (:meth:`japanese`).
        lookups: dictionary queries spent (the cost measure of the benchmark).
    """

    terms: dict[str, float] = field(default_factory=dict)
    translated: frozenset[str] = frozenset()
    found: tuple[tuple[Lever, str, str], ...] = ()
    lookups: int = 0

    def japanese(self, levers: frozenset[Lever] = ALL_LEVERS) -> str:
        """The Japanese forms the given levers found, in question order, each once."""
        return " ".join(dict.fromkeys(f for lever, _, f in self.found if lever in levers))


def _is_cap(word: str) -> bool:
    return word[:1].isupper()


def render(
    question: str,
    tokens: Sequence[str],
    known: Callable[[Sequence[str]], Mapping[str, float]],
    tokenize: Callable[[str], list[str]],
    levers: frozenset[Lever] = ALL_LEVERS,
    lexical: frozenset[Lever] | None = None,
) -> Rendering:
    """The Japanese rendering of an English question (see the module docstring).

    Args:
        question: the question (the caller makes sure it has no Japanese script).
        tokens: its tokens as the lexical retriever sees them.
        known: the corpus vocabulary (:meth:`Snapshot.idf`).
        tokenize: the index tokenizer, to split written forms as the corpus was split.
        levers: which of names, phrases, dates and words to use.
        lexical: the levers whose forms become lexical terms (default
            ``LEXICAL_LEVERS``); the others feed only the rendering.

    Returns:
        The :class:`Rendering`; its terms are only ones the corpus knows.
    """
    text = unicodedata.normalize("NFC", question)
    words = [(m.start(), _POSSESSIVE.sub("", m.group()).strip("'’-"))
             for m in _WORD.finditer(text)]  # fmt: skip
    covered = [False] * len(words)
    pieces: list[
        tuple[int, str, str, str, float]
    ] = []  # (position, lever, English, Japanese, weight)
    lookups = 0

    def accept(forms: Sequence[str]) -> list[str]:
        out = []
        for form in forms:
            parts = tokenize(form)
            if parts and len(known(parts)) == len(set(parts)):
                out.append(form)
        return out

    stop = expansion.ENGLISH_STOP
    has_era = any(w.lower() in ("era", "eras") for _, w in words)
    for n in range(min(MAX_SPAN, len(words)), 0, -1):
        for i in range(len(words) - n + 1):
            if any(covered[i : i + n]):
                continue
            span = [w for _, w in words[i : i + n]]
            first, last = span[0].lower(), span[-1].lower()
            if first in stop or last in stop or first in _CONNECTORS or last in _CONNECTORS:
                continue
            english = " ".join(span)
            forms: list[str] = []
            weight = 0.0
            inner_ok = all(_is_cap(w) or w.lower() in _CONNECTORS for w in span)
            # A single capitalised word that JMdict knows as a word ("China": 中国) is
            # left to the word lever: JMnedict lists it as a given name too (千愛).
            if "phrases" in levers and n == 1 and inner_ok and has_era:
                # In a question about eras, a capitalised word may be one: era names are
                # JMdict words glossed "Kanpō era (1741.2.27-1744.2.21)" (with macrons).
                for variant in dict.fromkeys([span[0], _long_vowels(span[0])[0]]):
                    lookups += 1
                    forms = accept(phrase_for(f"{variant} era"))
                    if forms:
                        break
                lever, weight = "phrases", PHRASE_WEIGHT
            single_word = n == 1 and (i == 0 or bool(dictionary_words(span[0])))
            if not forms and "names" in levers and inner_ok and not single_word:
                lookups += 1 + (n == 1)
                # Names are written in kanji or katakana; a form with hiragana in it
                # (山だ for Yamada) is a reading, not how an article writes the name.
                forms = [f for f in accept(names_for(english)) if not _HIRAGANA.search(f)]
                if n == 1:
                    # A lone surname or place has many spellings in JMnedict (Katō: 加藤,
                    # 下藤, 加当...); the tokenizer's dictionary knows the usual ones as
                    # one word, the rest split into characters.
                    forms = [f for f in forms if len(tokenize(f)) == 1]
                forms = forms[:MAX_FORMS]
                lever, weight = "names", NAME_WEIGHT
            if (
                not forms
                and "phrases" in levers
                and n > 1
                and not any(c.isdigit() for c in english)
            ):
                folded = " ".join(_long_vowels(w)[0] for w in span)
                for variant in dict.fromkeys([english, english.lower(), folded]):
                    lookups += 1
                    forms = accept(phrase_for(variant))
                    if forms:
                        break
                lever, weight = "phrases", PHRASE_WEIGHT
            if forms:
                for j in range(i, i + n):
                    covered[j] = True
                pieces += [(words[i][0], lever, english, f, weight) for f in forms]

    if "dates" in levers:
        for m_text in japanese_dates(text):
            pos = text.find(m_text[:4]) if m_text[:4].isdigit() else len(text)
            pieces.append((max(pos, 0), "dates", m_text, m_text, DATE_WEIGHT))

    terms: dict[str, float] = {}
    seen = known(tokens)
    lexical = LEXICAL_LEVERS if lexical is None else lexical
    for _, lever, _, form, weight in pieces:
        if lever not in lexical:
            continue
        for t in tokenize(form):
            if t not in seen and t in known([t]):
                terms[t] = max(terms.get(t, 0.0), weight)

    if "words" in levers:
        left = [w.lower() for (_, w), c in zip(words, covered, strict=True) if not c]
        # Words of "how old", "how long", and words that name the question ("called",
        # "name": 称号) find glosses that only add noise to the rendering.
        after_how = {b.lower() for (_, a), (_, b) in pairwise(words) if a.lower() == "how"}
        drop = WORD_STOP | after_how
        left_tokens = [t for t in tokens if t in set(left) and t not in drop]
        per_word, spent = expansion.word_terms(left_tokens, known, tokenize)
        lookups += spent
        for word, scored in per_word.items():
            for t, w in scored.items():
                if t not in seen and "words" in lexical:
                    terms[t] = max(terms.get(t, 0.0), w)
            best = max(scored, key=lambda t: scored[t])
            pos = next((p for p, w in words if w.lower() == word), len(text))
            pieces.append((pos, "words", word, best, 0.0))

    pieces.sort(key=lambda p: p[0])
    done = {w.lower() for (_, w), c in zip(words, covered, strict=True) if c}
    done |= {word for _, lever, word, _, _ in pieces if lever == "words"}
    return Rendering(
        terms=terms,
        translated=frozenset(t for t in tokens if t in done),
        found=tuple((lever, e, f) for _, lever, e, f, _ in pieces),
        lookups=lookups,
    )


DENSE: Literal["plain", "append"] = "append"
# Whose forms the dense side appends: names, phrases and dates, not the word glosses.
# The glosses were two thirds of the appended model tokens (about 9 of 13 a question)
# and the embedding's CPU grows with its tokens (about 1 ms a token), for no gain in
# ranking (benchmarks/xling.py: "no word glosses in the dense text"; docs/crosslingual.md).
DENSE_LEVERS: frozenset[Lever] = frozenset({"names", "phrases", "dates"})


def dense_text(question: str, rendering: Rendering | None) -> str | None:
    """The text the dense side embeds for a question: the question with the forms of its
    rendering's :data:`DENSE_LEVERS` appended ("Who was Kujō Michiie's father? 九条道家";
    the word gloss 父 is left out); None (embed the question itself) when there is none."""
    japanese = rendering.japanese(DENSE_LEVERS) if rendering is not None else ""
    if DENSE == "plain" or not japanese:
        return None
    return f"{question} {japanese}"
