"""Tune the hybrid fusion and the lexical query expansion (tuning sets only).

Each question is embedded and searched once; every variant then re-runs only
BM25 (with its expanded query), the sentence-vector re-rank of the dense side over
the pooled candidates, the fusion and the merge into passages, as the query pipeline (bunko.retrieval.query) does.
Variants: the fusion weight ``L·coverage³·min(1, r/F)^G`` (r: how far BM25's best
score stands above its 6th), JMdict translation of English questions
(retrieval/expansion.py), and pseudo-relevance feedback from the top dense passages
(measured, not kept: it lives here only).

    python benchmarks/tune_fusion.py --datasets dev-qa,jsquad-valid,jaquad-dev --sample 400
"""

from __future__ import annotations

import argparse
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

from bunko import search
from bunko.retrieval.passages import group_places
from common import Item, Task, devqa_task, squad_task, table

O1 = "o1はどのように訓練されましたか？"  # the README's example (dev-qa corpus only)
O1_ARTICLE = "002_e737c20070cc9f8e.txt"


@dataclass(frozen=True)
class Variant:
    name: str
    mode: str = "hybrid"
    weight: float = search.LEXICAL_WEIGHT
    full: float = search.DISTINCT_FULL
    power: float = search.DISTINCT_POWER
    translate: bool = True
    prf: tuple[int, int, float] | None = None  # (top passages, terms, weight)


def variants() -> list[Variant]:
    out = [
        Variant("dense", mode="dense"),
        Variant("lexical, no translation", mode="lexical", translate=False),
        Variant("lexical (kept: + translation)", mode="lexical"),
        Variant(
            "before: L 0.5, full 0.3, power 1, no translation",
            weight=0.5,
            full=0.3,
            power=1.0,
            translate=False,
        ),
        Variant("before + translation", weight=0.5, full=0.3, power=1.0),
        Variant("L 0.6, full 0.25, power 1", power=1.0),
        Variant("**kept: L 0.6, full 0.25, power 2, translation**"),
        Variant("L 0.6, full 0.25, power 3", power=3.0),
        Variant("L 0.6, full 0.3, power 2", full=0.3),
        Variant("L 0.7, full 0.3, power 2", weight=0.7, full=0.3),
        Variant("L 0.6, full 0.5, power 1", full=0.5, power=1.0),
    ]
    for k, m, beta in ((1, 5, 0.1), (3, 10, 0.2), (5, 20, 0.3)):
        out.append(Variant(f"kept + PRF top {k}, {m} terms, weight {beta}", prf=(k, m, beta)))
    return out


@dataclass
class Captured:
    item: Item
    tokens: list[str]
    extra: dict[str, float]
    qvec: Any
    dense: search.Ranked


def capture(task: Task, questions: Sequence[tuple[str, Item]]) -> list[Captured]:
    retriever = task.shelf.retriever()
    out = []
    for q, item in questions:
        toks = retriever.query_tokens(q)
        qvec = retriever.embed(q)
        out.append(Captured(item, toks, retriever.expansion(q, toks), qvec,
                            search.dense_candidates(retriever.snapshot, qvec,
                                                    search.CANDIDATES)))  # fmt: skip
    return out


class Runner:
    def __init__(self, task: Task) -> None:
        self.loaded = task.shelf.loaded()
        self.rows: dict[int, Any] = {}
        self.vecs: dict[int, Any] = {}

    def fetch(self, ids: Sequence[int]) -> None:
        missing = [c for c in ids if c not in self.rows]
        if missing:
            rows = self.loaded.chunks(missing)
            self.rows.update(rows)
            self.vecs.update(self.loaded.sentence_vectors(rows.values()))

    def sims(self, c: Captured, ids: Sequence[int]) -> dict[int, Any]:
        return {i: self.vecs[i] @ c.qvec for i in ids if i in self.vecs}

    def prf_terms(self, c: Captured, k: int, m: int, beta: float) -> dict[str, float]:
        """The top-k dense passages' most distinctive terms (tf/len · idf, the
        passages weighted by a softmax of their dense scores), weighted beta..0."""
        ids = [i for i, _ in c.dense]
        self.fetch(ids)
        top = search.rescore_dense(c.dense, ids, self.sims(c, ids))[:k]
        ws = [math.exp((s - top[0][1]) / 0.02) for _, s in top]
        score: Counter[str] = Counter()
        own = set(c.tokens) | set(c.extra)
        for (cid, _), w in zip(top, ws, strict=True):
            toks = self.rows[cid].tokens
            for t, n in Counter(toks).items():
                if t not in own:
                    score[t] += w / sum(ws) * n / max(1, len(toks))
        idf = self.loaded.idf(list(score))
        best = sorted(((t, v * idf[t]) for t, v in score.items() if idf.get(t, 0) >= 2.0),
                      key=lambda x: -x[1])[:m]  # fmt: skip
        return {t: beta * v / best[0][1] for t, v in best} if best else {}

    def run(self, c: Captured, v: Variant, k: int = 10) -> list[int]:
        """Source-chunk groups of the top k passages, as chunk-id lists."""
        extra = dict(c.extra) if v.translate else {}
        if v.prf:
            extra.update(self.prf_terms(c, *v.prf))
        terms = [*c.tokens, *extra]
        n = search.CANDIDATES
        dense = [] if v.mode == "lexical" else c.dense
        lexical = [] if v.mode == "dense" else self.loaded.lexical_search(terms, n, extra)
        ids = list(dict.fromkeys(i for i, _ in c.dense + lexical))
        self.fetch(ids)
        if v.mode != "lexical":
            dense = search.rescore_dense(dense, ids, self.sims(c, ids))
        if v.mode == "hybrid":
            cov = self.loaded.coverage(terms)
            r = 1.0
            if len(lexical) >= search.DISTINCT_AT and lexical[0][1] > 0:
                top, later = lexical[0][1], lexical[search.DISTINCT_AT - 1][1]
                r = min(1.0, (top - later) / top / v.full) ** v.power
            hits = search.fuse(dense, lexical, v.weight * cov**3 * r, len(ids))
        else:
            hits = search.single(dense if v.mode == "dense" else lexical, len(ids), v.mode)  # type: ignore[arg-type]
        rows = self.rows
        groups = group_places(hits, lambda h: (rows[h.chunk_id].source, rows[h.chunk_id].char_start,
                                               rows[h.chunk_id].char_end), k)  # fmt: skip
        return [next((h.chunk_id for h in g if h.chunk_id in c.item.relevant), g[0].chunk_id)
                for g in groups]  # fmt: skip


def scores(runner: Runner, caps: list[Captured], v: Variant) -> dict[str, float]:
    n = len(caps) or 1
    out = {"R@1": 0.0, "R@5": 0.0, "MRR@10": 0.0}
    for c in caps:
        ranked = runner.run(c, v)
        first = next((r for r, i in enumerate(ranked, 1) if i in c.item.relevant), None)
        if first:
            out["R@1"] += first == 1
            out["R@5"] += first <= 5
            out["MRR@10"] += 1 / first
    return {key: val / n for key, val in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="dev-qa,jsquad-valid,jaquad-dev")
    ap.add_argument("--sample", type=int, default=400)
    ap.add_argument("--smoke", action="store_true", help="dev-qa, 3 questions a language (CI)")
    ap.add_argument("--devqa-index", default="index", help="index name under .cache/dev-qa/")
    args = ap.parse_args()
    if args.smoke:
        args.datasets = "dev-qa"
    for name in args.datasets.split(","):
        if name == "dev-qa":
            task = devqa_task(*(("smoke", None, 3) if args.smoke else (args.devqa_index,)))
            runner = Runner(task)
            o1 = capture(task, [(O1, Item(O1, "ja", set()))])[0]
            for lang in ("ja", "en"):
                caps = capture(task, [(i.question, i) for i in task.items if i.lang == lang])
                rows = [(v.name, scores(runner, caps, v)) for v in variants()]
                print(f"\n## dev-qa-{lang}\n" + table(rows, ["R@1", "R@5", "MRR@10"]), flush=True)
            print("\n## README o1 example: the o1 article first in hybrid mode?\n")
            for v in variants():
                if v.mode == "hybrid":
                    top = runner.rows[runner.run(o1, v)[0]].source
                    print(f"- {v.name}: {'yes' if top == O1_ARTICLE else 'no (' + top + ')'}")
        else:
            task = squad_task(name, args.sample or None, index_name="index")
            runner = Runner(task)
            caps = capture(task, [(i.question, i) for i in task.items])
            rows = [(v.name, scores(runner, caps, v)) for v in variants()]
            print(f"\n## {name}\n" + table(rows, ["R@1", "R@5", "MRR@10"]), flush=True)


if __name__ == "__main__":
    main()
