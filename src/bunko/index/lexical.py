"""BM25 in plain numpy: raw postings per segment, corpus-wide statistics at query time.

bm25s would do the same, but importing it pulls in scipy (0.34 s measured here),
more than the rest of the query path together.

A segment stores :class:`Postings`: a term-major CSR matrix of raw term counts,
and each row's length. :class:`BM25` scores over every live segment with the
statistics of the whole shelf (live rows, average length, document frequency
summed across segments, deleted rows left out), as Lucene does, so adding a
segment never rewrites another one, and scores equal those of a clean rebuild.
"""

from __future__ import annotations

import json
import math
import struct
import zipfile
from array import array
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bunko.errors import IndexCorruptError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

K1 = 1.2
B = 0.75
_BLOCK = 20_000  # token lists turned into postings at a time
CACHE_MIN_POSTINGS = 10_000  # terms this common keep their scored postings ...
CACHE_POSTINGS = 8_000_000  # ... up to this many postings in all (about 100 MB)
DF_CACHE_TERMS = 100_000  # document frequencies kept per snapshot (a few MB)
# Issue 24: when a query term has more live postings than this (a particle, "the"),
# BM25.top (MaxScore) finds the top n without scoring every posting of the common
# terms; terms this rare always join its partial scores.
PRUNE_MIN_POSTINGS = 20_000
# A candidate row costs a binary search in each query term's postings (with numpy's
# overhead, about as much as adding this many postings to every row): a term is added
# to the partial scores rather than checked row by row when that is cheaper.
PRUNE_CHECK_COST = 8


class Vocab(Mapping[str, int]):
    """A segment's terms, sorted, as one UTF-8 byte string: a term's id is its rank.

    A dict of a million terms costs 150-200 MB of Python objects (measured: 112 MB
    for the 100k-chunk synthetic shelf's vocabulary, whose file is 7.5 MB); this
    costs the bytes themselves plus 8 bytes of offsets a term, memory-mapped. A
    lookup is a binary search: about 20 steps at a million terms, a few
    microseconds, and a query looks up a handful of terms.
    """

    def __init__(self, blob: bytes, ends: npt.NDArray[np.int64]) -> None:
        import numpy as np

        self._blob = blob
        # A plain view: indexing a memmap goes through Python (numpy's memmap.__getitem__),
        # which made a lookup cost 0.1 ms at a million terms.
        self._ends = np.asarray(ends)
        self._n = len(ends)

    def _term(self, i: int) -> bytes:
        a = int(self._ends[i - 1]) if i else 0
        return self._blob[a : int(self._ends[i])]

    def get(self, term: str, default: Any = None) -> Any:
        key = _utf8(term)
        lo, hi = 0, self._n
        while lo < hi:
            mid = (lo + hi) // 2
            if self._term(mid) < key:
                lo = mid + 1
            else:
                hi = mid
        if lo < self._n and self._term(lo) == key:
            return lo
        return default

    def __getitem__(self, term: str) -> int:
        i = self.get(term)
        if i is None:
            raise KeyError(term)
        return int(i)

    def __contains__(self, term: object) -> bool:
        return isinstance(term, str) and self.get(term) is not None

    def __iter__(self) -> Iterator[str]:
        for i in range(self._n):
            yield self._term(i).decode("utf-8", "surrogatepass")

    def __len__(self) -> int:
        return self._n


def _utf8(term: str) -> bytes:
    # UTF-8 (surrogates passed through) orders bytes as str orders code points.
    return term.encode("utf-8", "surrogatepass")


@dataclass
class Postings:
    """Raw postings of one segment: term t has rows[indptr[t]:indptr[t+1]] with counts tf.

    Term ids are the terms' ranks in sorted order (:class:`Vocab`).
    """

    vocab: Mapping[str, int]
    indptr: npt.NDArray[np.int64]
    rows: npt.NDArray[np.int32]
    tf: npt.NDArray[np.int32]
    lengths: npt.NDArray[np.int32]

    @property
    def n_rows(self) -> int:
        return len(self.lengths)

    @classmethod
    def build(cls, docs: Iterable[Sequence[str]]) -> Postings:
        """Index token lists; row i is the i-th list.

        Tokens become term ids in one C-level pass per block of lists, and the
        (row, term) counts come from sorting in numpy: a million chunks take
        seconds a block and a few bytes a posting, not Python objects.
        """
        import numpy as np

        # A missing term gets the next id: the factory runs before the insert.
        ids: defaultdict[str, int] = defaultdict()
        ids.default_factory = ids.__len__
        lengths = array("i")
        parts: list[tuple[Any, Any, Any]] = []
        block: list[Sequence[str]] = []
        first_row = 0

        def flush() -> None:
            nonlocal first_row
            lens = np.fromiter(map(len, block), dtype=np.int64, count=len(block))
            lengths.extend(lens.astype(np.int32).tolist())
            tids = np.fromiter(
                map(ids.__getitem__, chain.from_iterable(block)),
                dtype=np.int64,
                count=int(lens.sum()),
            )
            rows = np.repeat(np.arange(first_row, first_row + len(block), dtype=np.int64), lens)
            keys, counts = np.unique((rows << 32) | tids, return_counts=True)
            parts.append(
                ((keys >> 32).astype(np.int32), (keys & 0xFFFFFFFF).astype(np.int32), counts)
            )
            first_row += len(block)
            block.clear()

        for toks in docs:
            block.append(toks)
            if len(block) == _BLOCK:
                flush()
        if block:
            flush()
        # Term ids become ranks in sorted order, so that a loaded segment can find a
        # term by binary search in one byte string instead of a dict (Vocab).
        terms = sorted(ids)
        rank = np.empty(len(terms), dtype=np.int32)
        rank[np.fromiter(map(ids.__getitem__, terms), dtype=np.int64, count=len(terms))] = (
            np.arange(len(terms), dtype=np.int32)
        )
        vocab = {t: i for i, t in enumerate(terms)}
        ids.clear()
        del terms
        cat = np.concatenate
        post_rows = cat([p[0] for p in parts]) if parts else np.zeros(0, np.int32)
        post_terms = rank[cat([p[1] for p in parts])] if parts else np.zeros(0, np.int32)
        del rank
        post_tf = cat([p[2] for p in parts]).astype(np.int32) if parts else np.zeros(0, np.int32)
        parts.clear()
        # Stable, so each term's rows stay in ascending order.
        order = np.argsort(post_terms, kind="stable")
        df = np.bincount(post_terms, minlength=len(vocab)).astype(np.int64)
        del post_terms
        indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        indptr[1:] = np.cumsum(df)
        return cls(
            vocab,
            indptr,
            post_rows[order].astype(np.int32),
            post_tf[order].astype(np.int32),
            np.frombuffer(lengths, dtype=np.int32).copy(),
        )

    def save(self, folder: Path) -> None:
        """Write ``lexical.npz``: the postings, and the sorted terms as UTF-8 bytes
        (``terms``) with each term's end offset (``term_ends``)."""
        import numpy as np

        terms = sorted(self.vocab, key=self.vocab.__getitem__)
        encoded = [_utf8(t) for t in terms]
        if any(a >= b for a, b in pairwise(encoded)):
            raise ValueError("term ids must be the terms' ranks in sorted order")
        ends = np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)))
        blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        del encoded
        with open(folder / "lexical.npz", "wb") as f:
            np.savez(
                f, indptr=self.indptr, rows=self.rows, tf=self.tf, lengths=self.lengths,
                terms=blob, term_ends=ends,
            )  # fmt: skip

    @classmethod
    def load(cls, folder: Path) -> Postings:
        """Load a segment's postings, memory-mapped; the terms come from ``lexical.npz``
        or, in a segment written before they were kept there, ``lexical_vocab.json``."""
        vocab: Mapping[str, int]
        try:
            z = _map_npz(folder / "lexical.npz")
            indptr, rows, tf, lengths = z["indptr"], z["rows"], z["tf"], z["lengths"]
            if "terms" in z:
                ends = z["term_ends"]
                blob = z["terms"].tobytes()
                if len(ends) and int(ends[-1]) != len(blob):
                    raise ValueError("the terms do not match their offsets")
                vocab = Vocab(blob, ends)
            else:
                terms = json.loads((folder / "lexical_vocab.json").read_text("utf-8"))
                if not isinstance(terms, list):
                    raise ValueError("lexical_vocab.json is not a list")
                vocab = {t: i for i, t in enumerate(terms)}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise IndexCorruptError(
                f"the lexical index in {folder} is damaged ({exc}); run `bunko index --rebuild`"
            ) from exc
        if (
            len(vocab) + 1 != len(indptr)
            or len(rows) != len(tf)
            or (len(indptr) and int(indptr[-1]) != len(rows))
        ):
            raise IndexCorruptError(
                f"the lexical index in {folder} is inconsistent; run `bunko index --rebuild`"
            )
        return cls(vocab, indptr, rows, tf, lengths)


class BM25:
    """BM25 over several segments' postings, deleted rows masked out.

    ``parts`` pairs each segment's postings with a boolean mask of its deleted
    rows (None: none deleted). Scores use the statistics of the live rows of
    all parts together.
    """

    def __init__(
        self,
        parts: Sequence[tuple[Postings, npt.NDArray[np.bool_] | None]],
        k1: float = K1,
        b: float = B,
    ) -> None:
        import numpy as np

        self.parts = list(parts)
        self.k1, self.b = k1, b
        n = 0
        total = 0
        for post, dead in self.parts:
            lens = post.lengths
            if dead is None:
                n += len(lens)
                total += int(lens.sum(dtype=np.int64))
            else:
                n += int(len(lens) - dead.sum())
                total += int(lens[~dead].sum(dtype=np.int64))
        self.n_rows = n
        self.avgdl = total / n if n and total > 0 else 1.0
        self._norms: list[Any] = [None] * len(self.parts)
        # term -> its scored live postings [(part, rows, weights)]: frequent terms
        # (the costly ones, with the most postings) are scored once per snapshot.
        self._cache: OrderedDict[str, list[tuple[int, Any, Any]]] = OrderedDict()
        self._cached = 0  # postings held in the cache
        self._dfs: dict[str, int] = {}  # term -> live rows holding it (0: none)
        # term -> (live postings, [(part, largest tf, shortest row)]): BM25.top bounds a
        # common term's weights with these instead of scoring all its postings.
        self._stats: dict[str, tuple[int, list[tuple[int, int, int]]]] = {}

    def _norm(self, i: int) -> npt.NDArray[np.float32]:
        if self._norms[i] is None:
            self._norms[i] = self._norm_of(self.parts[i][0].lengths)
        out: npt.NDArray[np.float32] = self._norms[i]
        return out

    def _norm_of(self, lengths: Any) -> npt.NDArray[np.float32]:
        """k1·(1 - b + b·len/avgdl) of rows of these lengths, in float32."""
        import numpy as np

        lens = np.asarray(lengths, dtype=np.float32)
        avgdl = np.float32(self.avgdl)
        out: npt.NDArray[np.float32] = (self.k1 * (1.0 - self.b + self.b * lens / avgdl)).astype(
            np.float32
        )
        return out

    def _weigh(self, idf: Any, tf: Any, norm: Any) -> npt.NDArray[np.float32]:
        """BM25 weights of postings (tf) in rows (their norm), in float32: one formula for
        every caller, so that a weight found for a few rows equals the one of all rows."""
        import numpy as np

        k1 = np.float32(self.k1)
        tf = np.asarray(tf).astype(np.float32)
        out: npt.NDArray[np.float32] = (idf * tf * (k1 + np.float32(1.0)) / (tf + norm)).astype(
            np.float32
        )
        return out

    def _live(self, term: str) -> list[tuple[int, Any, Any]]:
        """(part, rows, tf) of the term's live postings in each part that has it."""
        import numpy as np

        out = []
        for i, (post, dead) in enumerate(self.parts):
            tid = post.vocab.get(term)
            if tid is None:
                continue
            a, z = int(post.indptr[tid]), int(post.indptr[tid + 1])
            # Plain arrays over the mapped pages: a memmap slice costs a Python-level
            # __array_finalize__ on every later operation.
            rows, tf = np.asarray(post.rows[a:z]), np.asarray(post.tf[a:z])
            if dead is not None:
                keep = ~dead[rows]
                rows, tf = rows[keep], tf[keep]
            if len(rows):
                out.append((i, rows, tf))
        return out

    def _raw(self, term: str) -> list[tuple[int, Any, Any]]:
        """(part, rows, tf) of all the term's postings in each part, deleted rows included."""
        import numpy as np

        out = []
        for i, (post, _) in enumerate(self.parts):
            tid = post.vocab.get(term)
            if tid is not None:
                a, z = int(post.indptr[tid]), int(post.indptr[tid + 1])
                if z > a:
                    out.append((i, np.asarray(post.rows[a:z]), np.asarray(post.tf[a:z])))
        return out

    def _term_stats(self, term: str) -> tuple[int, list[tuple[int, int, int]]]:
        """The term's live postings (its df), and per part its largest tf and the length
        of its shortest row (deleted rows included: a bound, not the exact maximum).
        Kept for the common terms: they depend on no other segment."""
        import numpy as np

        hit = self._stats.get(term)
        if hit is not None:
            return hit
        df = 0
        per: list[tuple[int, int, int]] = []
        for i, rows, tf in self._raw(term):
            dead = self.parts[i][1]
            df += len(rows) if dead is None else int(np.count_nonzero(~dead[rows]))
            lengths = self.parts[i][0].lengths
            per.append((i, int(tf.max()), int(np.asarray(lengths)[rows].min())))
        got = (df, per)
        if df >= CACHE_MIN_POSTINGS:
            self._stats[term] = got
        return got

    def _bound(self, per: list[tuple[int, int, int]], idf: Any) -> float:
        """At least a term's largest weight in any row, from its :meth:`_term_stats`:
        BM25 grows with tf and falls with the row's length, and float32 rounding keeps
        that order."""
        import numpy as np

        return max(
            float(self._weigh(idf, np.array([tf]), self._norm_of(np.array([ln])))[0])
            for _, tf, ln in per
        )

    def _idf(self, df: int) -> float:
        import numpy as np

        # The "plus one" idf of Lucene: never negative, even for very common terms.
        return float(np.float32(math.log1p((self.n_rows - df + 0.5) / (df + 0.5))))

    def idf(self, tokens: Sequence[str]) -> dict[str, float]:
        """idf of each query term that occurs in a live row."""
        out = {}
        for term in dict.fromkeys(tokens):
            df = self._df(term)  # counted only: an English question probes many terms
            if df:
                out[term] = self._idf(df)
        return out

    def _df(self, term: str) -> int:
        """How many live rows hold the term, without scoring its postings: an English
        question probes many Japanese terms only to see whether the shelf knows them."""
        import numpy as np

        df = self._dfs.get(term)
        if df is not None:
            return df
        df = 0
        for post, dead in self.parts:
            tid = post.vocab.get(term)
            if tid is None:
                continue
            a, z = int(post.indptr[tid]), int(post.indptr[tid + 1])
            if dead is None:
                df += z - a
            else:
                df += int(np.count_nonzero(~dead[post.rows[a:z]]))
        if len(self._dfs) >= DF_CACHE_TERMS:
            self._dfs.clear()
        self._dfs[term] = df
        return df

    def _weights(self, term: str) -> list[tuple[int, Any, Any]]:
        """The term's live postings with their BM25 weights, per part."""
        import numpy as np

        hit = self._cache.get(term)
        if hit is not None:
            self._cache.move_to_end(term)
            return hit
        live = self._live(term)
        df = sum(len(r) for _, r, _ in live)
        out = []
        if df:
            idf = np.float32(self._idf(df))
            for i, rows, tf in live:
                w = self._weigh(idf, tf, self._norm(i)[rows])
                # Index arrays of the platform's width: numpy converts int32 ones on
                # every use (30 % of the addition's time at a million rows).
                out.append((i, rows.astype(np.intp), w))
        if df >= CACHE_MIN_POSTINGS:
            self._cache[term] = out
            self._cached += df
            while self._cached > CACHE_POSTINGS and self._cache:
                _, old = self._cache.popitem(last=False)
                self._cached -= sum(len(r) for _, r, _ in old)
        return out

    def scores(
        self, tokens: Sequence[str], weights: Mapping[str, float] | None = None
    ) -> list[npt.NDArray[np.float32]]:
        """BM25 score of every row of every part (repeated query terms count once).

        ``weights`` scales a term's contribution (default 1): expansion terms
        of a query (:mod:`bunko.retrieval.expansion`) count less than its own
        words. Deleted rows score 0.
        """
        import numpy as np

        out = [np.zeros(p.n_rows, dtype=np.float32) for p, _ in self.parts]
        for term in dict.fromkeys(tokens):
            scale = 1.0 if weights is None else weights.get(term, 1.0)
            for i, rows, w in self._weights(term):
                # A term lists each row once, so plain fancy-index addition is exact
                # (and much faster than np.add.at; measured faster than one bincount).
                out[i][rows] += w if scale == 1.0 else w * np.float32(scale)
        return out

    def top(
        self, tokens: Sequence[str], n: int, weights: Mapping[str, float] | None = None
    ) -> list[tuple[int, int, float]] | None:
        """The (part, row, score) of at least the ``n`` best rows by BM25 (all that tie
        with the n-th), with the scores :meth:`scores` gives them, without scoring every
        posting of the commonest terms; None when no term is common enough for that to
        pay, or fewer than ``n`` rows hold a query term (then score every row).

        MaxScore: the query's terms, rarest first, are added to a partial score of every
        row they occur in (the essential terms) until the other terms' weights, bounded
        from above and summed (``bound``), fall below ``low``, the n-th best partial score
        among the rows of the rare terms (at most the n-th best of all rows), and few rows
        come within ``bound`` of it. Only those rows can be in the top n: a row scores at
        most its partial score plus ``bound``, and n rows score at least ``low``. Their
        exact scores are then summed term by term in the query's own order (float32 sums
        are order-dependent), a term's weight in a row found by binary search in its
        sorted postings. A term joins the partial scores only when checking the rows left
        one by one would cost more (PRUNE_CHECK_COST). A common term's bound comes from
        its largest tf and shortest row (:meth:`_term_stats`), so its postings are never
        all scored unless it must join.
        """
        import numpy as np

        terms = list(dict.fromkeys(tokens))
        stats = {t: self._term_stats(t) for t in terms}
        df = {t: stats[t][0] for t in terms}
        order = sorted((t for t in terms if df[t]), key=lambda t: df[t])
        if n <= 0 or not order or df[order[-1]] <= PRUNE_MIN_POSTINGS:
            return None
        scale = {t: np.float32(1.0 if weights is None else weights.get(t, 1.0)) for t in terms}
        if any(scale[t] <= 0 for t in order):
            return None  # the bounds below assume positive contributions
        idf = {t: np.float32(self._idf(df[t])) for t in order}
        most = {t: float(scale[t]) * self._bound(stats[t][1], idf[t]) for t in order}
        post: dict[str, list[tuple[int, Any, Any]]] = {}  # the essential terms' weights
        acc = [np.zeros(p.n_rows, dtype=np.float32) for p, _ in self.parts]
        # Every term as rare as PRUNE_MIN_POSTINGS is essential from the start.
        m = max(1, sum(df[t] <= PRUNE_MIN_POSTINGS for t in order))
        added = 0
        sub: list[Any] | None = None  # rows where a lower bound of the n-th score is sought
        while True:
            for t in order[added:m]:
                post[t] = self._weights(t)
                for i, rows, w in post[t]:
                    acc[i][rows] += w if scale[t] == 1.0 else w * scale[t]
            added = m
            if sub is None and sum(df[t] for t in order[:m]) >= n:
                # The rows of the terms added so far (the rare ones): the n-th best
                # partial score among them is at most the n-th best of all rows.
                sub = [_union([r for t in order[:m] for j, r, _ in post[t] if j == i], a)
                       for i, a in enumerate(acc)]  # fmt: skip
            bound = sum(most[t] for t in order[m:])
            if sub is not None and sum(len(r) for r in sub) >= n:
                vals = np.concatenate([a[r] for a, r in zip(acc, sub, strict=True)])
                low = float(np.partition(vals, len(vals) - n)[len(vals) - n])
                # Float32 sums in another order differ in the last bits: a wide margin.
                cut = low - bound - 1e-4 * (low + bound) - 1e-6
                if cut > 0:
                    within = sum(int(np.count_nonzero(a >= cut)) for a in acc)
                    if m == len(order) or within * len(terms) * PRUNE_CHECK_COST <= df[order[m]]:
                        break
            if m == len(order):
                return None  # fewer than n rows hold a query term: score every row
            m += 1
        cands = [np.flatnonzero(a >= cut) for a in acc]
        score = self._candidate_scores(terms, post, scale, idf, cands)
        top_n = float(np.partition(score, len(score) - n)[len(score) - n])
        part = np.concatenate([np.full(len(c), i, np.intp) for i, c in enumerate(cands)])
        row = np.concatenate(cands)
        best = np.flatnonzero(score >= np.float32(top_n))
        return [(int(part[j]), int(row[j]), float(score[j])) for j in best]

    def _candidate_scores(
        self,
        terms: Sequence[str],
        post: Mapping[str, list[tuple[int, Any, Any]]],
        scale: Mapping[str, Any],
        idf: Mapping[str, Any],
        cands: Sequence[Any],
    ) -> npt.NDArray[np.float32]:
        """Exact BM25 of candidate rows (live, sorted, per part), summed in query-term
        order as :meth:`scores` sums them, so that the floats are the same. A term
        without scored postings (``post``) is weighed in the candidate rows only."""
        import numpy as np

        out = [np.zeros(len(c), dtype=np.float32) for c in cands]
        for t in terms:
            if t not in idf:
                continue  # in no live row
            for i, rows, w in post[t] if t in post else self._raw(t):
                c = cands[i]
                if len(c) == 0:
                    continue
                at = np.minimum(np.searchsorted(rows, c), len(rows) - 1)
                hit = rows[at] == c
                if t in post:
                    got = w[at[hit]]
                else:  # (w: the raw tf) the same formula as _weights, on fewer rows
                    got = self._weigh(idf[t], w[at[hit]], self._norm(i)[c[hit]])
                out[i][hit] += got if scale[t] == 1.0 else got * scale[t]
        return np.concatenate(out)

    def coverage(self, tokens: Sequence[str]) -> float:
        """Share of the query's idf mass that the corpus vocabulary knows (0..1).

        A term the corpus never saw is given the highest idf, so an English
        question over Japanese articles scores near 0: lexical search is blind
        to it, and fusion should lean on the dense side.
        """
        terms = list(dict.fromkeys(tokens))
        if not terms or self.n_rows == 0:
            return 0.0
        idf = self.idf(terms)
        unseen = math.log1p((self.n_rows + 0.5) / 0.5)
        known = sum(idf.values())
        total = known + unseen * (len(terms) - len(idf))
        return known / total if total > 0 else 0.0


class LexicalIndex:
    """One set of postings scored on its own: a one-segment shelf (tests, benchmarks)."""

    def __init__(self, postings: Postings) -> None:
        self.postings = postings
        self.bm25 = BM25([(postings, None)])

    @classmethod
    def build(cls, docs: Iterable[Sequence[str]]) -> LexicalIndex:
        return cls(Postings.build(docs))

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        return cls(Postings.load(folder))

    def save(self, folder: Path) -> None:
        self.postings.save(folder)

    @property
    def n_rows(self) -> int:
        return self.postings.n_rows

    @property
    def vocab(self) -> Mapping[str, int]:
        return self.postings.vocab

    def scores(self, tokens: Sequence[str]) -> npt.NDArray[np.float32]:
        return self.bm25.scores(tokens)[0]

    def coverage(self, tokens: Sequence[str]) -> float:
        return self.bm25.coverage(tokens)


def _union(rows: list[Any], acc: Any) -> Any:
    """The sorted union of sorted, duplicate-free row arrays that are, together, exactly
    the rows where ``acc`` is positive (numpy's hash-based np.unique took 94 ms for one
    array of 176k rows)."""
    import numpy as np

    if not rows:
        return np.zeros(0, dtype=np.intp)
    if len(rows) == 1:
        return rows[0]
    total = sum(len(r) for r in rows)
    if total * 32 > len(acc):
        return np.flatnonzero(acc > 0)
    x = np.sort(np.concatenate(rows))
    return x[np.concatenate(([True], x[1:] != x[:-1]))]


def _map_npz(path: Path) -> dict[str, Any]:
    """The arrays of an uncompressed .npz, memory-mapped rather than read.

    A query touches only the postings of its own terms, so a large shelf's
    postings stay on disk (in the page cache) instead of in the process. The
    archive is np.savez's plain zip: each member is a stored .npy file, found
    through its zip local header. A compressed member is read normally.
    """
    import numpy as np

    out: dict[str, Any] = {}
    with zipfile.ZipFile(path) as zf, open(path, "rb") as f:
        for info in zf.infolist():
            key = info.filename.removesuffix(".npy")
            if info.compress_type != zipfile.ZIP_STORED:
                with zf.open(info) as member:
                    out[key] = np.lib.format.read_array(member)
                continue
            f.seek(info.header_offset)
            local = f.read(30)
            if len(local) != 30 or local[:4] != b"PK\x03\x04":
                raise ValueError(f"bad zip member {info.filename}")
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            f.seek(info.header_offset + 30 + name_len + extra_len)
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            count = math.prod(shape)
            if count == 0 or dtype.hasobject:
                f.seek(info.header_offset)
                with zf.open(info) as member:
                    out[key] = np.lib.format.read_array(member)
                continue
            # A plain array over the mapped pages (it keeps the map alive): indexing a
            # memmap goes through Python-level hooks, and a term's lookup reads ~20
            # offsets (Vocab.get: 44 us a term as a memmap, issue 24).
            out[key] = np.asarray(
                np.memmap(
                    path, dtype=dtype, mode="r", offset=f.tell(), shape=shape,
                    order="F" if fortran else "C",
                )
            )  # fmt: skip
    return out
