"""One passage per place: results of one query never share text.

Chunks overlap (the chunker repeats a sentence at their edges), so the top hits
of a query are often neighbouring windows over the same lines. A hit whose char
span overlaps or touches a better-ranked passage of the same file joins that
passage (one passage, one citation) while the joined span stays under
``MAX_MERGED_CHARS``; otherwise it gives its slot to the next hit. Dropping
instead of merging lost hits whose evidence sat in the lower-ranked window
(dev-qa English R@5 1.00 -> 0.80), merging keeps them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from bunko.index.format import ChunkRow

T = TypeVar("T")
MAX_MERGED_CHARS = 1500  # a merged passage stays readable; the chunker's windows are ~500


def group_places(
    hits: Iterable[T],
    place: Callable[[T], tuple[str, int, int]],
    k: int | None = None,
    max_chars: int = MAX_MERGED_CHARS,
) -> list[list[T]]:
    """Groups of hits, in rank order; the spans of different groups are disjoint.

    A hit that overlaps or touches exactly one group of its file joins it when the
    joined span is at most ``max_chars`` long; a hit touching two groups, or one
    that would make a group too long, is dropped. With ``k``, scanning stops at
    ``k`` groups, so spans depend on ``k``; the query path groups a whole fixed
    pool instead (:mod:`bunko.retrieval.answer_stage`) and cuts to ``k`` after.
    """
    groups: list[list[T]] = []
    spans: list[tuple[str, int, int]] = []
    for hit in hits:
        source, start, end = place(hit)
        near = [i for i, (s, a, z) in enumerate(spans) if s == source and start <= z and a <= end]
        if len(near) > 1:
            continue
        if near:
            i = near[0]
            a, z = min(start, spans[i][1]), max(end, spans[i][2])
            if z - a <= max_chars:
                groups[i].append(hit)
                spans[i] = (source, a, z)
            continue
        if k is not None and len(groups) >= k:
            break
        groups.append([hit])
        spans.append((source, start, end))
    return groups


def merge_rows(rows: Sequence[ChunkRow], sims: Sequence[Any | None]) -> tuple[ChunkRow, Any]:
    """One chunk row covering contiguous (overlapping or touching) rows of one file.

    Returns the merged row and its per-sentence cosines (None when any is missing).
    """
    from bunko.index.format import pack_sentence_tokens

    order = sorted(range(len(rows)), key=lambda i: rows[i].char_start)
    first = rows[order[0]]
    if len(rows) == 1:
        return first, sims[0]
    text, end = first.text, first.char_end
    sentence_sim: dict[tuple[int, int], float | None] = {}
    sentence_tokens: dict[tuple[int, int], list[str]] | None = {}
    tokens: list[str] = []
    for i in order:
        r = rows[i]
        if r.char_end > end:
            text += r.text[end - r.char_start :]
            end = r.char_end
        s = sims[i]
        toks = r.sentence_tokens() if sentence_tokens is not None and r.sentences else None
        if toks is None:
            sentence_tokens = None
        for j, span in enumerate(r.sentences):
            sim = float(s[j]) if s is not None and len(s) == len(r.sentences) else None
            sentence_sim.setdefault((int(span[0]), int(span[1])), sim)
            if sentence_tokens is not None and toks is not None:
                sentence_tokens.setdefault((int(span[0]), int(span[1])), toks[j])
        tokens.extend(r.tokens)
    spans = sorted(sentence_sim)
    merged = dataclasses.replace(
        first,
        text=text,
        char_end=end,
        line_start=min(r.line_start for r in rows),
        line_end=max(r.line_end for r in rows),
        sentences=tuple(spans),
        tokens=tuple(tokens),
        # The rows' stored sentence tokens, carried to the merged row's sentences.
        sent_tokens=pack_sentence_tokens([sentence_tokens[s] for s in spans], tokens)
        if sentence_tokens is not None and spans
        else "",
    )
    values = [sentence_sim[s] for s in spans]
    if any(v is None for v in values):
        return merged, None
    import numpy as np

    return merged, np.asarray(values, dtype=np.float32)
