"""The merge policy: which segments to merge so that their number stays bounded.

Tiered by size, as in tantivy's ``log_merge_policy``: a segment's tier is the
order of magnitude (base :attr:`MergePolicy.factor`) of its live rows above
:attr:`MergePolicy.min_size`. When a tier holds ``factor`` segments they are
merged into one, a tier up. Each row is therefore rewritten about once per
tier (log_factor(N) times in its life).

Tiers alone bound the count only per tier (up to ``factor - 1`` each: a shelf
that grew by small updates on top of a large first build held up to 19
segments with factor 10). ``max_segments`` caps the total: when a commit would
leave more, the smallest segments are merged into one until the cap holds.
The smallest are nearly always the newest, small ones, so the forced merge is
cheap. A small ``factor`` keeps the tiers, and so the forced merges, small
too: with factor 10 and the cap, the cap was hit on most commits and the
median commit rewrote 7,860 rows; with factor 4 the median commit rewrites
none (the new segment only), the 99th percentile under 10,000 rows.
``benchmarks/perf.py policy`` replays such update sequences through
:meth:`MergePolicy.plan` (benchmarks/PERF.md has the figures).

A segment whose deleted share exceeds ``max_deleted`` is rewritten on its own
to reclaim the space; one whose rows are all deleted is simply dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class MergePolicy:
    factor: int = 4
    min_size: int = 10_000
    max_deleted: float = 0.3
    max_segments: int = 10

    def tier(self, live: int) -> int:
        if live < self.min_size:
            return 0
        return 1 + int(math.log(live / self.min_size, self.factor) + 1e-9)

    def plan(self, sizes: list[tuple[int, int]], optimize: bool = False) -> list[list[int]]:
        """Groups of segment positions to merge, each into one new segment.

        Args:
            sizes: (live rows, deleted rows) of each segment, in manifest order.
            optimize: merge every segment into one (``bunko index --optimize``).

        Returns:
            Disjoint groups; a group of one rewrites that segment without its
            deleted rows. Segments with no live rows are not listed (drop them).
        """
        alive = [i for i, (live, _) in enumerate(sizes) if live > 0]
        if optimize:
            if len(alive) > 1 or any(sizes[i][1] for i in alive):
                return [alive]
            return []
        groups: list[list[int]] = []
        taken: set[int] = set()
        by_tier: dict[int, list[int]] = {}
        for i in alive:
            by_tier.setdefault(self.tier(sizes[i][0]), []).append(i)
        for _, members in sorted(by_tier.items()):
            if len(members) >= self.factor:
                groups.append(members)
                taken.update(members)
        for i in alive:
            live, dead = sizes[i]
            if i not in taken and dead > self.max_deleted * (live + dead):
                groups.append([i])
                taken.add(i)
        # The cap: the segments left after these merges, each group counting as one.
        count = len(alive) - len(taken) + len(groups)
        if count > self.max_segments:
            rest = sorted((i for i in alive if i not in taken), key=lambda i: (sizes[i][0], i))
            smallest = rest[: count - self.max_segments + 1]
            if len(smallest) >= 2:
                groups.append(sorted(smallest))
        return groups
