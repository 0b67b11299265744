"""Read a corpus source's lines, safely: nothing outside the corpus is ever read.

Used by the MCP ``read`` tool and ``GET /api/read``, so both give the same bounds
and the same refusals.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from bunko.errors import BunkoError, SkipFile, SourceNotFoundError

MAX_LINES = 200
MAX_CHARS = 20_000
MAX_SOURCE_CHARS = 1_000


class ReadError(BunkoError):
    """A read was refused (outside the corpus, unknown source, bad line range)."""


@dataclass(frozen=True)
class ReadPage:
    """Some lines of one source, exactly as in its text (line endings kept).

    ``start_line``/``end_line`` are the 1-based inclusive lines returned;
    ``next_start_line`` is where the next page starts, or None at the end.
    """

    source: str
    title: str
    start_line: int
    end_line: int
    total_lines: int
    text: str
    truncated: bool
    next_start_line: int | None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "source": self.source,
            "title": self.title,
            "lines": [self.start_line, self.end_line],
            "total_lines": self.total_lines,
            "text": self.text,
            "truncated": self.truncated,
            "next_start_line": self.next_start_line,
        }
        if self.next_start_line is not None:
            out["next"] = (
                f"more follows: read again with start_line={self.next_start_line} "
                f"(up to {MAX_LINES} lines or {MAX_CHARS} characters a page)"
            )
        return out


def resolve_source(corpus: Path, source: str) -> Path:
    """The file of ``source`` under ``corpus``, refusing anything that leaves it.

    Refused: empty or over-long names, absolute paths, ``..`` parts, hidden parts,
    NUL bytes, and links whose target lies outside the corpus.

    Raises:
        ReadError: with a message that says what is allowed.
    """
    if not source or len(source) > MAX_SOURCE_CHARS or "\x00" in source:
        raise ReadError("source must be a corpus path such as 'notes/article.md'")
    norm = source.replace("\\", "/")
    parts = PurePosixPath(norm).parts
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        raise ReadError(
            f"source {source!r} is an absolute path; give the path relative to the corpus, "
            "as in the citation"
        )
    if any(p in ("..", ".") or p.startswith(".") for p in parts):
        raise ReadError(f"source {source!r} leaves the corpus or names a hidden file; refused")
    root = corpus.resolve()
    path = corpus.joinpath(*parts)
    try:
        real = Path(os.path.realpath(path, strict=True))
    except (OSError, RuntimeError):
        raise SourceNotFoundError(
            f"no source {source!r} in the corpus; use a `source` from a search result"
        ) from None
    if not real.is_relative_to(root):
        raise ReadError(f"source {source!r} links outside the corpus; refused")
    if not real.is_file():
        raise ReadError(f"source {source!r} is not a file in the corpus")
    return path


def read_lines(
    corpus: Path,
    source: str,
    start_line: int = 1,
    end_line: int | None = None,
    max_lines: int = MAX_LINES,
    max_chars: int = MAX_CHARS,
) -> ReadPage:
    """Lines ``start_line``..``end_line`` (1-based, inclusive) of a corpus source.

    A page holds at most ``max_lines`` lines and ``max_chars`` characters (a single
    longer line is cut at ``max_chars``); ``next_start_line`` says where to go on.

    Raises:
        ReadError: the source is outside the corpus, missing or unreadable, or the
            range is empty.
    """
    from bunko.ingest import read_document

    if start_line < 1:
        raise ReadError(f"start_line must be 1 or more (got {start_line})")
    if end_line is not None and end_line < start_line:
        raise ReadError(f"end_line ({end_line}) is before start_line ({start_line})")
    path = resolve_source(corpus, source)
    try:
        doc = read_document(path, corpus)
    except SkipFile as skip:
        raise ReadError(f"cannot read {source!r}: {skip.reason}") from None
    from bunko.text import line_starts

    # The same line breaks as citations (\r\n, \r, \n), not str.splitlines.
    text = doc.text
    starts = line_starts(text)
    if len(starts) > 1 and starts[-1] == len(text):
        starts.pop()  # a final line break does not start another line
    bounds = [*starts, len(text)]
    lines = [text[bounds[i] : bounds[i + 1]] for i in range(len(starts))]
    total = len(lines)
    if start_line > total:
        raise ReadError(f"{source} has {total} lines; start_line {start_line} is past the end")
    last = total if end_line is None else min(end_line, total)
    last = min(last, start_line + max_lines - 1)
    out: list[str] = []
    size = 0
    truncated = False
    n = start_line
    while n <= last:
        line = lines[n - 1]
        if size + len(line) > max_chars:
            if not out:  # one huge line: cut it rather than return nothing
                out.append(line[:max_chars])
                truncated = True
                n += 1
            break
        out.append(line)
        size += len(line)
        n += 1
    end = start_line + len(out) - 1
    want_end = total if end_line is None else min(end_line, total)
    return ReadPage(
        source=doc.source,
        title=doc.title,
        start_line=start_line,
        end_line=end,
        total_lines=total,
        text="".join(out),
        truncated=truncated,
        next_start_line=end + 1 if end < want_end else None,
    )
