"""bunko (文庫): local question answering over a shelf of articles, with citations.

Importing this package is cheap: heavy dependencies (faiss, fugashi, the embedding
model) are loaded only when an API call needs them.
"""

from __future__ import annotations

__version__ = "0.1.0"

from bunko.errors import BunkoError
from bunko.types import Citation, IndexReport, Passage, QueryResult

__all__ = ["BunkoError", "Citation", "IndexReport", "Passage", "QueryResult", "__version__"]
