"""Tune the hybrid fusion on the product's own candidate lists (tuning sets only).

For each question, Shelf.candidates gives the dense list (re-ranked with sentence
vectors) and the BM25 list once; every fusion variant is then scored on them.

    python benchmarks/tune_fusion.py --datasets dev-qa,jsquad-valid --sample 1000
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

from bunko import search
from common import Task, devqa_task, metrics, squad_task, table


def variants() -> list[tuple[str, str, float, float]]:
    out = [("dense", "dense", 0.0, 1.0), ("lexical", "lexical", 1.0, 1.0)]
    for w in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7):
        for p in (0.0, 1.0, 2.0, 3.0):
            out.append((f"convex w={w}·cov^{p:g}", "convex", w, p))
    for w in (0.5, 0.7):
        out.append((f"rrf w={w}·cov", "rrf", w, 1.0))
    return out


def run(task: Task) -> list[tuple[str, dict[str, float]]]:
    cands = []
    loaded = task.shelf.loaded()
    for it in task.items:
        toks = task.shelf.tokenizer.tokens(it.question)
        dense, lexical, _, _ = task.shelf.candidates(it.question, toks, "hybrid", 50)
        cands.append((dense, lexical, loaded.coverage(toks)))
    rows = []
    for name, method, w, p in variants():
        ranked = []
        for dense, lexical, cov in cands:
            if method == "dense":
                ranked.append([c for c, _ in dense[:10]])
            elif method == "lexical":
                ranked.append([c for c, _ in lexical[:10]])
            else:
                hits = search.fuse(dense, lexical, w * cov**p, 10, method)  # type: ignore[arg-type]
                ranked.append([h.chunk_id for h in hits])
        rows.append((name, metrics(ranked, task.items)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="dev-qa,jsquad-valid")
    ap.add_argument("--sample", type=int, default=1000)
    ap.add_argument("--smoke", action="store_true", help="dev-qa, 3 questions a language (CI)")
    args = ap.parse_args()
    if args.smoke:
        args.datasets = "dev-qa"
    for name in args.datasets.split(","):
        if name == "dev-qa":
            task = devqa_task(*(("smoke", None, 3) if args.smoke else ()))
            for lang in ("ja", "en"):
                sub = Task(f"dev-qa-{lang}", task.shelf, [i for i in task.items if i.lang == lang])
                print(f"\n## {sub.name}\n" + table(run(sub), ["R@1", "R@5", "MRR@10"]), flush=True)
        else:
            task = squad_task(name, args.sample, index_name="index")
            print(f"\n## {name}\n" + table(run(task), ["R@1", "R@5", "MRR@10"]), flush=True)


if __name__ == "__main__":
    main()
