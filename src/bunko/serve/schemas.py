"""The shapes of what the HTTP API and the MCP server return, as pydantic models.

One citation shape (:class:`CitationOut`) is shared by ``GET /api/query`` (the
``bunko query --json`` object), the MCP ``search`` tool and ``ask``; the MCP output
schemas and the OpenAPI document (``/docs``) are generated from these models.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class CitationOut(BaseModel):
    """Where a passage lives (see :func:`bunko.jsonout.citation_json`)."""

    source: str  # corpus-relative path, "/" separators
    title: str
    heading: str | None  # the heading path as written ("H1 > H2")
    section: str | None  # the heading path without a first heading that repeats the title
    lines: list[int]  # [first, last], 1-based, inclusive
    chars: list[int]  # [start, end) in the file's text
    page: list[int] | None  # [first, last] page of a PDF passage
    url: str | None  # canonical URL of a web page
    link: str | None  # url with a text fragment at the passage
    citation: str  # the rendered citation, "[1] Title › Section — file.md:6-9 p.2"


class QueryHit(CitationOut):
    rank: int
    score: float
    text: str
    highlight: str
    confidence: float
    explain: dict[str, Any] | None = None


class QueryOut(BaseModel):
    """The ``bunko query --json`` object, also ``GET /api/query``."""

    query: str
    mode: str
    model: str
    answerable: bool  # false when no passage is confident enough, or none is left
    min_confidence: float
    # Only while a server's background update runs: answered from the last committed
    # index, and the corpus files the update is indexing.
    stale: bool = False
    pending: list[str] = []
    results: list[QueryHit]


class SearchHit(CitationOut):
    """One MCP ``search`` result: a bounded excerpt around the highlight."""

    text: str  # at most 1,200 characters around the highlight ("…" where cut)
    text_chars: list[int]  # [start, end) of ``text`` in the file
    highlight: str
    confidence: float


class SearchOutput(BaseModel):
    answerable: bool
    stale: bool = False  # as in QueryOut
    pending: list[str] = []
    results: list[SearchHit]


class ReadOutput(BaseModel):
    model_config = ConfigDict(extra="allow")  # "next": a hint when more follows

    source: str
    title: str
    lines: list[int]
    total_lines: int
    text: str
    truncated: bool
    next_start_line: int | None


class StatusOutput(BaseModel):
    corpus: str
    index: str
    exists: bool
    model: str | None
    documents: int
    chunks: int
    updated: str | None
    not_indexed: list[str]


class AskBody(BaseModel):
    """``POST /api/ask``: the same fields as ``GET /api/query``."""

    model_config = ConfigDict(extra="forbid")

    q: str
    k: int = 5
    mode: str = "hybrid"
    source: list[str] = []
