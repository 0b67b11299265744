"""Pack a document's sentences into chunks sized for the embedding model.

A chunk is a run of whole sentences from one heading section, so that a passage
reads naturally and its citation (heading path, line range) is exact. Sizes are
measured with the embedding model's own token counter, because Japanese and English
differ wildly in chars per token and a char budget would either truncate or waste.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable

from bunko.text import line_of, line_starts, split_sentences
from bunko.types import Chunk, Document, Heading, Span

__all__ = ["chunk_document"]

_JOIN_ALLOWANCE = 1  # tokens budgeted for the whitespace between two packed sentences
_NONSPACE = re.compile(r"\S")
# Where to prefer cutting an over-long sentence: after a space, comma or 、/，.
_SOFT_BREAKS = (" ", "\t", "\u3000", ",", "、", "，", ";", "；", "・")


def _heading_paths(headings: list[Heading]) -> list[str | None]:
    """Heading path active after each heading: paths[k] holds after headings[:k].

    A heading closes every open heading of its level or deeper; empty headings
    (``#`` alone) close sections but add nothing to the path.
    """
    paths: list[str | None] = [None]
    stack: list[tuple[int, str]] = []
    for h in headings:
        while stack and stack[-1][0] >= h.level:
            stack.pop()
        stack.append((h.level, h.text.strip()))  # ingest has already removed the #s
        paths.append(" > ".join(t for _, t in stack if t) or None)
    return paths


def _cut_long(
    text: str, span: Span, total: int, count: Callable[[str], int], max_tokens: int
) -> list[tuple[Span, int]]:
    """Cut one over-long sentence into pieces that each fit, with their token counts.

    Piece lengths are guessed from the chars-per-token ratio seen so far and checked
    with ``count``; a guess that is over is shrunk in proportion. Only pieces are
    counted (never the shrinking remainder), so a 1 MB line stays linear.
    """
    overhead = count("")
    budget = max_tokens - overhead
    ratio = (span.end - span.start) / max(1, total - overhead)  # chars per token
    pieces: list[tuple[Span, int]] = []
    a, b = span.start, span.end
    while a < b:
        n = min(b - a, max(1, int(budget * ratio * 0.9)))
        while True:
            end = a + n
            if end < b:
                # Back off to a soft break in the last fifth, so a word or number
                # is not split when a space or 、 is near.
                lo = a + max(1, n * 4 // 5)
                brk = max(text.rfind(c, lo, end) for c in _SOFT_BREAKS)
                if brk >= lo:
                    end = brk + 1
            e = a + len(text[a:end].rstrip())
            cost = count(text[a:e])
            if cost <= max_tokens:
                break
            if n == 1:
                raise ValueError(
                    f"max_tokens={max_tokens} is too small: one character of"
                    f" {text[a]!r} needs {cost} tokens"
                )
            n = max(1, min(n - 1, int((e - a) * budget / max(1, cost - overhead) * 0.9)))
        pieces.append((Span(a, e), cost))
        ratio = (e - a) / max(1, cost - overhead)
        nxt = _NONSPACE.search(text, end, b)
        a = nxt.start() if nxt else b
    return pieces


def chunk_document(
    doc: Document, count_tokens: Callable[[str], int], max_tokens: int, overlap: int = 1
) -> list[Chunk]:
    """Split ``doc`` into chunks of whole sentences that fit the embedding model.

    Sentences are packed greedily; a heading always starts a new chunk, and the chunk's
    ``heading`` is the path active at its start ("Intro > Details"). Each chunk after
    the first in a section repeats the last ``overlap`` sentences of the one before, so
    an answer that straddles two chunks is whole in one of them. A sentence too long
    for a chunk on its own is cut into pieces that fit.

    Args:
        doc: the document; only ``doc.text[doc.body_start:]`` is chunked.
        count_tokens: tokens the model sees for a passage, including its fixed
            overhead (prefix and special tokens); ``count_tokens("")`` is that overhead.
        max_tokens: hard limit on ``count_tokens(chunk.text)`` for every chunk.
        overlap: sentences repeated from the previous chunk of the same section.

    Returns:
        Chunks in text order; every non-empty sentence lies in at least one.

    Raises:
        ValueError: ``max_tokens`` leaves no room for text, or ``overlap`` < 0.
    """
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}")
    overhead = count_tokens("")
    if max_tokens <= overhead:
        raise ValueError(f"max_tokens={max_tokens} leaves no room after {overhead} overhead")
    text = doc.text

    sents: list[Span] = []
    costs: list[int] = []  # tokens a sentence adds on top of the overhead
    for s in split_sentences(text, doc.body_start):
        n = count_tokens(text[s.start : s.end])
        if n <= max_tokens:
            sents.append(s)
            costs.append(max(0, n - overhead))
        else:
            for piece, m in _cut_long(text, s, n, count_tokens, max_tokens):
                sents.append(piece)
                costs.append(max(0, m - overhead))

    headings = sorted(doc.headings, key=lambda h: h.start)
    paths = _heading_paths(headings)
    heading_starts = [h.start for h in headings]
    section = [bisect_right(heading_starts, s.start) for s in sents]
    starts = line_starts(text)

    chunks: list[Chunk] = []
    lo = new = 0  # first sentence of the chunk; first one not yet in any chunk
    while new < len(sents):
        sec = section[new]
        total = overhead + sum(costs[lo:new]) + max(0, new - lo - 1) * _JOIN_ALLOWANCE
        hi = new
        while hi < len(sents) and section[hi] == sec:
            step = costs[hi] + (_JOIN_ALLOWANCE if hi > lo else 0)
            if hi > new and total + step > max_tokens:
                break
            total += step
            hi += 1
        # Costs of separate sentences only estimate the joined text's count (the
        # tokenizer may merge or split at the joins): measure, and shed until it fits.
        while (n := count_tokens(text[sents[lo].start : sents[hi - 1].end])) > max_tokens:
            if hi - 1 > new:
                excess, shed = n - max_tokens, 0
                while hi - 1 > new and shed < excess:
                    hi -= 1
                    shed += costs[hi] + _JOIN_ALLOWANCE
            else:
                lo += 1  # only overlap left to give up; the single new sentence fits
        a, b = sents[lo].start, sents[hi - 1].end
        chunks.append(
            Chunk(
                source=doc.source,
                title=doc.title,
                heading=paths[section[lo]],
                text=text[a:b],
                char_start=a,
                char_end=b,
                line_start=line_of(starts, a),
                line_end=line_of(starts, b - 1),
                sentences=tuple(sents[lo:hi]),
                n_tokens=n,
            )
        )
        # Repeat the tail of this chunk only if the chunk has more than `overlap`
        # sentences (so each chunk brings something new) and the section goes on.
        k = overlap if hi - lo > overlap and hi < len(sents) and section[hi] == sec else 0
        while k > 0 and overhead + sum(costs[hi - k : hi + 1]) + k * _JOIN_ALLOWANCE > max_tokens:
            k -= 1
        new, lo = hi, hi - k
    return chunks
