"""The JSON form of citations and query results: one place for every front end.

``bunko query --json``, ``GET /api/query``, the MCP ``search`` tool and ``ask --json``
all build their citation objects with :func:`citation_json`, so a citation has the
same fields (page and link included) and the same rendered text everywhere.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

from bunko.types import Citation, QueryResult, heading_below_title


def citation_json(c: Citation, number: int | None = None) -> dict[str, Any]:
    """A citation as JSON; ``number`` renumbers it (``ask`` keeps the query's numbers)."""
    if number is not None and number != c.number:
        c = replace(c, number=number)
    return {
        "source": c.source,
        "title": c.title,
        "heading": c.heading,
        "section": heading_below_title(c.title, c.heading),
        "lines": [c.line_start, c.line_end],
        "chars": [c.char_start, c.char_end],
        "page": list(c.page) if c.page is not None else None,
        "url": c.url,
        "link": c.link,
        "citation": c.render(),
    }


def query_json(result: QueryResult) -> dict[str, Any]:
    """The stable ``bunko query --json`` object (``bunko.serve.schemas.QueryOut``)."""
    results = []
    for p in result.passages:
        item: dict[str, Any] = {
            "rank": p.rank,
            "score": p.score,
            "text": p.text,
            **citation_json(p.citation),
            "highlight": p.highlight,
            "confidence": p.confidence,
        }
        if p.explain is not None:
            item["explain"] = asdict(p.explain)
        results.append(item)
    out: dict[str, Any] = {
        "query": result.query,
        "mode": result.mode,
        "model": result.model,
        "answerable": result.answerable,
        "min_confidence": result.min_confidence,
    }
    if result.stale:  # answered from the last committed index; an update is running
        out["stale"] = True
        out["pending"] = list(result.pending)
    out["results"] = results
    return out
