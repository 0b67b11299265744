"""Shared pieces of the reliability tests: run the real CLI, and check an index whole.

``snapshot`` opens an index folder the way a query does and checks every invariant
a crash or a race could break (``Snapshot.check``: each segment's vectors, chunk
table and BM25 rows agree, no chunk is live twice, every chunk belongs to a document
row, and each document's chunk count matches). It returns what the index holds,
without chunk ids (an incremental update numbers chunks differently from a clean
rebuild), so two indexes can be compared.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import bunko as bunko_package
from bunko.index.format import GENERATION_FILES, MANIFEST
from bunko.index.store import IndexStore

REPO = Path(__file__).resolve().parents[1]
SHIPPED = Path(__file__).parent / "data" / "articles"  # a copy of corpus/, which users edit
MINI = Path(__file__).parent / "data" / "mini"


def bunko(*args: str | Path) -> list[str]:
    """The command line of the real CLI in a fresh interpreter."""
    return [sys.executable, "-m", "bunko", *map(str, args)]


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child bunko: ours, plus ``extra``.

    The child must run the very bunko under test, even when PYTHONPATH is relative
    (``PYTHONPATH=src pytest``) and the child starts in another folder.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUNKO_") or k == "BUNKO_CACHE"}
    here = str(Path(bunko_package.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([here, *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


def run_bunko(
    *args: str | Path, timeout: float = 600, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        bunko(*args), capture_output=True, text=True, env=child_env(**env), timeout=timeout
    )


@dataclass(frozen=True)
class Snapshot:
    """What an index holds: documents, chunk spans and texts, and a vector per chunk."""

    generation: str
    documents: dict[str, tuple[str, int]]  # source -> (sha256, n_chunks)
    chunks: Counter[tuple[str, int, int, str]]  # (source, char_start, char_end, text)
    vectors: dict[tuple[str, int, int], Any]

    def same_content(self, other: Snapshot, atol: float = 1e-4) -> bool:
        if self.documents != other.documents or self.chunks != other.chunks:
            return False
        return all(np.allclose(v, other.vectors[k], atol=atol) for k, v in self.vectors.items())


def snapshot(index: Path) -> Snapshot:
    """Open the live generation of ``index`` and check it whole (see the module doc)."""
    loaded = IndexStore(index).load()
    try:
        loaded.check()
        ids = loaded.live_ids().tolist()
        docs = {s: (d.sha256, d.n_chunks) for s, d in loaded.documents().items()}
        rows = loaded.chunks(ids)
        vecs = loaded.chunk_vectors(ids)
        assert set(rows) == set(vecs) == set(ids), "vectors without rows, or rows without vectors"
        chunks: Counter[tuple[str, int, int, str]] = Counter()
        vectors: dict[tuple[str, int, int], Any] = {}
        for cid, row in rows.items():
            chunks[(row.source, row.char_start, row.char_end, row.text)] += 1
            vec = vecs[cid]
            assert abs(float(np.linalg.norm(vec)) - 1.0) < 1e-3
            vectors[(row.source, row.char_start, row.char_end)] = vec
        return Snapshot(loaded.folder.name, docs, chunks, vectors)
    finally:
        loaded.close()


def index_file(gen: Path, name: str) -> Path:
    """A file of a generation: its own (meta.json, docs.sqlite) or one of its first segment."""
    if name in GENERATION_FILES:
        return gen / name
    meta = json.loads((gen / MANIFEST).read_text("utf-8"))
    return gen.parent / meta["segments"][0]["name"] / name


def leftovers(index: Path) -> list[str]:
    """Temporary files and folders of unfinished writers."""
    return sorted(p.name for p in index.iterdir() if p.name.startswith((".tmp-", ".CURRENT-")))


def generations(index: Path) -> list[str]:
    return sorted(p.name for p in index.glob("gen-*"))


def articles(n: int, chars: int, tag: str) -> dict[str, str]:
    """``n`` Japanese articles of about ``chars`` characters, cut from the shipped corpus.

    Each gets its own title and a marker sentence, so they differ from each other
    and from the source articles (no vector is reused across them).
    """
    texts = [p.read_text("utf-8") for p in sorted(SHIPPED.glob("*.txt"))]
    body = "".join(t.split("---", 2)[-1] for t in texts)
    body = "\n".join(line for line in body.splitlines() if line.strip())
    out = {}
    for i in range(n):
        start = (i * 7919 * 13) % max(1, len(body) - chars)
        piece = body[start : start + chars]
        out[f"{tag}{i:02d}.md"] = f"# 記事{tag}{i}\n\n{tag}{i}番の記事の目印の文です。\n\n{piece}\n"
    return out


def write_corpus(folder: Path, files: dict[str, str | bytes]) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, "utf-8")


def mini_files() -> dict[str, str | bytes]:
    return {p.name: p.read_bytes() for p in sorted(MINI.iterdir())}
