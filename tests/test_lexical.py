"""BM25 index: the numpy build matches the textbook formula; saved postings are memory-mapped."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np

from bunko.index.lexical import K1, B, LexicalIndex

DOCS = [
    ["富士", "山", "は", "日本", "で", "最も", "高い", "山"],
    ["寿司", "は", "日本", "の", "料理"],
    [],
    ["coffee", "は", "豆", "から", "作る", "coffee"],
]


def _reference(docs: list[list[str]], query: list[str]) -> list[float]:
    n = len(docs)
    avgdl = sum(map(len, docs)) / n
    out = []
    for d in docs:
        tf = Counter(d)
        score = 0.0
        for t in dict.fromkeys(query):
            df = sum(1 for x in docs if t in x)
            if not tf[t]:
                continue
            idf = math.log1p((n - df + 0.5) / (df + 0.5))
            score += idf * tf[t] * (K1 + 1) / (tf[t] + K1 * (1 - B + B * len(d) / avgdl))
        out.append(score)
    return out


def test_scores_match_the_formula_and_survive_a_round_trip(tmp_path: Path) -> None:
    index = LexicalIndex.build(iter(DOCS))  # any iterable of token lists
    query = ["山", "日本", "coffee", "未知語", "山"]
    want = _reference(DOCS, query)
    assert np.allclose(index.scores(query), want, atol=1e-5)
    index.save(tmp_path)
    loaded = LexicalIndex.load(tmp_path)
    assert isinstance(loaded.rows, np.memmap) and isinstance(loaded.weights, np.memmap)
    assert np.allclose(loaded.scores(query), want, atol=1e-5)
    assert loaded.n_rows == 4 and loaded.vocab == index.vocab


def test_empty_index(tmp_path: Path) -> None:
    index = LexicalIndex.build([])
    index.save(tmp_path)
    loaded = LexicalIndex.load(tmp_path)
    assert loaded.n_rows == 0 and len(loaded.scores(["山"])) == 0
