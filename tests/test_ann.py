"""The approximate FAISS index: chosen above a threshold, tuned for recall, reported."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import faiss
import numpy as np
import pytest
from typer.testing import CliRunner

from bunko.api import Shelf
from bunko.cli import app
from bunko.config import Settings
from bunko.index import ann

MINI = Path(__file__).parent / "data" / "mini"


def _clustered(n: int, dim: int = 64, clusters: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, dim)).astype(np.float32)
    x = centers[rng.integers(0, clusters, n)] + 0.6 * rng.normal(size=(n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x, dtype=np.float32)


def test_wanted_type_switches_at_the_threshold_and_does_not_flap() -> None:
    assert ann.wanted_type(99, None, 100) == "flat"
    assert ann.wanted_type(100, None, 100) == "ivf-sq8"
    assert ann.wanted_type(60, "ivf-sq8", 100) == "ivf-sq8"  # shrinking a little keeps it
    assert ann.wanted_type(49, "ivf-sq8", 100) == "flat"
    assert ann.wanted_type(60, "flat", 100) == "flat"


def test_threshold_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ann.threshold() == ann.DEFAULT_THRESHOLD
    monkeypatch.setenv("BUNKO_ANN_THRESHOLD", "123")
    assert ann.threshold() == 123
    monkeypatch.setenv("BUNKO_ANN_THRESHOLD", "lots")
    assert ann.threshold() == ann.DEFAULT_THRESHOLD


def test_ivf_build_keeps_recall_against_exact_search() -> None:
    x = _clustered(6000)
    ids = np.arange(6000, dtype=np.int64) * 7 + 3  # ids need not be row numbers
    index, info = ann.build(x, ids, "ivf-sq8")
    assert info["index_type"] == "ivf-sq8" == ann.index_type(index)
    assert info["recall_at_10"] >= ann.TUNE_TARGET
    assert 1 <= info["nprobe"] <= info["nlist"]
    # Fresh queries near the data, not the tuning sample itself.
    rng = np.random.default_rng(9)
    q = x[rng.integers(0, 6000, 200)] + 0.1 * rng.normal(size=(200, 64)).astype(np.float32)
    q = np.ascontiguousarray(q / np.linalg.norm(q, axis=1, keepdims=True), dtype=np.float32)
    _, exact = faiss.knn(q, x, 10, faiss.METRIC_INNER_PRODUCT)
    _, found = index.search(q, 10)
    assert ann.recall_at(ids[exact], found) >= ann.RECALL_TARGET
    assert np.array_equal(ann.row_ids(index), ids)  # ascending chunk id
    back = ann.reconstruct(index, ids[[5, 17]])
    assert float((back * x[[5, 17]]).sum(axis=1).min()) > 0.999
    # reconstruct added an id lookup table; for_writing drops it (it is not stored),
    # and the index still holds and finds the same vectors.
    assert index.direct_map.type != faiss.DirectMap.NoMap
    assert ann.for_writing(index) is index
    assert index.direct_map.type == faiss.DirectMap.NoMap
    assert index.ntotal == len(ids) and np.array_equal(ann.row_ids(index), ids)
    _, again = index.search(q, 10)
    assert np.array_equal(again, found)


def _top_sources(settings: Settings, question: str) -> list[str]:
    result = Shelf(settings).query(question, k=3, mode="dense")
    return [p.citation.source for p in result.passages]


def test_shelf_uses_ivf_above_the_threshold(
    mini: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BUNKO_ANN_THRESHOLD", "2")
    ivf = Settings.resolve(corpus=mini.corpus, index=tmp_path / "ivf-index")
    report = Shelf(ivf).index()
    assert report.chunks_embedded == report.chunks_total > 2
    status = Shelf(ivf).status()
    assert status.index_type == "ivf-sq8"
    assert status.recall_at_10 is not None and status.recall_at_10 >= ann.RECALL_TARGET
    assert status.nprobe is not None
    meta = json.loads(next(ivf.index.glob("gen-*/meta.json")).read_text("utf-8"))
    assert meta["index_type"] == "ivf-sq8" and meta["nlist"] >= 1
    # Same answers as the exact index built without the threshold.
    for question in ("富士山の標高は何メートルですか？", "How is sushi made?"):
        assert _top_sources(ivf, question)[:1] == _top_sources(mini, question)[:1]

    out = CliRunner().invoke(
        app, ["status", "--corpus", str(ivf.corpus), "--index", str(ivf.index)]
    )
    assert out.exit_code == 0
    assert "ivf-sq8, recall@10" in out.output


def test_ivf_index_updates_incrementally_and_reuses_vectors(
    mini_unindexed: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BUNKO_ANN_THRESHOLD", "2")  # read when Settings are resolved
    shelf = Shelf(Settings.resolve(corpus=mini_unindexed.corpus, index=mini_unindexed.index))
    first = shelf.index()
    (mini_unindexed.corpus / "matcha.md").write_text(
        "# 抹茶\n\n抹茶は碾茶を石臼で挽いた粉末の緑茶です。\n", "utf-8"
    )
    second = shelf.index()
    assert second.added == 1 and not second.rebuilt
    n_matcha = shelf.loaded().documents()["matcha.md"].n_chunks
    assert second.chunks_embedded == n_matcha == second.chunks_total - first.chunks_total
    assert shelf.status().index_type == "ivf-sq8"
    top = shelf.query("抹茶の産地と作り方", k=1, mode="dense").passages[0]
    assert top.citation.source == "matcha.md"
    # A rebuild re-embeds nothing: every chunk text is unchanged.
    again = shelf.index(rebuild=True)
    assert again.rebuilt and again.chunks_embedded == 0
    # Removing articles below half the threshold goes back to exact search.
    # (A segment's type is chosen when it is written: the removal rewrites the one
    # whose rows are mostly deleted.)
    monkeypatch.setenv("BUNKO_ANN_THRESHOLD", str(2 * first.chunks_total + 10))
    shutil.rmtree(mini_unindexed.corpus)
    shutil.copytree(MINI, mini_unindexed.corpus)
    (mini_unindexed.corpus / "fuji.md").unlink()
    shelf = Shelf(Settings.resolve(corpus=mini_unindexed.corpus, index=mini_unindexed.index))
    shelf.index()
    assert shelf.status().index_type == "flat"
