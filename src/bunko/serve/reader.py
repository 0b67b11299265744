"""Reading a corpus source's lines for the HTTP API and MCP: see :mod:`bunko.corpus.lines`."""

from __future__ import annotations

from bunko.corpus.lines import MAX_CHARS, MAX_LINES, ReadError, ReadPage, read_lines

__all__ = ["MAX_CHARS", "MAX_LINES", "ReadError", "ReadPage", "read_lines"]
