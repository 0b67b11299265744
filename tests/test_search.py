"""Fusion arithmetic (plain numbers) and the BM25 index (real fugashi tokens)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bunko.errors import IndexCorruptError
from bunko.index.format import pack_vectors, unpack_vectors
from bunko.index.lexical import LexicalIndex
from bunko.search import (
    DISTINCT_FULL,
    DISTINCT_POWER,
    digit_spellings,
    fuse,
    lexical_distinctness,
    rescore_dense,
    single,
)
from bunko.text import Tokenizer


def test_convex_fusion_normalises_each_side() -> None:
    dense = [(1, 0.9), (2, 0.8), (3, 0.7)]
    lexical = [(3, 12.0), (4, 6.0), (1, 0.0)]
    hits = fuse(dense, lexical, lexical_weight=0.5, k=4)
    scores = {h.chunk_id: h.score for h in hits}
    # z-scores: dense 1 -> 1.225, 2 -> 0, 3 -> -1.225; lexical 3 -> 1.225, 4 -> 0,
    # 1 -> -1.225; missing from a side: that side's lowest z-score (-1.225)
    z = 1.5**0.5
    assert scores == pytest.approx({1: 0.0, 2: -z / 2, 3: 0.0, 4: -z / 2})
    # ties break by dense rank
    assert [h.chunk_id for h in hits] == [1, 3, 2, 4]
    assert hits[0].dense_rank == 1 and hits[0].lexical_rank == 3
    assert hits[3].dense_rank is None and hits[3].lexical_score == 6.0


def test_zero_lexical_weight_keeps_dense_order() -> None:
    dense = [(5, 0.8), (6, 0.7), (7, 0.6)]
    lexical = [(7, 30.0), (6, 1.0)]
    assert [h.chunk_id for h in fuse(dense, lexical, 0.0, 3)] == [5, 6, 7]


def test_rrf_fusion() -> None:
    hits = fuse([(1, 0.9), (2, 0.8)], [(2, 5.0), (3, 4.0)], 0.5, 3, method="rrf")
    assert hits[0].chunk_id == 2
    assert hits[0].score == pytest.approx(0.5 / 62 + 0.5 / 61)


def test_lexical_weight_backs_off_when_the_best_match_does_not_stand_out() -> None:
    flat = [(i, 10.0 - 0.1 * i) for i in range(10)]  # generic words: everything alike
    peaked = [(0, 20.0)] + [(i, 5.0) for i in range(1, 10)]
    assert lexical_distinctness(flat) == pytest.approx((0.5 / 10 / DISTINCT_FULL) ** DISTINCT_POWER)
    assert lexical_distinctness(peaked) == 1.0
    assert lexical_distinctness(peaked[:3]) == 1.0  # too few candidates to judge


def test_digit_spellings_of_look_alike_letters() -> None:
    assert digit_spellings("o1はどのように訓練されましたか？") == ["01"]
    assert digit_spellings("ｏ３-mini と GPT-4o") == ["03"]  # NFKC; "4o" is left alone
    assert digit_spellings("GPT-4.5の料金") == []


def test_single_mode_ranks() -> None:
    hits = single([(9, 3.0), (8, 2.0)], 1, "lexical")
    assert len(hits) == 1 and hits[0].lexical_rank == 1 and hits[0].dense_rank is None


DOCS = [
    "富士山は日本で最も高い山です。",
    "寿司は江戸時代に広まりました。",
    "GPT-4.5のAPI料金は100万トークンあたり75ドルです。",
]


def test_bm25_over_fugashi_tokens(tmp_path: Path) -> None:
    tok = Tokenizer()
    index = LexicalIndex.build(tok.tokens_many(DOCS))
    scores = index.scores(tok.tokens("GPT-4.5の料金"))
    assert int(scores.argmax()) == 2 and scores[0] == 0.0
    assert int(index.scores(tok.tokens("一番高い山は？")).argmax()) == 0
    index.save(tmp_path)
    again = LexicalIndex.load(tmp_path)
    assert (again.scores(tok.tokens("寿司")) == index.scores(tok.tokens("寿司"))).all()


def test_coverage_sees_an_english_question_as_unknown() -> None:
    tok = Tokenizer()
    index = LexicalIndex.build(tok.tokens_many(DOCS))
    assert index.coverage(tok.tokens("富士山の高さ")) > 0.3
    assert index.coverage(tok.tokens("How high is the tallest mountain in Japan?")) < 0.1
    assert index.coverage([]) == 0.0


def test_damaged_lexical_index_is_reported(tmp_path: Path) -> None:
    LexicalIndex.build([["a", "b"], ["b"]]).save(tmp_path)
    (tmp_path / "lexical.npz").write_bytes(b"junk")
    with pytest.raises(IndexCorruptError, match="--rebuild"):
        LexicalIndex.load(tmp_path)


def test_rescore_dense_blends_chunk_and_best_sentence() -> None:
    dense = [(1, 0.80), (2, 0.78)]
    sims = {1: np.array([0.70, 0.72], dtype=np.float32), 2: np.array([0.90], dtype=np.float32),
            3: np.array([0.95], dtype=np.float32)}  # fmt: skip
    out = dict(rescore_dense(dense, [1, 2, 3], sims))
    assert out[2] == pytest.approx(0.5 * 0.78 + 0.5 * 0.90)
    assert out[3] == pytest.approx(0.5 * 0.78 + 0.5 * 0.95)  # BM25-only: weakest chunk cosine
    assert out[2] > out[1]


def test_packed_sentence_vectors_round_trip() -> None:
    rng = np.random.default_rng(0)
    v = rng.normal(size=(5, 384)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    back = unpack_vectors(pack_vectors(v), 384)
    assert back.shape == (5, 384)
    assert np.abs((back * v).sum(axis=1) - 1).max() < 0.01
    assert unpack_vectors(pack_vectors(v[:0]), 384).shape == (0, 384)
