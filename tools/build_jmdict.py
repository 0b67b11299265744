"""Build bunko's compact JMdict file, ``src/bunko/data/jmdict.sqlite``, from jamdict-data.

bunko reads four things from JMdict: English words -> Japanese headwords with their
priority tags, for English questions over Japanese articles
(:mod:`bunko.retrieval.expansion`, :func:`bunko.retrieval.translate.translations`);
Japanese words -> English glosses, for confidence
(:func:`bunko.retrieval.translate.glosses`); multi-word English glosses and romanised
JMnedict names -> written forms, for English questions' phrases and names
(:mod:`bunko.retrieval.crossling`). jamdict-data ships the whole of JMdict, JMnedict
and KANJIDIC2 with every column indexed (311 MB installed); this file holds only those
lookups (49 MB; 57 MB with every JMnedict type, ``--names all``).
``tests/test_jmdict_file.py`` checks that it gives the answers the jamdict-data tables
gave, word for word.

Tables (``\\x1f`` separates the items of a list, ``\\x1e`` a form from its tags):

- ``Gloss(word, idseq, first)``: an English gloss that is one word ("research"), or a
  verb's "to <word>", -> the entries that carry it; ``first``: in the entry's first
  sense. Glosses of several words never match a word lookup and are left out here.
- ``Entry(idseq, kanji, kana, glosses)``: an entry's written forms in JMdict's order,
  each with its priority tags (``研究\\x1eichi1,news1``), and all its English glosses.
- ``Form(text, idseq)``: every kanji and kana form -> its entries.
- ``Phrase(head, idseq, n)``: a JMdict gloss of several words, its parenthesised note
  dropped ("Science and Technology Agency (1956-2001)" -> "Science and Technology
  Agency"), -> the entries that carry it; ``n``: how many of the entry's glosses have
  that head (:func:`bunko.retrieval.crossling.phrase_for`).
- ``Name(head, idseq, n, form)``: a JMnedict translation, its note dropped the same way
  ("Kujou Michiie (1193-1252.4.1)" -> "Kujou Michiie"), -> the entries that carry it,
  each with its first written form (九条道家; kanji, else kana)
  (:func:`bunko.retrieval.crossling.names_for`). Only the JMnedict types chosen by
  ``--names`` (see ``NAME_TYPES``); ``meta.names`` lists them.
- ``meta``: source versions, the licence and the attribution.

Usage (jamdict-data is a test/dev dependency, not a runtime one):

    pip install jamdict-data
    python tools/build_jmdict.py                 # writes src/bunko/data/jmdict.sqlite
    python tools/build_jmdict.py --names all     # every JMnedict type (much larger)
    python tools/build_jmdict.py --names person,place   # chosen types

The data is JMdict and JMnedict, property of the Electronic Dictionary Research and
Development Group (EDRDG), used under CC BY-SA 4.0; see src/bunko/data/JMDICT-LICENSE.txt.
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import sys
from collections import defaultdict
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "bunko" / "data" / "jmdict.sqlite"
# JMnedict's types kept by default: the ones a factoid question names (people, places,
# surnames, organisations, works...). Left out: given names (fem, masc, given) and
# "unclass" (unclassified names), 300,000 entries between them, which a question's
# capitalised word matches mostly by chance (docs/NOTES-xdict.md has the measurements).
NAME_TYPES: dict[str, tuple[str, ...] | None] = {
    "none": (),
    "person": ("person",),
    "default": (
        "person", "place", "surname", "station", "organization", "company", "work",
        "product", "service", "character", "deity", "fiction", "event", "mythology",
        "object", "religion",
    ),
    "all": None,
}  # fmt: skip
SEP, TAGS = "\x1f", "\x1e"

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE Gloss (word TEXT NOT NULL, idseq INTEGER NOT NULL, first INTEGER NOT NULL,
                    PRIMARY KEY (word, idseq)) WITHOUT ROWID;
CREATE TABLE Entry (idseq INTEGER PRIMARY KEY, kanji TEXT, kana TEXT, glosses TEXT);
CREATE TABLE Form (text TEXT NOT NULL, idseq INTEGER NOT NULL,
                   PRIMARY KEY (text, idseq)) WITHOUT ROWID;
CREATE TABLE Phrase (head TEXT NOT NULL, idseq INTEGER NOT NULL, n INTEGER NOT NULL,
                     PRIMARY KEY (head, idseq)) WITHOUT ROWID;
CREATE TABLE Name (head TEXT NOT NULL, idseq INTEGER NOT NULL, n INTEGER NOT NULL, form TEXT,
                   PRIMARY KEY (head, idseq)) WITHOUT ROWID;
"""

ATTRIBUTION = (
    "JMdict and JMnedict, property of the Electronic Dictionary Research and Development "
    "Group (EDRDG, https://www.edrdg.org/), used in conformance with the Group's licence: "
    "Creative Commons Attribution-ShareAlike 4.0 (CC BY-SA 4.0). Copied from the "
    "jamdict-data package by bunko's tools/build_jmdict.py."
)

_ONE_WORD = re.compile(r"(?:to )?\S+")  # what a word lookup can match


def head(gloss: str) -> str | None:
    """What a lookup of ``gloss`` without parentheses matches: the gloss itself, or
    the gloss before its first parenthesised note ("Kanpō era (1741.2.27-1744.2.21)"
    -> "Kanpō era"); None when a "(" comes first elsewhere ("C(++)"), so that no
    lookup without parentheses can match it.

    bunko's lookups on jamdict-data matched ``text = s OR text LIKE s || ' (%'``;
    for an ``s`` without "(", that is exactly ``head(text) = s``."""
    i = gloss.find("(")
    if i < 0:
        return gloss
    return gloss[: i - 1] if i > 0 and gloss[i - 1] == " " else None


def _forms(db: sqlite3.Connection, table: str, tags: str) -> dict[int, list[str]]:
    """Each entry's forms in ID order (JMdict's order), with their priority tags."""
    tagged: dict[int, list[str]] = defaultdict(list)
    for kid, tag in db.execute(f"SELECT kid, text FROM j.{tags} WHERE text IS NOT NULL"):
        tagged[kid].append(tag)
    out: dict[int, list[str]] = defaultdict(list)
    last = -1
    rows = f"SELECT ID, idseq, text FROM j.{table} WHERE text IS NOT NULL ORDER BY ID"
    for kid, idseq, text in db.execute(rows):
        # Lookups order forms across entries by ID; the file orders them by entry, then
        # by position: the same order only while IDs follow the entries.
        if idseq < last:
            raise SystemExit(f"{table} IDs do not follow entry numbers ({idseq} after {last})")
        last = idseq
        out[idseq].append(text + (TAGS + ",".join(tagged[kid]) if kid in tagged else ""))
    return out


def build(source: str, out: Path, names: str = "default") -> dict[str, int]:
    """Write the compact file ``out`` from jamdict-data's database ``source``.

    Returns the row count of each table."""
    tmp = out.with_name(out.name + ".tmp")
    tmp.unlink(missing_ok=True)
    db = sqlite3.connect(tmp)
    db.executescript(SCHEMA)
    db.execute("ATTACH DATABASE ? AS j", (f"file:{source}?mode=ro",))
    has_meta = db.execute("SELECT 1 FROM j.sqlite_master WHERE name = 'meta'").fetchone()
    src_meta = dict(db.execute("SELECT key, value FROM j.meta")) if has_meta else {}
    meta = {
        "attribution": ATTRIBUTION,
        "licence": "CC BY-SA 4.0, https://creativecommons.org/licenses/by-sa/4.0/",
        "source": "jamdict-data " + src_meta.get("jmdict.version", "?"),
        "jmnedict.date": src_meta.get("jmnedict.date", "?"),
        "names": ",".join(_name_types(db, names)),
    }
    db.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())

    _check_order(db, "Sense")
    first_sense = dict(db.execute("SELECT idseq, MIN(ID) FROM j.Sense GROUP BY idseq"))
    sense_entry = dict(db.execute("SELECT ID, idseq FROM j.Sense"))
    glosses: dict[int, list[str]] = defaultdict(list)
    words: dict[tuple[str, int], int] = {}
    rows = "SELECT sid, text FROM j.SenseGloss WHERE text IS NOT NULL ORDER BY rowid"
    for sid, text in db.execute(rows):
        idseq = sense_entry[sid]
        glosses[idseq].append(text)
        if _ONE_WORD.fullmatch(text):
            key = (text, idseq)
            words[key] = max(words.get(key, 0), int(first_sense[idseq] == sid))
    kanji = _forms(db, "Kanji", "KJP")
    kana = _forms(db, "Kana", "KNP")

    def joined(forms: list[str] | None) -> str | None:
        return SEP.join(forms) if forms else None

    db.executemany("INSERT INTO Gloss VALUES (?, ?, ?)", ((w, s, f) for (w, s), f in words.items()))
    db.executemany(
        "INSERT INTO Entry VALUES (?, ?, ?, ?)",
        (
            (s, joined(kanji.get(s)), joined(kana.get(s)), joined(glosses.get(s)))
            for s in sorted(set(glosses) | set(kanji) | set(kana))
        ),
    )
    db.executemany(
        "INSERT OR IGNORE INTO Form VALUES (?, ?)",
        ((f.split(TAGS)[0], s) for forms in (kanji, kana) for s, fs in forms.items() for f in fs),
    )
    _copy_phrases(db)
    _copy_names(db, _name_types(db, names))
    db.commit()
    db.execute("DETACH DATABASE j")
    counts = {
        t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("Gloss", "Entry", "Form", "Phrase", "Name")
    }
    db.execute("VACUUM")
    db.close()
    os.replace(tmp, out)
    return counts


def _check_order(db: sqlite3.Connection, table: str) -> None:
    """Lookups on jamdict-data ordered rows by ``table``'s ID; the file orders them by
    entry number: the same order only while IDs follow the entries."""
    last = -1
    for (idseq,) in db.execute(f"SELECT idseq FROM j.{table} ORDER BY ID"):
        if idseq < last:
            raise SystemExit(f"{table} IDs do not follow entry numbers ({idseq} after {last})")
        last = idseq


def _heads(rows: list[tuple[int, str]]) -> dict[tuple[str, int], int]:
    """(head, entry) -> how many of the entry's glosses have that head."""
    out: dict[tuple[str, int], int] = defaultdict(int)
    for idseq, text in rows:
        h = head(text)
        if h:
            out[h, idseq] += 1
    return out


def _copy_phrases(db: sqlite3.Connection) -> None:
    rows = db.execute(
        "SELECT s.idseq, g.text FROM j.SenseGloss g JOIN j.Sense s ON s.ID = g.sid "
        "WHERE g.text LIKE '% %'"
    ).fetchall()
    heads = _heads(rows)
    db.executemany(
        "INSERT INTO Phrase VALUES (?, ?, ?)",
        ((h, s, n) for (h, s), n in sorted(heads.items()) if " " in h),
    )


def _name_types(db: sqlite3.Connection, names: str) -> list[str]:
    if names in NAME_TYPES:
        types = NAME_TYPES[names]
        if types is None:
            return [t for (t,) in db.execute("SELECT DISTINCT text FROM j.NETransType ORDER BY 1")]
        return list(types)
    return [t.strip() for t in names.split(",") if t.strip()]


def _copy_names(db: sqlite3.Connection, types: list[str]) -> None:
    if not types:
        return
    _check_order(db, "NETranslation")
    marks = ",".join("?" * len(types))
    rows = db.execute(
        "SELECT t.idseq, g.text FROM j.NETranslation t JOIN j.NETransGloss g ON g.tid = t.ID "
        "WHERE g.text IS NOT NULL AND t.idseq IN (SELECT t2.idseq FROM j.NETranslation t2 "
        f"JOIN j.NETransType y ON y.tid = t2.ID WHERE y.text IN ({marks}))",
        types,
    ).fetchall()
    heads = _heads(rows)
    form = {}
    for table in ("NEKana", "NEKanji"):  # the first kanji form, else the first kana one
        for idseq, text in db.execute(
            f"SELECT idseq, text FROM j.{table} WHERE ID IN "
            f"(SELECT MIN(ID) FROM j.{table} GROUP BY idseq)"
        ):
            if text:
                form[idseq] = text
    db.executemany(
        "INSERT INTO Name VALUES (?, ?, ?, ?)",
        ((h, s, n, form.get(s)) for (h, s), n in sorted(heads.items())),
    )


def table_sizes(path: Path) -> dict[str, int]:
    """Bytes per table, from SQLite's dbstat (empty where SQLite lacks it)."""
    db = sqlite3.connect(path)
    try:
        return dict(db.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY 1 ORDER BY 2 DESC"))
    except sqlite3.OperationalError:
        return {}
    finally:
        db.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--source", help="jamdict-data's jamdict.db (default: the installed one)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument(
        "--names",
        default="default",
        help="JMnedict types to copy: " + ", ".join(NAME_TYPES) + ", or a comma-separated "
        "list of types (person,place,...); default: the NAME_TYPES['default'] list",
    )
    args = ap.parse_args(argv)
    source = args.source
    if source is None:
        try:
            import jamdict_data  # type: ignore[import-untyped]
        except ImportError:
            print("jamdict-data is not installed: pip install jamdict-data", file=sys.stderr)
            return 1
        source = str(jamdict_data.JAMDICT_DB_PATH)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    counts = build(source, args.out, args.names)
    print(f"{args.out}: {args.out.stat().st_size / 1e6:.1f} MB")
    sizes = table_sizes(args.out)
    for table, size in sizes.items():
        print(f"  {table:24} {size / 1e6:6.1f} MB  {counts.get(table, '')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
