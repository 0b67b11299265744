"""A corpus source's lines, numbered as citations number them.

The one line reader: the MCP ``read`` tool, ``GET /api/read`` and ``bunko show``
all read through :func:`source_lines`, so they give the same lines, the same
bounds and the same refusals. Paths are confined by :mod:`bunko.corpus.paths`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bunko.corpus.paths import article_path
from bunko.errors import SkipFile, SourceError, SourceNotFoundError
from bunko.types import Document

MAX_LINES = 200
MAX_CHARS = 20_000


class ReadError(SourceError):
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


def source_lines(corpus: Path, source: str) -> tuple[Document, list[str]]:
    """Article ``source`` read as indexing reads it, and its lines (breaks kept).

    Lines break at \r\n, \r and \n, as citations count them (not str.splitlines);
    a final line break does not start another line.

    Raises:
        ReadError: refused (outside the corpus, not an article), missing, or
            unreadable (the reason indexing would give).
    """
    from bunko.ingest import read_document
    from bunko.text import line_starts

    try:
        path = article_path(corpus, source)
        doc = read_document(path, corpus)
    except SkipFile as skip:
        raise ReadError(f"cannot read {source!r}: {skip.reason}") from None
    except SourceNotFoundError:
        raise  # HTTP 404, MCP "no such source"
    except SourceError as exc:
        raise ReadError(str(exc)) from None
    text = doc.text
    starts = line_starts(text)
    if len(starts) > 1 and starts[-1] == len(text):
        starts.pop()
    bounds = [*starts, len(text)]
    return doc, [text[bounds[i] : bounds[i + 1]] for i in range(len(starts))]


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
    if start_line < 1:
        raise ReadError(f"start_line must be 1 or more (got {start_line})")
    if end_line is not None and end_line < start_line:
        raise ReadError(f"end_line ({end_line}) is before start_line ({start_line})")
    doc, lines = source_lines(corpus, source)
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
