"""Build bunko's compact JMdict file, ``src/bunko/data/jmdict.sqlite``, from jamdict-data.

bunko reads three things from JMdict: English words -> Japanese headwords with their
priority tags, for English questions over Japanese articles
(:mod:`bunko.retrieval.expansion`, :func:`bunko.retrieval.translate.translations`),
and Japanese words -> English glosses, for confidence
(:func:`bunko.retrieval.translate.glosses`). jamdict-data ships the whole of JMdict,
JMnedict and KANJIDIC2 with every column indexed (311 MB installed); this file holds
only those lookups (about 30 MB). ``tests/test_jmdict_file.py`` checks that it gives
the answers the jamdict-data tables gave, word for word.

Tables (``\\x1f`` separates the items of a list, ``\\x1e`` a form from its tags):

- ``Gloss(word, idseq, first)``: an English gloss that is one word ("research"), or a
  verb's "to <word>", -> the entries that carry it; ``first``: in the entry's first
  sense. Glosses of several words never match a word lookup and are left out here.
- ``Entry(idseq, kanji, kana, glosses)``: an entry's written forms in JMdict's order,
  each with its priority tags (``研究\\x1eichi1,news1``), and all its English glosses.
- ``Form(text, idseq)``: every kanji and kana form -> its entries.
- ``Name(key, idseq, text)`` and ``NameEntry(idseq, kanji, kana, types)``: JMnedict's
  person names, romanised ("Kujou Michiie (1193-1252.4.1)", folded key
  "kujo michiie") -> written forms (九条道家). Unused so far; kept for matching names.
- ``meta``: source versions, the licence and the attribution.

Usage (jamdict-data is a test/dev dependency, not a runtime one):

    pip install jamdict-data
    python tools/build_jmdict.py                 # writes src/bunko/data/jmdict.sqlite
    python tools/build_jmdict.py --names all     # every JMnedict entry (much larger)

The data is JMdict and JMnedict, property of the Electronic Dictionary Research and
Development Group (EDRDG), used under CC BY-SA 4.0; see src/bunko/data/JMDICT-LICENSE.txt.
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import sys
import unicodedata
from collections import defaultdict
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "bunko" / "data" / "jmdict.sqlite"
NAME_TYPES: dict[str, tuple[str, ...] | None] = {"none": (), "person": ("person",), "all": None}
SEP, TAGS = "\x1f", "\x1e"

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE Gloss (word TEXT NOT NULL, idseq INTEGER NOT NULL, first INTEGER NOT NULL,
                    PRIMARY KEY (word, idseq)) WITHOUT ROWID;
CREATE TABLE Entry (idseq INTEGER PRIMARY KEY, kanji TEXT, kana TEXT, glosses TEXT);
CREATE TABLE Form (text TEXT NOT NULL, idseq INTEGER NOT NULL,
                   PRIMARY KEY (text, idseq)) WITHOUT ROWID;
CREATE TABLE Name (key TEXT NOT NULL, idseq INTEGER NOT NULL, text TEXT NOT NULL,
                   PRIMARY KEY (key, idseq, text)) WITHOUT ROWID;
CREATE TABLE NameEntry (idseq INTEGER PRIMARY KEY, kanji TEXT, kana TEXT, types TEXT);
"""

ATTRIBUTION = (
    "JMdict and JMnedict, property of the Electronic Dictionary Research and Development "
    "Group (EDRDG, https://www.edrdg.org/), used in conformance with the Group's licence: "
    "Creative Commons Attribution-ShareAlike 4.0 (CC BY-SA 4.0). Copied from the "
    "jamdict-data package by bunko's tools/build_jmdict.py."
)

_ONE_WORD = re.compile(r"(?:to )?\S+")  # what a word lookup can match
_DATES = re.compile(r"\s*\([^)]*\)")
_FOLDS = (("ou", "o"), ("uu", "u"), ("oo", "o"))  # long vowels as JMnedict spells them


def name_key(text: str) -> str:
    """A romanised name folded for matching: "Kujou Michiie (1193-1252.4.1)" and
    "Kujō Michiie" and "Kujo Michiie" all give "kujo michiie" (dates dropped; macrons
    and the long vowels ou, uu, oo folded; hyphens as spaces; lower case). Fold a
    name the same way before looking it up."""
    text = unicodedata.normalize("NFKD", _DATES.sub("", text))
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    for long, short in _FOLDS:
        text = text.replace(long, short)
    return " ".join(text.replace("-", " ").split())


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


def build(source: str, out: Path, names: str = "person") -> dict[str, int]:
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
        "names": names,
    }
    db.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())

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
    types = NAME_TYPES[names]
    if types != ():
        _copy_names(db, types)
    db.commit()
    db.execute("DETACH DATABASE j")
    counts = {
        t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("Gloss", "Entry", "Form", "Name", "NameEntry")
    }
    db.execute("VACUUM")
    db.close()
    os.replace(tmp, out)
    return counts


def _copy_names(db: sqlite3.Connection, types: tuple[str, ...] | None) -> None:
    keep = "SELECT DISTINCT t.idseq FROM j.NETranslation t"
    params: list[str] = []
    if types:
        marks = ",".join("?" * len(types))
        keep += f" JOIN j.NETransType y ON y.tid = t.ID WHERE y.text IN ({marks})"
        params = list(types)
    db.execute(f"CREATE TEMP TABLE keep AS {keep}", params)
    rows = db.execute(
        "SELECT DISTINCT t.idseq, g.text FROM j.NETranslation t JOIN j.NETransGloss g "
        "ON g.tid = t.ID WHERE t.idseq IN (SELECT idseq FROM keep) AND g.text IS NOT NULL"
    ).fetchall()
    db.executemany(
        "INSERT OR IGNORE INTO Name VALUES (?, ?, ?)", ((name_key(t), s, t) for s, t in rows)
    )
    per: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for table, col in (("NEKanji", "kanji"), ("NEKana", "kana")):
        for idseq, text in db.execute(
            f"SELECT idseq, text FROM j.{table} WHERE idseq IN (SELECT idseq FROM keep) "
            "AND text IS NOT NULL ORDER BY ID"
        ):
            per[idseq][col].append(text)
    for idseq, text in db.execute(
        "SELECT DISTINCT t.idseq, y.text FROM j.NETranslation t JOIN j.NETransType y "
        "ON y.tid = t.ID WHERE t.idseq IN (SELECT idseq FROM keep) ORDER BY t.ID"
    ):
        per[idseq]["types"].append(text)
    db.executemany(
        "INSERT INTO NameEntry VALUES (?, ?, ?, ?)",
        (
            (s, SEP.join(f["kanji"]) or None, SEP.join(f["kana"]) or None, ",".join(f["types"]))
            for s, f in sorted(per.items())
        ),
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
        choices=sorted(NAME_TYPES),
        default="person",
        help="JMnedict entries to copy: person names (default), all, or none",
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
