"""Retrieval quality on a JSONL file of questions with evidence (``bunko eval``).

Each line: ``{"id", "lang", "question", "doc", "evidence": [str, ...]}``. A hit is a
result whose text contains any evidence string, after NFKC on both sides. A line
with ``"answerable": false`` (and no evidence) is a question the corpus does not
answer: it counts only towards the abstention scores.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bunko.errors import EvalError
from bunko.retrieval.query import QueryRequest, check_k_and_mode
from bunko.types import EvalReport, EvalScores, Mode, QueryResult

ProgressFn = Callable[[str, int, int], None]


def evaluate(
    answer: Callable[[QueryRequest], QueryResult],
    path: str | Path,
    model: str,
    k: int = 10,
    mode: Mode = "hybrid",
    progress: ProgressFn | None = None,
) -> EvalReport:
    """hit@1/3/5/10 and MRR@10 per language, and abstention scores when the file has
    unanswerable questions (top confidence against the default threshold, AUROC).

    Args:
        answer: runs one request (``Shelf.query``); the index is not updated.
        model: the index's model, for the report.

    Raises:
        UsageError: k or mode out of bounds.
        EvalError: the file is missing or a line is malformed.
    """
    from bunko.retrieval.abstention import abstention_scores

    check_k_and_mode(k, mode)

    items = load_eval(Path(path))
    depth = max(k, 10)
    ranks: dict[str, list[int | None]] = {}
    tops: dict[str, tuple[list[float], list[float]]] = {}
    threshold = 0.0
    for item in items:
        result = answer(QueryRequest(item["question"], k=depth, mode=mode, update=False))
        threshold = result.min_confidence
        lang = str(item.get("lang", "all"))
        top = result.passages[0].confidence if result.passages else 0.0
        if item.get("answerable", True) is False:
            tops.setdefault(lang, ([], []))[1].append(top)
        else:
            tops.setdefault(lang, ([], []))[0].append(top)
            evidence = [_nfkc(e) for e in item["evidence"]]
            rank = next(
                (p.rank for p in result.passages if any(e in _nfkc(p.text) for e in evidence)),
                None,
            )
            ranks.setdefault(lang, []).append(rank)
        if progress is not None:
            progress("evaluating", sum(len(a) + len(b) for a, b in tops.values()), len(items))
    all_ranks = [r for rs in ranks.values() for r in rs]
    abstention = {}
    if any(neg for _, neg in tops.values()):
        for lang, (pos, neg) in sorted(tops.items()):
            abstention[lang] = abstention_scores(pos, neg, threshold)
        abstention["all"] = abstention_scores(
            [c for pos, _ in tops.values() for c in pos],
            [c for _, neg in tops.values() for c in neg],
            threshold,
        )
    return EvalReport(
        file=str(path),
        mode=mode,
        model=model,
        k=k,
        by_lang={lang: scores(rs, k) for lang, rs in sorted(ranks.items())},
        overall=scores(all_ranks, k),
        abstention=abstention,
    )


def _nfkc(s: str) -> str:
    return unicodedata.normalize("NFKC", s)


def scores(ranks: Sequence[int | None], k: int) -> EvalScores:
    """hit@1/3/5/10/k and MRR@10 of the first relevant ranks (None: not found)."""
    n = len(ranks)
    cuts = sorted({1, 3, 5, 10, k})
    hit_at = {c: sum(1 for r in ranks if r is not None and r <= c) / n if n else 0.0 for c in cuts}
    mrr = sum(1.0 / r for r in ranks if r is not None and r <= 10) / n if n else 0.0
    return EvalScores(n=n, hit_at=hit_at, mrr_at_10=mrr)


def load_eval(path: Path) -> list[dict[str, Any]]:
    """Read and check an evaluation JSONL file.

    Raises:
        EvalError: the file cannot be read, a line is not JSON or lacks its fields.
    """
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalError(f"cannot read the evaluation file {path}: {exc}") from exc
    items = []
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalError(f"{path}:{no}: not valid JSON ({exc.msg})") from exc
        if not _well_formed(item):
            raise EvalError(
                f'{path}:{no}: each line needs "question" (text) and "evidence" (a list of '
                'text), or "answerable": false for a question the corpus does not answer'
            )
        items.append(item)
    if not items:
        raise EvalError(f"{path} has no questions")
    return items


def _well_formed(item: Any) -> bool:
    if not isinstance(item, dict):
        return False
    question = item.get("question")
    if not isinstance(question, str) or not question.strip():
        return False
    if item.get("answerable", True) is False:
        return True
    evidence = item.get("evidence")
    return (
        isinstance(evidence, list)
        and bool(evidence)
        and all(isinstance(e, str) and e for e in evidence)
    )
