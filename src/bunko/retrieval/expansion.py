"""Query expansion for the lexical retriever: English questions over Japanese text.

BM25 sees no shared words between "Why is infrastructure as important as research?"
and an article that says インフラ and 研究: the fusion then leans on the dense side
alone (its lexical weight follows vocabulary coverage, :func:`bunko.search.lexical_weight`).
:func:`translations` maps the question's English content words that the corpus does
not know to Japanese headwords through JMdict (a compact SQLite file shipped with
bunko, built from jamdict-data by ``tools/build_jmdict.py``, read with the standard
library's ``sqlite3``), keeps the headwords the corpus
does know, and weights them:

- a word's candidate headwords share nothing: each gets the weight of its entry,
  relative to the word's best entry, so an unambiguous word keeps full weight and a
  common headword ("研究", priority-tagged in JMdict) outweighs a rare one ("討究");
- an entry whose first sense carries the gloss counts fully, one that carries it in
  a later sense half ("model" -> 型 is a later sense of 型's entry);
- every expansion term weighs ``TRANSLATION_WEIGHT`` of a question word in BM25.

The terms feed only the lexical retriever and its fusion weight; confidence and the
highlight read the question's own tokens. Japanese questions never open the
dictionary (the cold query path stays as it was), and neither does a question whose
words the corpus already knows (English text over English articles).

Pseudo-relevance feedback from the top dense passages was measured too and lost
(docs/history.md, "What moved the numbers"); it is not here.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)

TRANSLATION_WEIGHT = 0.5  # an expansion term's BM25 weight, relative to a question word
LATER_SENSE = 0.5  # an entry whose gloss is not in its first sense
# JMdict priority tags of common words (ichi1: in the "Ichimango" list; news1: the
# 12,000 most frequent words of a newspaper corpus; spec1: common by the editors; gai1:
# common loanwords). Other tags mark less common words; no tag, rarer ones.
COMMON_TAGS = frozenset({"ichi1", "news1", "spec1", "spec2", "gai1"})
PRIORITY = {"common": 1.0, "tagged": 0.5, "untagged": 0.25}
MIN_TERM_CHARS = 2  # one-character tokens of a headword (的, 型, 上) are too generic

_JAPANESE = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")
_ENGLISH_WORD = re.compile(r"[a-z]+")
# Function words and question words: their glosses are noise ("the", "which", "s").
_STOP_WORDS = """a an the of to in on at for from by with about as into onto than then and or but
    not no nor if is are was were be been being am do does did done doing have has had
    having can could will would shall should may might must what which who whom whose
    why how when where that this these those there here it its they them their he she
    his her we our you your i me my some any all each every more most much many very
    also too so such only just own same other another s t don didn doesn isn aren wasn
    weren let make made get got"""
ENGLISH_STOP = frozenset(_STOP_WORDS.split())


def is_japanese(text: str) -> bool:
    """Whether ``text`` holds any kana or kanji."""
    return bool(_JAPANESE.search(text))


def lemmas(word: str) -> list[str]:
    """The word and the stems its English inflection may hide (no dictionary needed:
    a wrong stem finds no gloss, or a gloss the corpus check then filters)."""
    out = [word]
    if word.endswith("ies") and len(word) > 4:
        out.append(word[:-3] + "y")
    if word.endswith("es") and len(word) > 3:
        out.append(word[:-2])
    if word.endswith("s") and len(word) > 3 and not word.endswith("ss"):
        out.append(word[:-1])
    if word.endswith("ed") and len(word) > 4:
        out += [word[:-2], word[:-1]]
    if word.endswith("ing") and len(word) > 5:
        out += [word[:-3], word[:-3] + "e"]
    return list(dict.fromkeys(out))


# The compact JMdict file (tools/build_jmdict.py): ``Gloss`` maps a one-word English
# gloss (or "to <verb>") to entries; ``Entry`` holds an entry's written forms in
# JMdict's order, each followed by its priority tags, and its glosses.
SEP, TAGS = "\x1f", "\x1e"
_ENTRIES_SQL = """
SELECT g.idseq, MAX(g.first), e.kanji, e.kana
FROM Gloss g JOIN Entry e ON e.idseq = g.idseq
WHERE g.word IN ({marks})
GROUP BY g.idseq ORDER BY g.idseq
"""


def jmdict_path() -> str:
    """The JMdict file shipped with bunko (JMdict/JMnedict, EDRDG, CC BY-SA 4.0: see
    ``bunko/data/JMDICT-LICENSE.txt``)."""
    return str(Path(__file__).resolve().parent.parent / "data" / "jmdict.sqlite")


def split_forms(forms: str | None) -> list[tuple[str, list[str]]]:
    """An ``Entry`` column's forms, in order, each with its priority tags."""
    out = []
    for item in (forms or "").split(SEP):
        if item:
            text, _, tags = item.partition(TAGS)
            out.append((text, tags.split(",") if tags else []))
    return out


class Dictionary:
    """JMdict's English glosses -> Japanese headwords, read from bunko's JMdict file.

    Opened on first use in each thread (SQLite reads pages on demand; the MCP server
    and the web app answer from worker threads, and an SQLite connection belongs to
    the thread that opened it); a lookup is one indexed query.
    """

    def __init__(self, path: str | None = None) -> None:
        self._path = path
        self._local = threading.local()
        self._unavailable = False

    def connection(self) -> sqlite3.Connection | None:
        """This thread's read-only connection to the dictionary; None (with one
        warning) when the file is missing or unreadable."""
        return self._connect()

    def _connect(self) -> sqlite3.Connection | None:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None and not self._unavailable:
            path = self._path or jmdict_path()
            try:
                db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
                db.execute("SELECT 1 FROM Gloss LIMIT 1")
            except sqlite3.Error as exc:
                log.warning("cannot read the JMdict file %s (%s): questions in another "
                            "language than the articles get no translated words; "
                            "reinstall bunko", path, exc)  # fmt: skip
                self._unavailable = True
                return None
            self._local.db = db
        return db

    def entries(self, word: str) -> list[tuple[str, float]]:
        """Japanese headwords glossed as ``word`` (or "to ``word``"), with their weight:
        commonness (JMdict priority tags) times ``LATER_SENSE`` when the gloss is not in
        the entry's first sense. The headword is the entry's first kanji form, or its
        first kana form when it has none."""
        return list(self._entries(word))

    @lru_cache(maxsize=4096)  # noqa: B019 (one dictionary per process, a few words a query)
    def _entries(self, word: str) -> tuple[tuple[str, float], ...]:
        db = self._connect()
        if db is None:
            return ()
        forms = lemmas(word)
        glosses = forms + [f"to {f}" for f in forms]
        sql = _ENTRIES_SQL.format(marks=",".join("?" * len(glosses)))
        out = []
        for _, first, kanji_forms, kana_forms in db.execute(sql, glosses):
            kanji, kana = split_forms(kanji_forms), split_forms(kana_forms)
            headword = (kanji or kana or [("", [])])[0][0]
            if not headword:
                continue
            tags = {t for _, ts in kanji + kana for t in ts}
            kind = "common" if tags & COMMON_TAGS else "tagged" if tags else "untagged"
            out.append((headword, PRIORITY[kind] * (1.0 if first else LATER_SENSE)))
        return tuple(out)


_dictionary: Dictionary | None = None


def dictionary() -> Dictionary:
    """The process's JMdict reader (built once, opened on first lookup)."""
    global _dictionary
    if _dictionary is None:
        _dictionary = Dictionary()
    return _dictionary


def translations(
    question: str,
    tokens: Sequence[str],
    known: Callable[[Sequence[str]], Mapping[str, float]],
    tokenize: Callable[[str], list[str]],
    lookup: Dictionary | None = None,
) -> dict[str, float]:
    """Japanese terms for the lexical side of a question without Japanese script.

    Args:
        question: the question text (one with kana or kanji gets nothing).
        tokens: its tokens, as the lexical retriever sees them.
        known: the corpus vocabulary: returns the idf of the tokens it knows
            (:meth:`Snapshot.idf`).
        tokenize: the index tokenizer, to split headwords as the corpus was split.
        lookup: the dictionary (default: the JMdict file shipped with bunko).

    Returns:
        ``{term: BM25 weight}`` for terms the corpus knows and the question lacks;
        empty for a Japanese question, or when every word is already known.
    """
    if is_japanese(question):
        return {}
    seen = known(tokens)
    per_word, _ = word_terms(tokens, known, tokenize, lookup)
    out: dict[str, float] = {}
    for per in per_word.values():
        for t, w in per.items():
            if t not in seen:
                out[t] = max(out.get(t, 0.0), w)
    return out


def word_terms(
    tokens: Sequence[str],
    known: Callable[[Sequence[str]], Mapping[str, float]],
    tokenize: Callable[[str], list[str]],
    lookup: Dictionary | None = None,
) -> tuple[dict[str, dict[str, float]], int]:
    """Per English content word the corpus does not know, its Japanese terms the corpus
    knows with their BM25 weights (see :func:`translations`); and the number of
    dictionary lookups spent."""
    seen = known(tokens)
    words = [
        t
        for t in dict.fromkeys(tokens)
        if t not in seen and t not in ENGLISH_STOP and _ENGLISH_WORD.fullmatch(t)
    ]
    if not words:
        return {}, 0
    lookup = lookup or dictionary()
    out: dict[str, dict[str, float]] = {}
    for word in words:
        per: dict[str, float] = {}
        for headword, weight in lookup.entries(word):
            terms = [t for t in tokenize(headword) if len(t) >= MIN_TERM_CHARS]
            # A headword counts only when the corpus knows all of it: 効率的 as 効率 + 的
            # is fine, a half-known compound would match only its generic part.
            if terms and len(known(terms)) == len(set(terms)):
                for t in terms:
                    per[t] = max(per.get(t, 0.0), weight)
        if not per:
            continue
        best = max(per.values())
        out[word] = {t: TRANSLATION_WEIGHT * w / best for t, w in per.items()}
    return out, len(words)
