"""The JSON form of a query result: one function for `bunko query --json` and the HTTP API.

``GET /api/query`` must return exactly what ``bunko query --json`` prints, so both
build it here.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from bunko.types import QueryResult


def query_json(result: QueryResult) -> dict[str, Any]:
    """The stable ``bunko query --json`` object (documented in the README).

    ``answerable``, ``min_confidence`` and each result's ``confidence`` appear only
    when the query result carries them (the trust contract); they are never invented.
    """
    results = []
    for p in result.passages:
        c = p.citation
        item: dict[str, Any] = {
            "rank": p.rank,
            "score": p.score,
            "text": p.text,
            "source": c.source,
            "title": c.title,
            "heading": c.heading,
            "lines": [c.line_start, c.line_end],
            "chars": [c.char_start, c.char_end],
            "highlight": p.highlight,
            "page": list(c.page) if c.page is not None else None,
            "url": c.url,
            "link": c.link,
            "citation": c.render(),
        }
        confidence = getattr(p, "confidence", None)
        if confidence is not None:
            item["confidence"] = confidence
        if p.explain is not None:
            item["explain"] = asdict(p.explain)
        results.append(item)
    out: dict[str, Any] = {"query": result.query, "mode": result.mode, "model": result.model}
    answerable = getattr(result, "answerable", None)
    if answerable is not None:
        out["answerable"] = answerable
    min_confidence = getattr(result, "min_confidence", None)
    if min_confidence is not None:
        out["min_confidence"] = min_confidence
    if result.stale:  # answered from the last committed index; an update is running
        out["stale"] = True
        out["pending"] = list(result.pending)
    out["results"] = results
    return out
