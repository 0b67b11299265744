"""A BM25 index over Japanese-aware tokens, in plain numpy.

bm25s would do the same, but importing it pulls in scipy (0.34 s measured here),
more than the rest of the query path together. The index is a term-major CSR
matrix of precomputed BM25 weights, so a query is a few array slices and one
scatter-add.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bunko.errors import IndexCorruptError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

K1 = 1.2
B = 0.75


@dataclass
class LexicalIndex:
    """BM25 postings: for term t, rows[indptr[t]:indptr[t+1]] with their weights."""

    vocab: dict[str, int]
    idf: npt.NDArray[np.float32]
    indptr: npt.NDArray[np.int64]
    rows: npt.NDArray[np.int32]
    weights: npt.NDArray[np.float32]
    n_rows: int

    @classmethod
    def build(cls, docs: Sequence[Sequence[str]], k1: float = K1, b: float = B) -> LexicalIndex:
        """Index token lists; row i of the index is docs[i]."""
        import numpy as np

        n = len(docs)
        lengths = np.array([len(d) for d in docs], dtype=np.float32)
        avgdl = float(lengths.mean()) if n and lengths.sum() > 0 else 1.0
        vocab: dict[str, int] = {}
        post_rows: list[list[int]] = []
        post_tf: list[list[int]] = []
        for row, toks in enumerate(docs):
            for term, count in Counter(toks).items():
                tid = vocab.setdefault(term, len(vocab))
                if tid == len(post_rows):
                    post_rows.append([])
                    post_tf.append([])
                post_rows[tid].append(row)
                post_tf[tid].append(count)
        df = np.array([len(r) for r in post_rows], dtype=np.float32)
        # The "plus one" idf of Lucene: never negative, even for very common terms.
        idf = np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)
        indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        indptr[1:] = np.cumsum(df.astype(np.int64))
        rows = np.fromiter(
            (r for lst in post_rows for r in lst), dtype=np.int32, count=int(indptr[-1])
        )
        tf = np.fromiter(
            (t for lst in post_tf for t in lst), dtype=np.float32, count=int(indptr[-1])
        )
        term_of = np.repeat(np.arange(len(vocab)), df.astype(np.int64))
        norm = k1 * (1.0 - b + b * lengths[rows] / avgdl)
        weights = (idf[term_of] * tf * (k1 + 1.0) / (tf + norm)).astype(np.float32)
        return cls(vocab, idf, indptr, rows, weights, n)

    def scores(self, query_tokens: Sequence[str]) -> npt.NDArray[np.float32]:
        """BM25 score of every row for a tokenized query (repeated terms count once)."""
        import numpy as np

        out = np.zeros(self.n_rows, dtype=np.float32)
        for term in dict.fromkeys(query_tokens):
            tid = self.vocab.get(term)
            if tid is None:
                continue
            a, z = int(self.indptr[tid]), int(self.indptr[tid + 1])
            np.add.at(out, self.rows[a:z], self.weights[a:z])
        return out

    def coverage(self, query_tokens: Sequence[str]) -> float:
        """Share of the query's idf mass that the corpus vocabulary knows (0..1).

        A term the corpus never saw is given the highest idf, so an English
        question over Japanese articles scores near 0: lexical search is blind
        to it, and fusion should lean on the dense side.
        """
        terms = list(dict.fromkeys(query_tokens))
        if not terms or self.n_rows == 0:
            return 0.0
        unseen = math.log1p((self.n_rows + 0.5) / 0.5)
        known = 0.0
        total = 0.0
        for term in terms:
            tid = self.vocab.get(term)
            w = unseen if tid is None else float(self.idf[tid])
            total += w
            if tid is not None:
                known += w
        return known / total if total > 0 else 0.0

    def save(self, folder: Path) -> None:
        import numpy as np

        terms = sorted(self.vocab, key=self.vocab.__getitem__)
        (folder / "lexical_vocab.json").write_text(json.dumps(terms, ensure_ascii=False), "utf-8")
        with open(folder / "lexical.npz", "wb") as f:
            np.savez(
                f,
                idf=self.idf,
                indptr=self.indptr,
                rows=self.rows,
                weights=self.weights,
                n_rows=np.array([self.n_rows]),
            )

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        import numpy as np

        try:
            terms = json.loads((folder / "lexical_vocab.json").read_text("utf-8"))
            with np.load(folder / "lexical.npz") as z:
                idf, indptr, rows, weights = z["idf"], z["indptr"], z["rows"], z["weights"]
                n_rows = int(z["n_rows"][0])
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            raise IndexCorruptError(
                f"the lexical index in {folder} is damaged ({exc}); run `bunko index --rebuild`"
            ) from exc
        if len(terms) + 1 != len(indptr) or len(rows) != len(weights):
            raise IndexCorruptError(
                f"the lexical index in {folder} is inconsistent; run `bunko index --rebuild`"
            )
        return cls({t: i for i, t in enumerate(terms)}, idf, indptr, rows, weights, n_rows)
