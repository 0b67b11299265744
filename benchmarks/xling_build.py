"""Assemble ``eval/xling-*.jsonl`` from the picked questions and the hand translations.

The translations were written by hand (no machine translation) into a
``key<TAB>English`` file per batch; ``SKIP`` marks a question left out
(wordplay, a reading question, or too vague without its paragraph).

    python benchmarks/xling_build.py PICKED.tsv TRANSLATIONS.tsv...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

EVAL = Path(__file__).resolve().parents[1] / "eval"


def main(picked: str, *translations: str) -> None:
    rows = {}
    for line in Path(picked).read_text("utf-8").splitlines():
        f = line.split("\t")
        rows[f[0]] = f
    en: dict[str, str] = {}
    for path in translations:
        for line in Path(path).read_text("utf-8").splitlines():
            if line.strip():
                key, text = line.split("\t")
                assert key not in en, key
                en[key] = text.strip()
    answerable: list[dict[str, object]] = []
    held: list[dict[str, object]] = []
    for key in sorted(en):
        if en[key] == "SKIP":
            continue
        _, _, tag, name, title, _, qid, ja, answer = rows[key][:9]
        short = "jv" if name == "jsquad-valid" else "jq"
        d: dict[str, object] = {"id": f"x{short}-{qid}", "set": name, "qid": qid, "article": title}
        d |= {"ja": ja.strip(), "en": en[key], "answer": answer}
        if tag == "HELD":
            held.append(d | {"held_out": True})
        else:
            answerable.append(d)
    for name, items in (("xling-en.jsonl", answerable), ("xling-en-unanswerable.jsonl", held)):
        with (EVAL / name).open("w", encoding="utf-8") as out:
            for row in sorted(items, key=lambda r: (r["set"] != "jsquad-valid", str(r["id"]))):
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(name, len(items), file=sys.stderr)


if __name__ == "__main__":
    main(*sys.argv[1:])
