"""BM25: the numpy build matches the textbook formula; postings are memory-mapped;
scores over several segments with deletes equal those of one segment of the live rows."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bunko.index import lexical
from bunko.index.lexical import BM25, K1, B, LexicalIndex, Postings, Vocab

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
    # Mapped, not read (plain arrays over the map: indexing a memmap is slow).
    for a in (loaded.postings.rows, loaded.postings.tf, loaded.postings.indptr):
        assert type(a) is np.ndarray and isinstance(a.base, np.memmap) and not a.flags.owndata
    assert np.allclose(loaded.scores(query), want, atol=1e-5)
    assert loaded.n_rows == 4 and loaded.vocab == index.vocab
    assert isinstance(loaded.vocab, Vocab) and not (tmp_path / "lexical_vocab.json").exists()


def test_terms_are_found_by_binary_search_in_sorted_utf8(tmp_path: Path) -> None:
    docs = [["b", "a", "日本", "にほん", "\ud800", "é", "z"], ["a", "ab", "", "Z"]]
    built = Postings.build(iter(docs))
    assert list(built.vocab) == sorted(built.vocab)  # ids are ranks in sorted order
    built.save(tmp_path)
    loaded = Postings.load(tmp_path)
    for t in {t for d in docs for t in d}:
        assert loaded.vocab[t] == built.vocab[t] and t in loaded.vocab
    for missing in ("aa", "zz", "日", "", "\x00"):
        if missing not in built.vocab:
            assert loaded.vocab.get(missing) is None and missing not in loaded.vocab
    assert list(loaded.vocab) == list(built.vocab) and len(loaded.vocab) == len(built.vocab)


def test_a_segment_with_the_old_json_vocabulary_still_loads(tmp_path: Path) -> None:
    """Segments written before the terms moved into lexical.npz keep lexical_vocab.json."""
    import json

    post = Postings.build(iter(DOCS))
    terms = sorted(post.vocab, key=post.vocab.__getitem__)
    (tmp_path / "lexical_vocab.json").write_text(json.dumps(terms, ensure_ascii=False), "utf-8")
    with open(tmp_path / "lexical.npz", "wb") as f:
        np.savez(f, indptr=post.indptr, rows=post.rows, tf=post.tf, lengths=post.lengths)
    old = LexicalIndex.load(tmp_path)
    assert isinstance(old.vocab, dict) and old.vocab == post.vocab
    query = ["山", "日本", "coffee"]
    assert np.allclose(old.scores(query), _reference(DOCS, query), atol=1e-5)


def test_segments_with_deletes_score_as_one_segment_of_the_live_rows() -> None:
    extra = [["山", "山", "川"], ["日本", "の", "山"], ["coffee"]]
    parts = [
        (Postings.build(DOCS), np.array([False, True, False, False])),  # 寿司 deleted
        (Postings.build(extra), None),
    ]
    live = [DOCS[0], DOCS[2], DOCS[3], *extra]
    query = ["山", "日本", "寿司", "coffee"]
    want = _reference(live, query)
    got = BM25(parts).scores(query)
    assert got[0][1] == 0.0  # a deleted row never scores
    flat = [float(got[0][i]) for i in (0, 2, 3)] + [float(x) for x in got[1]]
    assert np.allclose(flat, want, atol=1e-5)
    one = BM25([(Postings.build(live), None)])
    assert np.array_equal(np.concatenate([got[0][[0, 2, 3]], got[1]]), one.scores(query)[0])
    assert "寿司" not in one.idf(query) and "寿司" not in BM25(parts).idf(query)
    # Document frequencies count live rows only, counted (not scored) and then cached.
    split = BM25(parts)
    assert split.idf(query) == one.idf(query) == split.idf(query)
    assert split._df("寿司") == 0 and split._df("山") == sum("山" in d for d in live) > 1
    assert BM25(parts).coverage(query) == one.coverage(query)


def test_empty_index(tmp_path: Path) -> None:
    index = LexicalIndex.build([])
    index.save(tmp_path)
    loaded = LexicalIndex.load(tmp_path)
    assert loaded.n_rows == 0 and len(loaded.scores(["山"])) == 0


def _exact_top(bm: BM25, query: list[str], n: int, weights: dict[str, float] | None) -> list:
    """Top n (part, row, score) by scoring every row, ties broken by (part, row)."""
    found = [
        (-float(s[r]), i, int(r))
        for i, s in enumerate(bm.scores(query, weights))
        for r in np.flatnonzero(s)
    ]
    return sorted(found)[:n]


def _zipf(
    rng: np.random.Generator, n_vocab: int, exponent: float, length: tuple[int, int]
) -> tuple[list[str], np.ndarray, Callable[[int], list[list[str]]]]:
    """A vocabulary with Zipf word probabilities, and a maker of ``k`` random documents
    of ``length`` (low, high) words drawn from it."""
    vocab = [f"t{i}" for i in range(n_vocab)]
    p = 1.0 / np.arange(1, n_vocab + 1) ** exponent
    p /= p.sum()

    def docs(k: int) -> list[list[str]]:
        return [
            [vocab[j] for j in rng.choice(n_vocab, rng.integers(*length), p=p)] for _ in range(k)
        ]

    return vocab, p, docs


def test_pruned_top_n_equals_scoring_every_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 24: the top n without adding common terms to every row (MaxScore) is the top
    n of scoring every row, scores bit for bit, over parts with deletes, with weights."""
    monkeypatch.setattr(lexical, "PRUNE_MIN_POSTINGS", 200)
    rng = np.random.default_rng(3)
    vocab, p, docs = _zipf(rng, 3000, 1.07, (5, 60))
    dead = rng.random(700) < 0.1
    bm = BM25([(Postings.build(docs(700)), dead), (Postings.build(docs(500)), None)])
    pruned = 0
    for q in range(150):
        query = [vocab[j] for j in rng.choice(len(vocab), rng.integers(1, 8), p=p)]
        query += [vocab[int(rng.integers(0, 5))]]  # always a very common term
        weights = None if q % 2 else {t: float(rng.choice([0.3, 1.0])) for t in query}
        for n in (1, 5, 50):
            want = _exact_top(bm, query, n, weights)
            got = bm.top(query, n, weights)
            if got is None:
                continue
            pruned += 1
            assert sorted((-s, i, r) for i, r, s in got)[:n] == want, (query, n)
            assert all(not (i == 0 and dead[r]) for i, r, _ in got)
    assert pruned > 50  # the pruned path was taken (not always None)


@pytest.mark.parametrize("check_cost", [0, 8, 10**9])
@pytest.mark.parametrize("seed", [11, 12, 13])
def test_maxscore_is_exact_on_random_corpora(
    monkeypatch: pytest.MonkeyPatch, seed: int, check_cost: int
) -> None:
    """Issue 24: MaxScore's top n equals scoring every row (scores bit for bit, ties at the
    cut included) on random Zipf corpora of several parts with deletes, however many
    terms it adds to the partial scores before it checks rows one by one (check_cost 0:
    as few as it can; 10**9: every term)."""
    monkeypatch.setattr(lexical, "PRUNE_MIN_POSTINGS", 50)
    monkeypatch.setattr(lexical, "PRUNE_CHECK_COST", check_cost)
    rng = np.random.default_rng(seed)
    vocab, p, docs = _zipf(rng, 800, 1.1, (1, 40))
    sizes = rng.integers(50, 400, 3)
    parts = [(Postings.build(docs(int(k))), rng.random(int(k)) < 0.15) for k in sizes]
    parts[1] = (parts[1][0], None)
    bm = BM25(parts)
    pruned = 0
    for q in range(60):
        query = [vocab[j] for j in rng.choice(len(vocab), rng.integers(1, 9), p=p)]
        weights = None if q % 3 else {t: float(rng.choice([0.25, 0.5, 1.0])) for t in query}
        for n in (1, 3, 10, 100, 2000):
            want = _exact_top(bm, query, n, weights)
            got = bm.top(query, n, weights)
            if got is None:
                continue
            pruned += 1
            assert sorted((-s, i, r) for i, r, s in got)[:n] == want, (query, n)
            cut = -want[-1][0]  # every row returned scores at least the n-th best
            assert min(s for _, _, s in got) == cut
            dead = {
                (i, int(r))
                for i, (_, d) in enumerate(parts)
                if d is not None
                for r in np.flatnonzero(d)
            }
            assert not any((i, r) in dead for i, r, _ in got)
    assert pruned > 100


def test_union_of_row_lists_takes_each_path_to_the_same_rows() -> None:
    """BM25.top's union of the rare terms' rows: one list as is, a few sorted and
    deduplicated, many read off the partial scores; all give the sorted union."""
    rng = np.random.default_rng(5)
    for n_rows, sizes in ((10_000, [40]), (10_000, [40, 60, 25]), (500, [200, 300, 100])):
        rows = [np.sort(rng.choice(n_rows, k, replace=False)).astype(np.intp) for k in sizes]
        acc = np.zeros(n_rows, dtype=np.float32)
        for r in rows:
            acc[r] += 1.0
        got = lexical._union(rows, acc)
        assert np.array_equal(got, np.unique(np.concatenate(rows)))
    assert len(lexical._union([], np.zeros(5, dtype=np.float32))) == 0
