"""Indexing on Ray (`bunko index --ray`), through the real CLI in a child process.

Each Ray run starts its own private local Ray (2 CPUs, loopback, no dashboard,
its files in a temporary folder given by RAY_TMPDIR) and stops it before the
child exits. The comparisons are with a local run of the same engine on the same
articles: the same chunks, and vectors whose cosine is at least 0.9999.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bunko.index.store import IndexStore
from reliability_helpers import SHIPPED, bunko, child_env, generations, snapshot

# Three of the five shipped articles: about 250 sentences, 7,000 tokens.
ARTICLES = sorted(SHIPPED.iterdir())[:1] + sorted(SHIPPED.iterdir())[2:4]
# Generous: a loaded 2-core machine starts Ray in 5-30 s and embeds slowly.
TIMEOUT = 900


def _ray_env(tmp: Path, **extra: str) -> dict[str, str]:
    # Small batches, so that each of the two actors gets several.
    return child_env(RAY_TMPDIR=str(tmp), BUNKO_RAY_BATCH="16", **extra)


def _index_json(shelf: Path, *args: str, env: dict[str, str]) -> dict[str, Any]:
    res = subprocess.run(
        bunko("index", "--json", *args), cwd=shelf, env=env, capture_output=True, text=True,
        timeout=TIMEOUT,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    out: dict[str, Any] = json.loads(res.stdout)
    return out


def _shelf(root: Path, articles: list[Path] = ARTICLES) -> Path:
    (root / "corpus").mkdir(parents=True)
    for path in articles:
        shutil.copy(path, root / "corpus" / path.name)
    return root


def _vectors(index: Path) -> dict[tuple[str, int, int], tuple[Any, Any]]:
    """(chunk vector, sentence vectors) of every chunk, keyed by where the chunk is."""
    loaded = IndexStore(index).load()
    try:
        ids = loaded.live_ids().tolist()
        rows = loaded.chunks(ids)
        chunk = loaded.chunk_vectors(ids)
        sent = loaded.sentence_vectors(rows.values())
        return {(r.source, r.char_start, r.char_end): (chunk[i], sent[i]) for i, r in rows.items()}
    finally:
        loaded.close()


def _min_cosine(a: Path, b: Path) -> float:
    va, vb = _vectors(a), _vectors(b)
    assert va.keys() == vb.keys()
    worst = 1.0
    for key, (ca, sa) in va.items():
        cb, sb = vb[key]
        worst = min(worst, float(ca @ cb))
        cos = (sa * sb).sum(axis=1) / np.linalg.norm(sa, axis=1) / np.linalg.norm(sb, axis=1)
        worst = min(worst, float(cos.min()))
    return worst


@pytest.fixture
def ray_tmp() -> Iterator[Path]:
    """Ray's session files (sockets, logs): a short path, as Unix sockets need."""
    tmp = Path(tempfile.mkdtemp(prefix="bunko-ray-", dir="/tmp"))
    yield tmp
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three articles indexed locally, once for the module."""
    shelf = _shelf(tmp_path_factory.mktemp("ray-local"))
    report = _index_json(shelf, env=child_env())
    assert report["embedding"]["executor"] == "local"
    return shelf


@pytest.mark.slow
def test_ray_auto_gives_the_chunks_and_vectors_of_a_local_run(
    local_reference: Path, tmp_path: Path, ray_tmp: Path
) -> None:
    shelf = _shelf(tmp_path / "shelf")
    report = _index_json(shelf, "--ray", "auto", "--ray-cpus", "2", env=_ray_env(ray_tmp))
    emb = report["embedding"]
    assert emb["executor"] == "ray" and emb["workers"] == 2
    assert emb["tokens"] > 0 and emb["tokens_per_s"] > 0
    ref, got = snapshot(local_reference / "index"), snapshot(shelf / "index")
    assert got.documents == ref.documents and got.chunks == ref.chunks
    assert report["chunks_total"] == sum(ref.chunks.values())
    assert _min_cosine(local_reference / "index", shelf / "index") >= 0.9999

    # Unchanged chunks are reused by hash and never sent to the cluster: with
    # nothing to embed, no Ray is started (no workers), and one new article
    # sends only its own sentences.
    again = _index_json(shelf, "--ray", "auto", "--ray-cpus", "2", env=_ray_env(ray_tmp))
    assert again["chunks_embedded"] == 0 and again["embedding"]["workers"] == 0
    new = sorted(SHIPPED.iterdir())[1]
    shutil.copy(new, shelf / "corpus" / new.name)
    more = _index_json(shelf, "--ray", "auto", "--ray-workers", "1", env=_ray_env(ray_tmp))
    assert more["added"] == 1 and more["unchanged"] == len(ARTICLES)
    assert more["chunks_embedded"] == snapshot(shelf / "index").documents[new.name][1]
    assert 0 < more["embedding"]["tokens"] < emb["tokens"]
    assert more["embedding"]["workers"] == 1


@pytest.mark.slow
def test_an_actor_killed_mid_run_has_its_batches_retried(
    local_reference: Path, tmp_path: Path, ray_tmp: Path
) -> None:
    """An actor process exits on its second batch (once in the run); Ray restarts it,
    its unfinished batches run again, and the index is the one a local run builds."""
    marker = tmp_path / "killed"
    shelf = _shelf(tmp_path / "shelf")
    env = _ray_env(ray_tmp, BUNKO_RAY_FAULT=f"2:{marker}")
    report = _index_json(shelf, "--ray", "auto", "--ray-cpus", "2", env=env)
    assert marker.exists(), "no actor died: the fault hook did not fire"
    assert report["embedding"]["workers"] == 2
    ref, got = snapshot(local_reference / "index"), snapshot(shelf / "index")
    assert got.chunks == ref.chunks
    assert _min_cosine(local_reference / "index", shelf / "index") >= 0.9999


@pytest.mark.slow
def test_workers_that_keep_dying_fail_the_run_and_keep_the_index(
    local_reference: Path, tmp_path: Path, ray_tmp: Path
) -> None:
    shelf = tmp_path / "shelf"
    shutil.copytree(local_reference, shelf)
    before, gens = snapshot(shelf / "index"), generations(shelf / "index")
    (shelf / "corpus" / "new.md").write_text(
        "# 新しい記事\n\n富士山は日本で一番高い山です。標高は3776メートルです。\n", "utf-8"
    )
    env = _ray_env(ray_tmp, BUNKO_RAY_FAULT="1", BUNKO_RAY_RETRIES="0")
    res = subprocess.run(
        bunko("index", "--ray", "auto", "--ray-cpus", "2"), cwd=shelf, env=env,
        capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert res.returncode == 1, res.stderr[-3000:]
    assert "Error: a Ray worker died while embedding" in res.stderr
    assert "the index is unchanged" in res.stderr and "Traceback" not in res.stderr
    assert res.stdout == ""
    after = snapshot(shelf / "index")
    assert after.generation == before.generation and generations(shelf / "index") == gens
    assert after.same_content(before)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def ray_cluster(ray_tmp: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A Ray cluster started as the README says (`ray start --head`), on loopback,
    with token authentication (Ray's default); stopped by signalling that one
    process, which stops the processes it started."""
    port = _free_port()
    env = child_env(RAY_AUTH_MODE="token")
    ray_cli = Path(sys.executable).parent / "ray"
    head = subprocess.Popen(
        [str(ray_cli), "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
         "--include-dashboard=false", "--node-ip-address=127.0.0.1", "--disable-usage-stats",
         f"--temp-dir={ray_tmp}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while True:
            assert head.poll() is None, "ray start --head exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the Ray head did not start in 180 s"
                time.sleep(1)
        yield f"127.0.0.1:{port}", env
    finally:
        head.terminate()
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait(timeout=30)


@pytest.mark.slow
def test_ray_address_joins_a_running_cluster(
    local_reference: Path, tmp_path: Path, ray_cluster: tuple[str, dict[str, str]]
) -> None:
    address, env = ray_cluster
    shelf = tmp_path / "shelf"
    shutil.copytree(local_reference, shelf)
    new = sorted(SHIPPED.iterdir())[1]
    shutil.copy(new, shelf / "corpus" / new.name)
    report = _index_json(shelf, "--ray", address, env={**env, "BUNKO_RAY_BATCH": "16"})
    assert report["added"] == 1 and report["unchanged"] == len(ARTICLES)
    emb = report["embedding"]
    assert emb["executor"] == "ray" and emb["workers"] == 2 and emb["tokens_per_s"] > 0
    # The cluster outlives the run: a second run joins it again.
    again = _index_json(shelf, "--ray", address, "--rebuild", env=env)
    assert again["chunks_embedded"] == 0 and again["embedding"]["workers"] == 0


def test_an_address_where_no_cluster_answers_is_a_clear_error(tmp_path: Path) -> None:
    shelf = _shelf(tmp_path / "shelf", sorted(SHIPPED.iterdir())[:1])
    res = subprocess.run(
        bunko("index", "--ray", "127.0.0.1:1"), cwd=shelf, env=child_env(),
        capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert res.returncode == 1
    assert "Error: could not join the Ray cluster at 127.0.0.1:1" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (shelf / "index").exists() or not generations(shelf / "index")


def test_without_the_ray_package_the_error_says_what_to_install(tmp_path: Path) -> None:
    shelf = _shelf(tmp_path / "shelf", sorted(SHIPPED.iterdir())[:1])
    code = (
        "import sys\nsys.modules['ray'] = None  # as if not installed\n"
        "from bunko.__main__ import main\nsys.argv = ['bunko', 'index', '--ray', 'auto']\nmain()"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=shelf, env=child_env(), capture_output=True,
        text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert res.returncode == 1, res.stderr[-2000:]
    assert "Error: embedding on Ray needs the ray package: pip install 'bunko[ray]'" in res.stderr
    assert "Traceback" not in res.stderr


def test_ray_options_need_ray(tmp_path: Path) -> None:
    res = subprocess.run(
        bunko("index", "--ray-workers", "2"), cwd=tmp_path, env=child_env(),
        capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert res.returncode == 2 and "need --ray" in res.stderr


def test_a_local_index_reports_its_embedding_and_never_imports_ray(tmp_path: Path) -> None:
    """`bunko index --json` has the "embedding" block without Ray too; neither a local
    index nor a query imports ray."""
    shelf = _shelf(tmp_path / "shelf", sorted(SHIPPED.iterdir())[:1])
    code = (
        "import sys\nfrom bunko.cli import app\n"
        "for args in (['index', '--json'], ['query', '富士山', '--json']):\n"
        "    try:\n        app(args)\n"
        "    except SystemExit as exit:\n        assert exit.code in (0, None), exit.code\n"
        "print('RAY-IMPORTED' if 'ray' in sys.modules else 'NO-RAY')"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=shelf, env=child_env(), capture_output=True,
        text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.rstrip().endswith("NO-RAY")
    report = json.loads(res.stdout[: res.stdout.index("\n}\n") + 2])
    emb = report["embedding"]
    assert set(emb) == {"executor", "workers", "tokens", "seconds", "startup_s", "tokens_per_s"}
    assert emb["executor"] == "local" and emb["workers"] == 1 and emb["startup_s"] == 0
    assert emb["tokens"] > 0 and emb["seconds"] > 0
    assert emb["tokens_per_s"] == pytest.approx(emb["tokens"] / emb["seconds"], rel=0.01)
