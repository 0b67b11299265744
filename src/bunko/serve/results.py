"""Shared pieces of the HTTP API and the MCP server: bounded results and a locked shelf."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from bunko.api import Shelf
from bunko.errors import UsageError
from bunko.types import MODES, Mode, Passage, QueryResult

MAX_K = 50
MAX_QUESTION_CHARS = 2000
MCP_TEXT_CHARS = 1200
MCP_HIGHLIGHT_CHARS = 600
SOURCE_POOL = 100  # passages searched when results are limited to one source


def check_query(question: str, k: int, mode: str) -> Mode:
    """Bound a query from the network.

    Raises:
        UsageError: empty or over-long question, k outside 1..MAX_K, unknown mode.
    """
    if not question or not question.strip():
        raise UsageError("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise UsageError(f"the question is over {MAX_QUESTION_CHARS} characters")
    if not 1 <= k <= MAX_K:
        raise UsageError(f"k must be between 1 and {MAX_K} (got {k})")
    if mode not in MODES:
        raise UsageError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    return mode


class SharedShelf:
    """One warm :class:`Shelf` for a server: model and index stay loaded; calls are serialised."""

    def __init__(self, shelf: Shelf) -> None:
        from bunko.serve.updater import BackgroundUpdater

        self.shelf = shelf
        self.lock = threading.Lock()
        # Index updates run there, never inside a request (see bunko.serve.updater).
        self.updater = BackgroundUpdater(shelf)

    def query(self, question: str, k: int, mode: str, source: str | None = None) -> QueryResult:
        """Like ``bunko query``; with ``source``, only passages of that file or folder.

        The source filter looks through the best :data:`SOURCE_POOL` passages and
        renumbers what it keeps 1..k.
        """
        m = check_query(question, k, mode)
        if source is not None and (not source.strip() or len(source) > 1000):
            raise UsageError("source must be a corpus path such as 'notes/article.md'")
        want = k if source is None else max(k, SOURCE_POOL)
        with self.lock:
            pending = self.updater.poll(self.shelf)
            result = self.shelf.query(question, k=want, mode=m, update=False)
        if pending:
            result = dataclasses.replace(result, stale=True, pending=pending)
        if source is None:
            return result
        prefix = source.strip("/")
        kept = [
            p
            for p in result.passages
            if p.citation.source == prefix or p.citation.source.startswith(prefix + "/")
        ][:k]
        renumbered = tuple(
            dataclasses.replace(p, rank=i, citation=dataclasses.replace(p.citation, number=i))
            for i, p in enumerate(kept, 1)
        )
        return dataclasses.replace(result, passages=renumbered)

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
    """The MCP ``search`` tool's structured content: bounded, with exact citations."""
    out: dict[str, Any] = {}
    answerable = getattr(result, "answerable", None)
    if answerable is not None:
        out["answerable"] = bool(answerable)
    items = []
    for p in result.passages:
        c = p.citation
        text, t_start, t_end = trim_around(p)
        item: dict[str, Any] = {
            "source": c.source,
            "title": c.title,
            "heading": c.heading,
            "lines": [c.line_start, c.line_end],
            "chars": [c.char_start, c.char_end],
            "text": text,
            "text_chars": [t_start, t_end],
            "highlight": p.highlight[:MCP_HIGHLIGHT_CHARS],
            "citation": c.render(),
        }
        confidence = getattr(p, "confidence", None)
        if confidence is not None:
            item["confidence"] = float(confidence)
        items.append(item)
    if result.stale:
        out["stale"] = True
        out["pending"] = list(result.pending)
    out["results"] = items
    return out
