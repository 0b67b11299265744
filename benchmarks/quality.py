"""Retrieval quality of bunko's own query path on public Japanese QA sets and dev-qa.

Each dataset's paragraphs become one corpus folder (one file each), indexed once
with bunko's ingestion, chunker and default model and cached under
benchmarks/.cache/. A hit is a retrieved chunk of the question's own paragraph
that contains the answer span (dev-qa: a chunk containing an evidence string).

    python benchmarks/quality.py                     # JSQuAD valid, JaQuAD dev, dev-qa
    python benchmarks/quality.py --heldout           # JSQuAD test v1.3, once, at the end
    python benchmarks/quality.py --sample 0          # all questions
    python benchmarks/quality.py --abstention        # abstention (see abstention.py)
    python benchmarks/quality.py --abstention --smoke

Prints markdown tables and writes benchmarks/results/quality.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # single queries: one thread is fastest here

from bunko.types import MODES
from common import REPO, Item, Task, all_chunks, devqa_task, metrics, nfkc, squad_task, table

COLS = ["R@1", "R@5", "R@10", "MRR@10", "nDCG@10"]


def evaluate(
    task: Task, items: list[Item], modes: tuple[str, ...] = MODES
) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for mode in modes:
        t0 = time.perf_counter()
        ranked: list[list[int]] = []
        highlight_ok = highlight_text = hits = 0
        for it in items:
            result = task.shelf.query(it.question, k=10, mode=mode)
            ids = [_passage_id(task, p.citation, it.relevant) for p in result.passages]
            ranked.append(ids)
            first = next(
                (p for p, cid in zip(result.passages, ids, strict=True) if cid in it.relevant), None
            )
            if first is not None:
                hits += 1
                hs, he = first.highlight_span
                hl = nfkc(first.highlight)
                holds = any(e in hl for e in it.evidence)
                highlight_ok += holds or any(hs <= s and e <= he for s, e in it.spans)
                # The answer's text anywhere in the highlight (JSQuAD answers often
                # recur in the paragraph; the strict count wants the marked span).
                cs = first.citation.char_start
                answers = [nfkc(first.text[s - cs : e - cs]) for s, e in it.spans
                           if cs <= s and e <= first.citation.char_end]  # fmt: skip
                highlight_text += holds or any(a and a in hl for a in answers)
        m = metrics(ranked, items)
        m["ms/query"] = 1000 * (time.perf_counter() - t0) / max(1, len(items))
        m["highlight"] = highlight_ok / hits if hits else 0.0
        m["highlight_text"] = highlight_text / hits if hits else 0.0
        out[mode] = m
    return out


_ids: dict[tuple[str, str, int], int] = {}
_spans: dict[tuple[str, str], list[tuple[int, int, int]]] = {}


def _passage_id(task: Task, c: Any, relevant: set[int]) -> int:
    """The chunk a passage stands for: a relevant chunk inside its span if there is one
    (a passage may join neighbouring chunks, retrieval/passages.py), else its first."""
    _chunk_id(task, c.source, c.char_start)  # fills _spans for this task
    inside = [
        cid
        for start, end, cid in _spans[(task.name, c.source)]
        if start >= c.char_start and end <= c.char_end
    ]
    return next((i for i in inside if i in relevant), None) or _chunk_id(
        task, c.source, c.char_start
    )


def _chunk_id(task: Task, source: str, char_start: int) -> int:
    key = (task.name, source, char_start)
    if (task.name, source) not in _spans:
        for row in all_chunks(task.shelf):
            _ids[(task.name, row.source, row.char_start)] = row.id
            _spans.setdefault((task.name, row.source), []).append(
                (row.char_start, row.char_end, row.id)
            )
    return _ids[key]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="jsquad-valid,jaquad-dev,dev-qa")
    ap.add_argument("--heldout", action="store_true", help="run JSQuAD test v1.3 only")
    ap.add_argument("--sample", type=int, default=1000, help="questions per dataset (0: all)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated modes to run")
    ap.add_argument("--abstention", action="store_true", help="the abstention benchmark")
    ap.add_argument("--fit", action="store_true", help="with --abstention: fit confidence")
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="tiny and quick (CI): dev-qa, 3 questions a language; "
        "with --abstention, a tiny abstention run",
    )
    ap.add_argument("--articles", type=int, default=None, help="with --abstention: JSQuAD "
                    "articles to use (a fixed random subset; default all)")  # fmt: skip
    args = ap.parse_args()
    if args.abstention:
        import abstention

        out = Path(args.out) if args.out else REPO / "benchmarks/results/abstention.json"
        abstention.main(
            args.sample or None, args.smoke, args.fit, None if args.smoke else out, args.articles
        )
        return
    if args.smoke:
        args.datasets, args.out = "dev-qa", args.out or str(Path(tempfile.mkdtemp()) / "q.json")
    modes = tuple(args.modes.split(","))
    names = ["jsquad-test"] if args.heldout else args.datasets.split(",")
    size = args.sample or None
    report: dict[str, Any] = {"sample": size, "seed": 0}
    for name in names:
        if name == "dev-qa":
            task = devqa_task(*(("smoke", None, 3) if args.smoke else ()))
            for lang in ("ja", "en"):
                items = [i for i in task.items if i.lang == lang]
                res = evaluate(Task(f"dev-qa-{lang}", task.shelf, items), items, modes)
                report[f"dev-qa-{lang}"] = res
                _print(f"dev-qa {lang} ({len(items)} questions)", res, [*COLS, "highlight"])
        else:
            task = squad_task(name, size, index_name="index")
            res = evaluate(task, task.items, modes)
            report[name] = res
            _print(
                f"{name} ({len(task.items)} questions)",
                res,
                [*COLS, "highlight", "highlight_text", "ms/query"],
            )
    out = (
        Path(args.out)
        if args.out
        else REPO
        / "benchmarks"
        / "results"
        / ("quality-heldout.json" if args.heldout else "quality.json")
    )
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    print(f"\nwrote {out}", file=sys.stderr)


def _print(title: str, res: dict[str, dict[str, float]], cols: list[str]) -> None:
    print(f"\n### {title}\n")
    print(table([(mode, m) for mode, m in res.items()], cols), flush=True)


if __name__ == "__main__":
    main()
