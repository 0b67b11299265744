"""Shared pieces of the HTTP API and the MCP server: a locked shelf and bounded results.

Neither front end checks a question itself: both build a
:class:`~bunko.retrieval.query.QueryRequest` (the one validation, limits included)
and translate its :class:`~bunko.types.QueryResult`.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from bunko.api import Shelf
from bunko.errors import (
    BunkoError,
    IndexMissingError,
    SourceError,
    SourceNotFoundError,
    UsageError,
)
from bunko.jsonout import citation_json
from bunko.retrieval.query import QueryRequest
from bunko.types import Passage, QueryResult

MCP_MAX_K = 20  # an MCP tool result stays well below a host's ~25k-token cut
MCP_TEXT_CHARS = 1200
MCP_HIGHLIGHT_CHARS = 600


def http_status(exc: BunkoError) -> int:
    """The HTTP status of a bunko error, chosen by its type."""
    if isinstance(exc, SourceNotFoundError):
        return 404
    if isinstance(exc, (UsageError, SourceError)):
        return 400
    if isinstance(exc, IndexMissingError):
        return 503
    from bunko.serve.reader import ReadError  # (a refused read: bad name or range)

    if isinstance(exc, ReadError):
        return 400
    return 500


class SharedShelf:
    """One warm :class:`Shelf` for a server: model and index stay loaded; calls are serialised."""

    def __init__(self, shelf: Shelf) -> None:
        from bunko.serve.updater import BackgroundUpdater

        self.shelf = shelf
        self.lock = threading.Lock()
        # Index updates run there, never inside a request (see bunko.serve.updater).
        self.updater = BackgroundUpdater(shelf)

    def query(self, request: QueryRequest) -> QueryResult:
        """Exactly ``bunko query`` for the same request (source globs included)."""
        with self.lock:
            pending = self.updater.poll(self.shelf)
            result = self.shelf.query(dataclasses.replace(request, update=False))
        if pending:  # answered from the last committed index while the update runs
            result = dataclasses.replace(result, stale=True, pending=pending)
        return result

    def status(self) -> dict[str, Any]:
        updating = self.updater.running
        with self.lock:
            out = dataclasses.asdict(self.shelf.status(read_new=not updating))
        out["updating"] = updating
        return out


def trim_around(p: Passage, width: int = MCP_TEXT_CHARS) -> tuple[str, int, int]:
    """The passage text cut to ``width`` characters around its highlight.

    Returns:
        The text (with "…" where cut) and its [start, end) char span in the file.
    """
    text = p.text
    c = p.citation
    if len(text) <= width:
        return text, c.char_start, c.char_end
    hl_start = p.highlight_span[0] - c.char_start
    hl_end = p.highlight_span[1] - c.char_start
    room = max(0, width - (hl_end - hl_start))
    start = max(0, hl_start - room // 3)
    end = min(len(text), start + width)
    start = max(0, end - width)
    out = ("…" if start > 0 else "") + text[start:end] + ("…" if end < len(text) else "")
    return out, c.char_start + start, c.char_start + end


def mcp_results(result: QueryResult) -> dict[str, Any]:
    """The MCP ``search`` tool's structured content (``schemas.SearchOutput``)."""
    items = []
    for p in result.passages:
        text, t_start, t_end = trim_around(p)
        items.append(
            {
                **citation_json(p.citation),
                "text": text,
                "text_chars": [t_start, t_end],
                "highlight": p.highlight[:MCP_HIGHLIGHT_CHARS],
                "confidence": float(p.confidence),
            }
        )
    out: dict[str, Any] = {"answerable": result.answerable}
    if result.stale:
        out["stale"] = True
        out["pending"] = list(result.pending)
    out["results"] = items
    return out
