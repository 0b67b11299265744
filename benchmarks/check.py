"""The check set: questions over the shipped corpus that no figure was tuned on.

    python benchmarks/check.py                 # all 40 + 30 questions -> results/check.json
    python benchmarks/check.py --against DIR   # also another checkout's src/, side by side
    python benchmarks/check.py --smoke         # three a group (CI)

``eval/check-qa.jsonl`` (20 Japanese + 20 English answerable, each with an evidence
string written in the article) and ``eval/check-unanswerable.jsonl`` (15 + 15 questions
on the corpus's topics that it does not answer: "Who founded Anthropic?" over an article
that names Anthropic) were written by hand after the answer stage was built, from other
facts than eval/dev-qa.jsonl. They are a report, never a tuning set: nothing is fitted or
chosen on them (eval/CHECK.md). Per language: MRR@10 and hit@1 (a passage holding the
evidence), answered (the query's own ``answerable``), highlight (the first passage holding
the evidence highlights it) and abstained (unanswerable questions the query refuses).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unicodedata
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
EVAL = REPO / "eval"
SETS = ("check-qa.jsonl", "check-unanswerable.jsonl")


def nfkc(s: str) -> str:
    return unicodedata.normalize("NFKC", s)


def questions(smoke: bool) -> list[dict[str, Any]]:
    rows = [json.loads(line) for f in SETS for line in (EVAL / f).read_text("utf-8").splitlines()
            if line.strip()]  # fmt: skip
    if smoke:
        seen: dict[tuple[str, bool], int] = {}
        kept = []
        for r in rows:
            key = (r["lang"], r.get("answerable", True))
            seen[key] = seen.get(key, 0) + 1
            if seen[key] <= 3:
                kept.append(r)
        rows = kept
    return rows


def run(corpus: Path, smoke: bool) -> dict[str, Any]:
    """Index a copy of ``corpus`` and ask every question (this process's bunko)."""
    from bunko.api import Shelf
    from bunko.config import Settings

    home = Path(tempfile.mkdtemp(prefix="bunko-check-"))
    try:
        shutil.copytree(corpus, home / "corpus")
        shelf = Shelf(Settings.resolve(corpus=home / "corpus", index=home / "index"))
        shelf.index()
        figures: dict[str, Any] = {}
        rows = []
        for lang in ("ja", "en"):
            m = {
                "n": 0,
                "answered": 0,
                "hit1": 0,
                "rr": 0.0,
                "highlight": 0,
                "un": 0,
                "abstained": 0,
            }
            for r in (r for r in questions(smoke) if r["lang"] == lang):
                res = shelf.query(r["question"], k=10, update=False)
                top = round(res.passages[0].confidence, 3) if res.passages else None
                if not r.get("answerable", True):
                    m["un"] += 1
                    m["abstained"] += not res.answerable
                    rows.append({"id": r["id"], "answerable": res.answerable, "confidence": top})
                    continue
                ev = [nfkc(e) for e in r["evidence"]]
                at = next((i for i, p in enumerate(res.passages)
                           if any(e in nfkc(p.text) for e in ev)), None)  # fmt: skip
                m["n"] += 1
                m["answered"] += res.answerable
                if at is not None:
                    m["rr"] += 1 / (at + 1)
                    m["hit1"] += at == 0
                    m["highlight"] += any(e in nfkc(res.passages[at].highlight) for e in ev)
                rows.append({"id": r["id"], "answerable": res.answerable, "confidence": top,
                             "rank": None if at is None else at + 1})  # fmt: skip
            n, u = max(m["n"], 1), max(m["un"], 1)
            figures[lang] = {
                "answerable": m["n"], "unanswerable": m["un"],
                "MRR@10": round(m["rr"] / n, 3), "hit@1": round(m["hit1"] / n, 3),
                "answered": round(m["answered"] / n, 3), "highlight": round(m["highlight"] / n, 3),
                "abstained": round(m["abstained"] / u, 3),
            }  # fmt: skip
        return {"figures": figures, "questions": rows}
    finally:
        shutil.rmtree(home, ignore_errors=True)


def table(results: dict[str, dict[str, Any]]) -> str:
    cols = ("MRR@10", "hit@1", "answered", "highlight", "abstained")
    out = ["| code | lang | " + " | ".join(cols) + " |", "|---" * (len(cols) + 2) + "|"]
    for name, res in results.items():
        for lang, f in res["figures"].items():
            out.append(f"| {name} | {lang} | " + " | ".join(f"{f[c]:.3f}" for c in cols) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", help="another checkout: its src/ is run the same way")
    ap.add_argument("--corpus", default=str(REPO / "corpus"))
    ap.add_argument("--smoke", action="store_true", help="three questions a group")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if a.child:  # one checkout's run, printed as JSON for the parent
        print(json.dumps(run(Path(a.corpus), a.smoke)))
        return
    results: dict[str, dict[str, Any]] = {}
    trees = {"this": REPO / "src"}
    if a.against:
        trees = {"against": Path(a.against).resolve() / "src", **trees}
    for name, src in trees.items():
        env = {**os.environ, "PYTHONPATH": str(src)}
        cmd = [sys.executable, __file__, "--child", "--corpus", a.corpus]
        out = subprocess.run(cmd + (["--smoke"] if a.smoke else []), env=env, check=True,
                             capture_output=True, text=True).stdout  # fmt: skip
        results[name] = json.loads(out.strip().splitlines()[-1])
    print(table(results))
    if a.smoke and not a.out:
        return
    path = Path(a.out) if a.out else REPO / "benchmarks" / "results" / "check.json"
    path.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", "utf-8")
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
