"""English words to Japanese terms and back, looked up in JMdict.

A question written in English over Japanese articles (or in Japanese over English
ones) shares almost no words with them, so the word-coverage signal of confidence
(:mod:`bunko.retrieval.confidence`) reads nothing for it. Looking each content
word up in JMdict (its English glosses, in the compact file shipped with bunko,
built by ``tools/build_jmdict.py``) gives the words a passage in the other language
would use: "mortgage" -> 住宅ローン, 抵当; 温度 -> temperature.

The dictionary is that SQLite file, opened read-only through
:class:`bunko.retrieval.expansion.Dictionary` (one connection per thread); a
gloss lookup is an indexed equality query (about a millisecond). When the file
cannot be read, lookups return nothing and a warning says once what to do.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite3


MAX_TERMS = 40  # per English word: the commonest spellings come first
# Function words and question words: they carry no topic, and their dictionary
# entries (何, どう, ...) are everywhere.
_STOPWORD_TEXT = """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing done down during each
    few for from further had has have having he her here hers him his how i if in into is it
    its itself just least less like main many may me might more most much must my no nor not
    now of off on once one only or other our out over own per said same say says she should
    so some such than that the their them then there these they this those through to too
    under until up upon us used very was we were what when where which while who whom whose
    why will with within would yet you your about according among
    kind kinds type types way ways thing things example examples name names called"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def _db() -> sqlite3.Connection | None:
    """This thread's connection to JMdict (shared with :mod:`bunko.retrieval.expansion`)."""
    from bunko.retrieval.expansion import dictionary

    return dictionary().connection()


def available() -> bool:
    """Whether the dictionary can be read."""
    return _db() is not None


def _variants(word: str) -> list[str]:
    """The word as written ("Japan": 日本; "japan" is lacquer), then lower-cased with
    its plural, past and -ing forms undone (:func:`expansion.lemmas`), then -est."""
    from bunko.retrieval.expansion import lemmas

    low = word.lower()
    out = [word, *lemmas(low)]
    if low.endswith("est") and len(low) > 5:
        out += [low[:-3], low[:-3] + "e"]
    return list(dict.fromkeys(out))


@lru_cache(maxsize=4096)
def translations(word: str) -> tuple[str, ...]:
    """Japanese headwords whose English gloss is ``word`` (or, failing that, a dictionary
    form of it; or "to <word>" for a verb), common spellings first; () when there is
    none or no dictionary."""
    con = _db()
    if con is None:
        return ()
    from bunko.retrieval.expansion import split_forms

    for form in _variants(word):
        rows = con.execute(
            """SELECT e.idseq, e.kanji, e.kana FROM Gloss g JOIN Entry e ON e.idseq = g.idseq
               WHERE g.word IN (?, ?) GROUP BY g.idseq ORDER BY g.idseq""",
            (form, f"to {form}"),
        ).fetchall()
        if rows:
            break
    else:
        return ()
    # Entries in JMdict's order, their forms in order: common (priority-marked) spellings
    # first; kana only for entries written without kanji.
    kanji = [(text, bool(tags)) for _, k, _ in rows for text, tags in split_forms(k)]
    kana = [(text, bool(tags)) for _, k, n in rows if not k for text, tags in split_forms(n)]
    forms = [(not common, i, text) for i, (text, common) in enumerate(kanji + kana)]
    return tuple(dict.fromkeys(text for *_, text in sorted(forms)))[:MAX_TERMS]


_GLOSS_WORD = re.compile(r"[a-z][a-z\-]+")
MAX_ENTRIES = 4  # per Japanese word: its first entries, the commoner readings


@lru_cache(maxsize=4096)
def glosses(term: str) -> frozenset[str]:
    """English content words of the glosses of a Japanese word (温度 -> temperature),
    from its first entries; empty when there is none or no dictionary."""
    con = _db()
    if con is None or not term:
        return frozenset()
    from bunko.retrieval.expansion import SEP

    seqs = [
        r[0]
        for r in con.execute(
            "SELECT idseq FROM Form WHERE text = ? ORDER BY idseq LIMIT ?", (term, MAX_ENTRIES)
        )
    ]
    if not seqs:
        return frozenset()
    marks = ",".join("?" * len(seqs))
    rows = con.execute(f"SELECT glosses FROM Entry WHERE idseq IN ({marks})", seqs)
    texts = [text for (joined,) in rows for text in (joined or "").split(SEP)]
    words = {w for text in texts for w in _GLOSS_WORD.findall(text.lower())}
    return frozenset(w for w in words if len(w) > 2 and w not in STOPWORDS)


@lru_cache(maxsize=1)
def _lemmatizer() -> Any:
    from bunko.text import Tokenizer

    return Tokenizer("lemma", drop_function_words=True)


def japanese_words(question: str) -> list[str]:
    """The question's content words in dictionary form (particles and auxiliaries dropped)."""
    return list(dict.fromkeys(_lemmatizer().tokens(question)))
