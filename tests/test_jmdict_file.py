"""The JMdict file shipped with bunko answers exactly as jamdict-data's database did.

bunko once read jamdict-data (311 MB installed) directly; it now ships the few tables
it reads (``src/bunko/data/jmdict.sqlite``, built by ``tools/build_jmdict.py``). The
lookups below are the ones bunko ran on jamdict-data until then (commit e28122d),
run on the real jamdict-data database, against bunko's lookups on the shipped file,
for thousands of English and Japanese words. jamdict-data is a test dependency
(``pip install -e '.[test]'``).
"""

from __future__ import annotations

import json
import random
import re
import sqlite3
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest

from bunko.retrieval import crossling, expansion, translate
from bunko.retrieval.expansion import COMMON_TAGS, LATER_SENSE, PRIORITY, Dictionary, lemmas

ARTICLES = Path(__file__).parent / "data" / "articles"
sys.path.insert(0, str(Path(__file__).parents[1] / "tools"))
import build_jmdict  # noqa: E402

# The lookups as they were on jamdict-data's tables (e28122d).
OLD_ENTRIES_SQL = """
SELECT s.idseq,
       MAX(s.ID = (SELECT MIN(f.ID) FROM Sense f WHERE f.idseq = s.idseq)),
       (SELECT text FROM Kanji k WHERE k.idseq = s.idseq ORDER BY k.ID LIMIT 1),
       (SELECT text FROM Kana k WHERE k.idseq = s.idseq ORDER BY k.ID LIMIT 1),
       (SELECT group_concat(p.text) FROM Kanji k JOIN KJP p ON p.kid = k.ID
         WHERE k.idseq = s.idseq),
       (SELECT group_concat(p.text) FROM Kana k JOIN KNP p ON p.kid = k.ID
         WHERE k.idseq = s.idseq)
FROM SenseGloss g JOIN Sense s ON s.ID = g.sid
WHERE g.text IN ({marks})
GROUP BY s.idseq
"""


def old_entries(db: sqlite3.Connection, word: str) -> list[tuple[str, float]]:
    forms = lemmas(word)
    glosses = forms + [f"to {f}" for f in forms]
    out = []
    sql = OLD_ENTRIES_SQL.format(marks=",".join("?" * len(glosses)))
    for _, first, kanji, kana, tags1, tags2 in db.execute(sql, glosses):
        headword = kanji or kana
        if not headword:
            continue
        tags = {t for t in f"{tags1 or ''},{tags2 or ''}".split(",") if t}
        kind = "common" if tags & COMMON_TAGS else "tagged" if tags else "untagged"
        out.append((headword, PRIORITY[kind] * (1.0 if first else LATER_SENSE)))
    return out


def old_translations(db: sqlite3.Connection, word: str) -> tuple[str, ...]:
    for form in translate._variants(word):
        rows = db.execute(
            """SELECT s.idseq, MIN(s.ID) FROM SenseGloss g JOIN Sense s ON g.sid = s.ID
               WHERE g.text IN (?, ?) GROUP BY s.idseq""",
            (form, f"to {form}"),
        ).fetchall()
        if rows:
            break
    else:
        return ()
    seqs = [r[0] for r in rows]
    marks = ",".join("?" * len(seqs))
    kanji = db.execute(
        f"""SELECT k.idseq, k.text, EXISTS(SELECT 1 FROM KJP p WHERE p.kid = k.ID)
            FROM Kanji k WHERE k.idseq IN ({marks}) ORDER BY k.ID""",
        seqs,
    ).fetchall()
    kana = db.execute(
        f"""SELECT n.idseq, n.text, EXISTS(SELECT 1 FROM KNP p WHERE p.kid = n.ID)
            FROM Kana n WHERE n.idseq IN ({marks}) ORDER BY n.ID""",
        seqs,
    ).fetchall()
    has_kanji = {r[0] for r in kanji}
    forms = [(not common, i, text) for i, (_, text, common) in enumerate(kanji)]
    forms += [
        (not common, len(kanji) + i, text)
        for i, (seq, text, common) in enumerate(kana)
        if seq not in has_kanji
    ]
    return tuple(dict.fromkeys(text for *_, text in sorted(forms)))[: translate.MAX_TERMS]


def old_glosses(db: sqlite3.Connection, term: str) -> frozenset[str]:
    seqs = [
        r[0]
        for r in db.execute(
            """SELECT idseq FROM Kanji WHERE text = ? UNION SELECT idseq FROM Kana WHERE text = ?
               ORDER BY 1 LIMIT ?""",
            (term, term, translate.MAX_ENTRIES),
        )
    ]
    if not seqs:
        return frozenset()
    marks = ",".join("?" * len(seqs))
    rows = db.execute(
        f"""SELECT g.text FROM Sense s JOIN SenseGloss g ON g.sid = s.ID
            WHERE s.idseq IN ({marks})""",
        seqs,
    ).fetchall()
    words = {w for (text,) in rows for w in translate._GLOSS_WORD.findall(text.lower())}
    return frozenset(w for w in words if len(w) > 2 and w not in translate.STOPWORDS)


@pytest.fixture(scope="module")
def jamdict() -> Iterator[sqlite3.Connection]:
    jamdict_data = pytest.importorskip("jamdict_data", reason="pip install -e '.[test]'")
    db = sqlite3.connect(f"file:{jamdict_data.JAMDICT_DB_PATH}?mode=ro", uri=True)
    yield db
    db.close()


def english_words(db: sqlite3.Connection) -> list[str]:
    """Words of the shipped articles, JMdict's one-word glosses (some inflected, some
    capitalised), and words no gloss has."""
    rng = random.Random(22)
    text = " ".join(p.read_text("utf-8") for p in sorted(ARTICLES.iterdir()))
    words = set(re.findall(r"[A-Za-z]+(?:[.\-+'][A-Za-z0-9]+)*", text))
    glossed = [t for (t,) in db.execute("SELECT DISTINCT text FROM SenseGloss") if " " not in t]
    glossed.sort()
    for word in rng.sample(glossed, 1500):
        words.add(word)
        words.add(word + rng.choice(["s", "es", "ed", "ing", "est"]))
        words.add(word.capitalize())
    words |= {"research", "trained", "studies", "mortgage", "Japan", "japan", "xyzzyq", "GPT-4.5"}
    return sorted(words)


def japanese_words(db: sqlite3.Connection) -> list[str]:
    rng = random.Random(22)
    forms = sorted({t for (t,) in db.execute("SELECT text FROM Kanji UNION SELECT text FROM Kana")})
    return [*rng.sample(forms, 2000), "温度", "研究", "住宅ローン", "の", "ない語彙"]


def test_english_lookups_match_jamdict(jamdict: sqlite3.Connection) -> None:
    words = english_words(jamdict)
    assert len(words) >= 2000
    shipped = Dictionary()  # the file in bunko/data
    translate.translations.cache_clear()
    found = 0
    for word in words:
        if word.isalpha() and word.islower():  # what the lexical expansion looks up
            assert shipped.entries(word) == old_entries(jamdict, word), word
        got = translate.translations(word)
        assert got == old_translations(jamdict, word), word
        found += bool(got)
    assert found > 1000  # most of the sample has a translation: the comparison means something


def test_japanese_lookups_match_jamdict(jamdict: sqlite3.Connection) -> None:
    terms = japanese_words(jamdict)
    translate.glosses.cache_clear()
    found = 0
    for term in terms:
        got = translate.glosses(term)
        assert got == old_glosses(jamdict, term), term
        found += bool(got)
    assert found > 1500
    assert "temperature" in translate.glosses("温度")


def test_shipped_file_keeps_its_attribution_and_names() -> None:
    path = Path(expansion.jmdict_path())
    licence = " ".join((path.parent / "JMDICT-LICENSE.txt").read_text("utf-8").split())
    assert "Electronic Dictionary Research and Development Group" in licence
    assert "CC BY-SA" in licence or "Attribution-ShareAlike" in licence
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    meta = dict(db.execute("SELECT key, value FROM meta"))
    assert "EDRDG" in meta["attribution"] and "CC BY-SA 4.0" in meta["licence"]
    rows = db.execute("SELECT form FROM Name WHERE head = ?", ("Kujou Michiie",)).fetchall()
    db.close()
    assert ("九条道家",) in rows


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=\[ ;]", r)[0].lower() for r in requirements}


def test_jamdict_data_is_a_test_dependency_only() -> None:
    import tomllib  # Python 3.11+, as CI runs

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text("utf-8"))
    assert "jamdict-data" not in _names(project["project"]["dependencies"])
    assert "jamdict-data" in _names(project["project"]["optional-dependencies"]["test"])
    assert "data/jmdict.sqlite" in project["tool"]["setuptools"]["package-data"]["bunko"]


# crossling's lookups as they were on jamdict-data's tables (branch xling, 1a07f51),
# names restricted to the JMnedict types the shipped file keeps (its meta "names").
def old_names_for(db: sqlite3.Connection, romaji: str, kept: frozenset[int]) -> tuple[str, ...]:
    """xling's query, its LIMIT 20 applied after keeping the entries of ``kept``."""
    words = romaji.split()
    spellings = [""]
    for w in words:
        spellings = [f"{s} {v}".strip() for s in spellings for v in crossling._long_vowels(w)][:8]
    out: list[str] = []
    for s in dict.fromkeys(spellings):
        rows = db.execute(
            """SELECT t.idseq,
                      (SELECT text FROM NEKanji k WHERE k.idseq = t.idseq ORDER BY k.ID LIMIT 1),
                      (SELECT text FROM NEKana k WHERE k.idseq = t.idseq ORDER BY k.ID LIMIT 1)
               FROM NETransGloss g JOIN NETranslation t ON t.ID = g.tid
               WHERE g.text = ? OR (g.text >= ? AND g.text < ?)
               ORDER BY t.idseq""",
            (s, f"{s} (", f"{s} )"),
        ).fetchall()
        for _, kanji, kana in [r for r in rows if r[0] in kept][:20]:
            form = kanji or kana
            if form and form not in out:
                out.append(form)
    return tuple(out)


def old_phrase_for(db: sqlite3.Connection, phrase: str) -> tuple[str, ...]:
    out: list[str] = []
    for kanji, kana in db.execute(
        """SELECT (SELECT text FROM Kanji k WHERE k.idseq = s.idseq ORDER BY k.ID LIMIT 1),
                  (SELECT text FROM Kana k WHERE k.idseq = s.idseq ORDER BY k.ID LIMIT 1)
           FROM SenseGloss g JOIN Sense s ON s.ID = g.sid
           WHERE g.text = ? OR (g.text >= ? AND g.text < ?)
           ORDER BY s.ID LIMIT 20""",
        (phrase, f"{phrase} (", f"{phrase} )"),
    ):
        form = kanji or kana
        if form and form not in out:
            out.append(form)
    return tuple(out)


def question_spans() -> list[str]:
    """Every span of up to crossling.MAX_SPAN words of the English eval questions, in
    the spellings crossling looks up (as asked, lower case, long vowels folded, and
    "<word> era"): a superset of the name and phrase lookups the benchmark makes."""
    eval_file = Path(__file__).parents[1] / "eval" / "xling-en.jsonl"
    spans: set[str] = set()
    for line in eval_file.read_text("utf-8").splitlines():
        text = unicodedata.normalize("NFC", json.loads(line)["en"])
        words = [crossling._POSSESSIVE.sub("", m.group()).strip("'’-")
                 for m in crossling._WORD.finditer(text)]  # fmt: skip
        for n in range(1, crossling.MAX_SPAN + 1):
            for i in range(len(words) - n + 1):
                span = words[i : i + n]
                english = " ".join(span)
                folded = " ".join(crossling._long_vowels(w)[0] for w in span)
                spans |= {english, english.lower(), folded}
                if n == 1:
                    spans |= {f"{v} era" for v in (span[0], crossling._long_vowels(span[0])[0])}
    return sorted(s for s in spans if s)


def _heads(db: sqlite3.Connection, sql: str, k: int) -> list[str]:
    rng = random.Random(23)
    texts = sorted({t for (t,) in db.execute(sql)})
    heads = {h for t in rng.sample(texts, k) if (h := build_jmdict.head(t))}
    return sorted(heads)


def test_crossling_lookups_match_jamdict(jamdict: sqlite3.Connection) -> None:
    path = Path(expansion.jmdict_path())
    shipped = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    types = dict(shipped.execute("SELECT key, value FROM meta"))["names"].split(",")
    shipped.close()
    assert {"person", "place", "surname", "organization", "work"} <= set(types)
    marks = ",".join("?" * len(types))
    kept = frozenset(
        i
        for (i,) in jamdict.execute(
            "SELECT DISTINCT t.idseq FROM NETranslation t JOIN NETransType y ON y.tid = t.ID "
            f"WHERE y.text IN ({marks})",
            types,
        )
    )
    spans = question_spans()
    names = _heads(
        jamdict,
        "SELECT g.text FROM NETransGloss g JOIN NETranslation t ON t.ID = g.tid JOIN "
        "NETransType y ON y.tid = t.ID WHERE y.text IN ('person', 'place', 'organization')",
        1500,
    )
    phrases = _heads(jamdict, "SELECT text FROM SenseGloss WHERE text LIKE '% %'", 1500)
    assert len(spans) > 5000 and len(names) > 1000 and len(phrases) > 1000
    crossling.names_for.cache_clear()
    crossling.phrase_for.cache_clear()
    found_names = found_phrases = 0
    for text in [*spans, *names, "Kujō Michiie", "Kujo Michiie", "Tokyo"]:
        got = crossling.names_for(text)
        assert got == old_names_for(jamdict, text, kept), text
        found_names += bool(got)
    for text in [*spans, *phrases, "Kanpō era", "Science and Technology Agency"]:
        if " " not in text:
            continue  # phrase_for is for several words; one word goes to the Gloss table
        got = crossling.phrase_for(text)
        assert got == old_phrase_for(jamdict, text), text
        found_phrases += bool(got)
    assert found_names > 1000 and found_phrases > 1000  # the comparison means something
    assert crossling.names_for("Kujō Michiie")[0] == "九条道家"
    assert crossling.phrase_for("Kanpō era") == ("寛保",)
