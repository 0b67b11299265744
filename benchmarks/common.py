"""Shared pieces of the quality benchmarks: tasks with known relevant chunks, metrics."""

from __future__ import annotations

import json
import math
import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bunko.api import Shelf
from bunko.config import Settings
from datasets import CACHE, SHARED, Question, prepare, sample

REPO = Path(__file__).resolve().parents[1]
DEV_QA = SHARED / "eval" / "dev-qa.jsonl"
DEV_UNANSWERABLE = SHARED / "eval" / "dev-unanswerable.jsonl"
MINI = REPO / "tests" / "data"


@dataclass
class Item:
    question: str
    lang: str
    relevant: set[int]  # chunk ids that count as a hit
    evidence: tuple[str, ...] = ()  # dev-qa: for the highlight check
    spans: tuple[tuple[int, int], ...] = ()  # JSQuAD/JaQuAD: answer spans, for the highlight check


@dataclass
class Task:
    name: str
    shelf: Shelf
    items: list[Item]


def nfkc(s: str) -> str:
    return unicodedata.normalize("NFKC", s)


def squad_task(
    name: str,
    size: int | None,
    chunk_tokens: int | None = None,
    index_name: str = "index",
    engine: str | None = None,
) -> Task:
    """A JSQuAD / JaQuAD task: index (built or updated once, cached) and sampled questions."""
    corpus, questions = prepare(name)
    settings = Settings.resolve(
        corpus=corpus, index=CACHE / name / index_name, chunk_tokens=chunk_tokens, engine=engine
    )
    shelf = Shelf(settings, progress=_progress)
    shelf.index()
    by_source: dict[str, list[tuple[int, int, int]]] = {}
    for row in all_chunks(shelf):
        by_source.setdefault(row.source, []).append((row.id, row.char_start, row.char_end))
    items = []
    for q in sample(questions, size):
        rel = _containing(by_source.get(q.source, []), q)
        items.append(Item(q.question, "ja", rel, spans=q.spans))
    return Task(name, shelf, items)


def _containing(chunks: Sequence[tuple[int, int, int]], q: Question) -> set[int]:
    return {cid for cid, cs, ce in chunks for s, e in q.spans if cs <= s and e <= ce}


def all_chunks(shelf: Shelf) -> list[Any]:
    """Every live chunk row of the shelf, in chunk id order (through the snapshot)."""
    loaded = shelf.loaded()
    rows = loaded.chunks(loaded.live_ids().tolist())
    return [rows[c] for c in sorted(rows)]


def devqa_task(
    index_name: str = "index",
    chunk_tokens: int | None = None,
    limit: int | None = None,
    engine: str | None = None,
) -> Task:
    """dev-qa over the shipped corpus: a hit is a chunk containing an evidence string."""
    settings = Settings.resolve(
        corpus=REPO / "corpus",
        index=CACHE / "dev-qa" / index_name,
        chunk_tokens=chunk_tokens,
        engine=engine,
    )
    shelf = Shelf(settings, progress=_progress)
    shelf.index()
    rows = [(r.id, r.text) for r in all_chunks(shelf)]
    items = []
    for line in DEV_QA.read_text("utf-8").splitlines():
        if not line.strip():
            continue
        d = json.loads(line)
        ev = tuple(nfkc(e) for e in d["evidence"])
        rel = {cid for cid, text in rows if any(e in nfkc(text) for e in ev)}
        items.append(Item(d["question"], d["lang"], rel, ev))
    if limit is not None:  # smoke runs: the first few questions of each language
        seen: dict[str, int] = {}
        kept = []
        for i in items:
            seen[i.lang] = seen.get(i.lang, 0) + 1
            if seen[i.lang] <= limit:
                kept.append(i)
        items = kept
    return Task("dev-qa", shelf, items)


def metrics(ranked: Sequence[Sequence[int]], items: Sequence[Item]) -> dict[str, float]:
    """R@1, R@5, R@10, MRR@10 and nDCG@10 (binary gains) over ranked chunk-id lists."""
    n = len(items)
    out = {"n": float(n), "R@1": 0.0, "R@5": 0.0, "R@10": 0.0, "MRR@10": 0.0, "nDCG@10": 0.0}
    for ids, item in zip(ranked, items, strict=True):
        ranks = [r for r, cid in enumerate(ids[:10], 1) if cid in item.relevant]
        if ranks:
            first = ranks[0]
            out["R@1"] += first <= 1
            out["R@5"] += first <= 5
            out["R@10"] += 1
            out["MRR@10"] += 1 / first
            dcg = sum(1 / math.log2(r + 1) for r in ranks)
            ideal = sum(1 / math.log2(r + 1) for r in range(1, min(len(item.relevant), 10) + 1))
            out["nDCG@10"] += dcg / ideal
    return {k: (v / n if k != "n" and n else v) for k, v in out.items()}


def table(rows: Sequence[tuple[str, dict[str, float]]], cols: Sequence[str]) -> str:
    lines = ["| setting | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for name, m in rows:
        lines.append(f"| {name} | " + " | ".join(f"{m[c]:.3f}" for c in cols) + " |")
    return "\n".join(lines)


def _progress(stage: str, done: int, total: int) -> None:
    if done == total or done % 200 == 0:
        print(f"  {stage} {done}/{total}", file=sys.stderr, flush=True)


def devqa_questions(smoke: bool = False) -> tuple[Shelf, list[tuple[dict[str, Any], bool]]]:
    """The shipped corpus indexed (smoke: the tests' mini corpus), and every row of dev-qa
    and dev-unanswerable with whether it is answerable, for the abstention and answer
    stage benchmarks."""
    corpus, qa, tag = REPO / "corpus", DEV_QA, "index"
    if smoke:
        corpus, qa, tag = MINI / "mini", MINI / "mini-qa.jsonl", "smoke-index"
    shelf = Shelf(Settings.resolve(corpus=corpus, index=CACHE / "dev-qa" / tag), progress=_progress)
    shelf.index()
    rows = [(json.loads(line), ok) for path, ok in ((qa, True), (DEV_UNANSWERABLE, False))
            for line in path.read_text("utf-8").splitlines() if line.strip()]  # fmt: skip
    return shelf, rows
