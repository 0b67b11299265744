"""The hand-translated cross-lingual set parses and fits its shelf (no indexing)."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
EVAL = REPO / "eval"


def _datasets() -> ModuleType:
    # benchmarks/ is not a package, and "datasets" may name an installed library.
    spec = importlib.util.spec_from_file_location(
        "bunko_bench_datasets", REPO / "benchmarks" / "datasets.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _rows(name: str) -> list[dict[str, object]]:
    return [
        json.loads(line) for line in (EVAL / name).read_text("utf-8").splitlines() if line.strip()
    ]


def test_files_parse_with_unique_ids_and_english_questions() -> None:
    answerable, unanswerable = _rows("xling-en.jsonl"), _rows("xling-en-unanswerable.jsonl")
    held = json.loads((EVAL / "xling-heldout-articles.json").read_text("utf-8"))
    assert len(answerable) >= 360 and len(unanswerable) >= 150
    ids = [d["id"] for d in answerable + unanswerable]
    assert len(ids) == len(set(ids))
    keys = {"id", "set", "qid", "article", "ja", "en", "answer"}
    for d in answerable + unanswerable:
        assert keys <= d.keys() and d["set"] in ("jsquad-valid", "jaquad-dev")
        assert not re.search(r"[\u3040-\u30ff]", str(d["en"])), d  # no kana left in the English
        assert (d["article"] in held[d["set"]]) == bool(d.get("held_out")), d
    articles = {(d["set"], d["article"]) for d in answerable}
    assert len(articles) >= 120


def test_loader_maps_questions_to_a_shelf_without_held_out_articles(tmp_path: Path) -> None:
    datasets = _datasets()
    if (
        not all(p.exists() for name in datasets.XLING_SETS for p in datasets.FILES[name])
        or not datasets.FILES["jaquad-dev"]
    ):
        pytest.skip("JSQuAD valid / JaQuAD dev are not in ../shared/bench-data")
    x = datasets.load_xling(tmp_path)
    shelf = {p.name: p.read_text("utf-8") for p in x.corpus.iterdir()}
    assert len(shelf) >= 900
    titles = {(name.split("-p")[0], text.split("\n", 1)[0][2:]) for name, text in shelf.items()}
    assert not any(title in x.held_out[name] for name, title in titles)
    answers = {d["id"]: d["answer"] for d in _rows("xling-en.jsonl")}
    assert [q.id for q in x.en] == [q.id for q in x.ja] and len(x.en) == len(answers)
    for q in x.en:
        text = shelf[q.source]
        assert answers[q.id] in text and any(text[s:e] == answers[q.id] for s, e in q.spans), q
    for q in x.unanswerable_en:
        assert (
            q.source not in shelf
            and x.article[q.id].split("/", 1)[1] in x.held_out[x.article[q.id].split("/")[0]]
        )
    small = datasets.load_xling(
        tmp_path, size=900
    )  # a smaller shelf still holds every asked paragraph
    names = {p.name for p in small.corpus.iterdir()}
    assert len(names) == 900 and {q.source for q in small.en} <= names <= set(shelf)
