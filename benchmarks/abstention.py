"""Abstention: does the top confidence tell answerable questions from unanswerable ones?

JSQuAD valid: 20 % of the *articles* (whole titles) are left out of the index;
their questions become the unanswerable ones, the rest stay answerable. dev-qa
(answerable) and dev-unanswerable (not) over the shipped corpus, per language.
Reports AUROC of the top confidence and the answer/abstain rates at the default
threshold, and with ``--fit`` refits the logistic confidence model on these
tuning sets (never on JSQuAD test).

    python benchmarks/quality.py --abstention              # tables
    python benchmarks/quality.py --abstention --fit        # also fit the weights
    python benchmarks/quality.py --abstention --smoke      # tiny, for the test
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bunko.api import Shelf
from bunko.config import Settings
from bunko.retrieval import confidence as conf
from bunko.retrieval.abstention import abstention_scores
from common import _progress, devqa_questions
from datasets import CACHE, prepare, sample

HOLDOUT = 0.2


@dataclass
class Probe:
    question: str
    lang: str
    answerable: bool
    top: float = 0.0
    signals: tuple[float, ...] = (0.0,) * 5
    group: str = ""  # cross-validation folds keep a group together (a JSQuAD article)


def jsquad_probes(
    size: int | None, smoke: bool, n_articles: int | None = None
) -> tuple[Shelf, list[Probe]]:
    """Index JSQuAD valid without 20 % of its articles; questions of both kinds."""
    corpus, questions = prepare("jsquad-valid")
    titles: dict[str, str] = {}
    for f in sorted(corpus.iterdir()):
        titles[f.name] = f.read_text("utf-8").split("\n", 1)[0]
    articles = sorted(set(titles.values()))
    if smoke:
        n_articles = 2
    if n_articles:
        articles = random.Random(1).sample(articles, min(n_articles, len(articles)))
    rng = random.Random(0)
    held = set(rng.sample(articles, max(1, round(HOLDOUT * len(articles)))))
    tag = "abstention-smoke" if smoke else f"abstention-{n_articles or 'all'}"
    part = CACHE / "jsquad-valid" / f"{tag}-corpus"
    per_article: dict[str, int] = {}
    keep: set[str] = set()
    for name, title in titles.items():  # smoke: at most 4 paragraphs of an article
        per_article[title] = per_article.get(title, 0) + 1
        if title in articles and (not smoke or per_article[title] <= 4):
            keep.add(name)
    if not part.is_dir():
        part.mkdir(parents=True)
        for name in sorted(keep):
            if titles[name] not in held:
                os.link(corpus / name, part / name)
    index = CACHE / "jsquad-valid" / f"{tag}-index"
    full = CACHE / "jsquad-valid" / "index"
    rebuild = False
    if not index.exists() and full.is_dir() and not smoke:
        # Start from a copy of the whole JSQuAD-valid index: the rebuild for the
        # smaller corpus reuses its vectors instead of embedding everything again.
        shutil.copytree(full, index)
        rebuild = True
    shelf = Shelf(Settings.resolve(corpus=part, index=index), progress=_progress)
    shelf.index(rebuild=rebuild)
    pos = [q for q in questions if q.source in keep and titles[q.source] not in held]
    neg = [q for q in questions if q.source in keep and titles[q.source] in held]
    probes = [Probe(q.question, "ja", True, group=titles[q.source]) for q in sample(pos, size)]
    probes += [Probe(q.question, "ja", False, group=titles[q.source]) for q in sample(neg, size)]
    return shelf, probes


def devqa_probes(smoke: bool = False) -> tuple[Shelf, list[Probe]]:
    """dev-qa and dev-unanswerable over the shipped corpus (smoke: the tests' mini corpus)."""
    shelf, rows = devqa_questions(smoke)
    return shelf, [Probe(d["question"], d["lang"], ok) for d, ok in rows]


def run(shelf: Shelf, probes: list[Probe], mode: str = "hybrid") -> None:
    for p in probes:
        r = shelf.query(p.question, k=5, mode=mode, update=False)  # type: ignore[arg-type]
        p.top = r.passages[0].confidence if r.passages else 0.0
        top = r.passages[0].signals if r.passages else None
        p.signals = top.as_row() if top is not None else (0.0,) * 5


def scores(probes: list[Probe], threshold: float) -> dict[str, Any]:
    s = abstention_scores(
        [p.top for p in probes if p.answerable], [p.top for p in probes if not p.answerable],
        threshold,
    )  # fmt: skip
    return s.__dict__


def fit(groups: list[list[Probe]], steps: int = 30000, l2: float = 1e-3) -> list[float]:
    """Logistic regression (answerable ~ signals) by gradient descent.

    Each group (a tuning set and language) weighs the same in total, and within a
    group the answerable and unanswerable questions weigh the same.
    """
    import numpy as np

    probes = [p for g in groups for p in g]
    x = np.array([p.signals for p in probes], dtype=np.float64)
    y = np.array([p.answerable for p in probes], dtype=np.float64)
    mu, sd = x.mean(0), x.std(0) + 1e-9
    xs = np.hstack([np.ones((len(x), 1)), (x - mu) / sd])
    sw = np.concatenate([
        [1.0 / (len(groups) * 2 * sum(q.answerable == p.answerable for q in g)) for p in g]
        for g in groups
    ])  # fmt: skip
    w = np.zeros(xs.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(xs @ w)))
        grad = xs.T @ (sw * (p - y)) + l2 * np.r_[0.0, w[1:]]
        w -= 2.0 * grad
    # back to the raw signal scale
    coef = w[1:] / sd
    intercept = w[0] - float((w[1:] * mu / sd).sum())
    return [float(intercept), *map(float, coef)]


def cross_validated(groups: list[list[Probe]], folds: int = 5) -> list[list[float]]:
    """Out-of-fold top confidences: each fold's probes scored by weights fitted on
    the other folds (a JSQuAD article, or a dev question, stays in one fold)."""
    import zlib

    def fold(p: Probe) -> int:
        return zlib.crc32((p.group or p.question).encode()) % folds

    out = [[0.0] * len(g) for g in groups]
    for f in range(folds):
        train = [[p for p in g if fold(p) != f] for g in groups]
        w = fit([t for t in train if t])
        for gi, g in enumerate(groups):
            for pi, p in enumerate(g):
                if fold(p) == f:
                    z = w[0] + sum(c * x for c, x in zip(w[1:], p.signals, strict=True))
                    out[gi][pi] = 1 / (1 + math.exp(-max(-50.0, min(50.0, z))))
    return out


def main(
    sample_size: int | None,
    smoke: bool,
    do_fit: bool,
    out: Path | None,
    n_articles: int | None = None,
) -> dict[str, Any]:
    th = conf.DEFAULT_MIN_CONFIDENCE
    report: dict[str, Any] = {"threshold": th}
    shelf, dq = devqa_probes(smoke)
    if smoke:
        dq = dq[:4] + dq[-4:]
    run(shelf, dq)
    for lang in ("ja", "en"):
        report[f"dev-qa+unanswerable-{lang}"] = scores([p for p in dq if p.lang == lang], th)
    shelf, jq = jsquad_probes(10 if smoke else sample_size, smoke, n_articles)
    run(shelf, jq)
    report["articles"] = n_articles or "all"
    report["jsquad-valid-heldout-articles"] = scores(jq, th)
    if do_fit:
        groups = [[p for p in dq if p.lang == "ja"], [p for p in dq if p.lang == "en"], jq]
        report["fit"] = fit(groups)
        names = [
            "dev-qa+unanswerable-ja",
            "dev-qa+unanswerable-en",
            "jsquad-valid-heldout-articles",
        ]
        for name, g, tops in zip(names, groups, cross_validated(groups), strict=True):
            cv = [
                Probe(p.question, p.lang, p.answerable, top) for p, top in zip(g, tops, strict=True)
            ]
            report[f"{name} (5-fold CV)"] = scores(cv, th)
        report["signals"] = [
            {"q": p.question, "lang": p.lang, "answerable": p.answerable, "s": p.signals}
            for p in dq + jq
        ]
    print(f"\n### Abstention at min-confidence {th}\n")
    print("| set | answerable | unanswerable | answered | abstained | AUROC |")
    print("|---|---|---|---|---|---|")
    for name, s in report.items():
        if isinstance(s, dict) and "auroc" in s:
            print(
                f"| {name} | {s['n_answerable']} | {s['n_unanswerable']} | {_f(s['answered'])} | "
                f"{_f(s['abstained'])} | {_f(s['auroc'])} |"
            )
    if do_fit:
        print(
            f"\nfitted (intercept, sentence, gap, coverage, translated coverage, cross): {report['fit']}"
        )
    if out is not None:
        out.write_text(json.dumps(report, indent=1, ensure_ascii=False))
        print(f"\nwrote {out}", file=sys.stderr)
    return report


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"
