"""bunko (文庫): local question answering over a shelf of articles, with citations.

Importing this package is cheap: heavy dependencies (faiss, fugashi, the embedding
model) are loaded only when an API call needs them, and :class:`Shelf` itself is
imported on first use (module ``__getattr__``).

    from bunko import Shelf

    shelf = Shelf.open()              # the shelf around the current folder
    shelf.index()
    for p in shelf.query("GPT-4.5の料金は？", k=3).passages:
        print(p.citation.render(), p.highlight)
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

from bunko.errors import (
    AddError,
    BunkoError,
    ClusterError,
    CorpusError,
    IndexMissingError,
    ModelMismatchError,
    SkipFile,
    SourceError,
    SourceNotFoundError,
    UsageError,
)
from bunko.types import (
    Citation,
    EmbeddingReport,
    EvalReport,
    IndexReport,
    Passage,
    QueryResult,
    SkippedFile,
    StatusReport,
)

if TYPE_CHECKING:
    from bunko.api import Shelf
    from bunko.config import Settings
    from bunko.retrieval.query import QueryRequest
    from bunko.shelfops import ShowResult
    from bunko.types import AddReport, RemoveReport

# Imported on first access, so that `import bunko` stays light.
_LAZY = {
    "Shelf": "bunko.api",
    "AddReport": "bunko.types",
    "RemoveReport": "bunko.types",
    "Settings": "bunko.config",
    "QueryRequest": "bunko.retrieval.query",
    "ShowResult": "bunko.shelfops",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bunko' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AddError",
    "AddReport",
    "BunkoError",
    "Citation",
    "ClusterError",
    "CorpusError",
    "EmbeddingReport",
    "EvalReport",
    "IndexMissingError",
    "IndexReport",
    "ModelMismatchError",
    "Passage",
    "QueryRequest",
    "QueryResult",
    "RemoveReport",
    "Settings",
    "Shelf",
    "ShowResult",
    "SkipFile",
    "SkippedFile",
    "SourceError",
    "SourceNotFoundError",
    "StatusReport",
    "UsageError",
    "__version__",
]
