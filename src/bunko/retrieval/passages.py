"""One passage per place: results of one query never share text.

Chunks overlap (the chunker repeats sentences at their edges), so the top hits of
a query are often neighbouring windows over the same lines. A hit whose char
span in its file overlaps or touches a better-ranked hit's span gives its slot to
the next candidate; the better-ranked passage already shows that text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def one_per_place(
    hits: Iterable[T], place: Callable[[T], tuple[str, int, int]], k: int
) -> Iterator[T]:
    """The first ``k`` hits (in the given order) whose (source, start, end) spans are disjoint.

    Two spans of one source that overlap or touch (end == start) count as one place.
    """
    taken: dict[str, list[tuple[int, int]]] = {}
    n = 0
    for hit in hits:
        if n >= k:
            return
        source, start, end = place(hit)
        spans = taken.setdefault(source, [])
        if any(start <= e and s <= end for s, e in spans):
            continue
        spans.append((start, end))
        n += 1
        yield hit
