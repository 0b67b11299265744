"""A BM25 index over Japanese-aware tokens, in plain numpy.

bm25s would do the same, but importing it pulls in scipy (0.34 s measured here),
more than the rest of the query path together. The index is a term-major CSR
matrix of precomputed BM25 weights, so a query is a few array slices and one
scatter-add.
"""

from __future__ import annotations

import json
import math
import struct
import zipfile
from array import array
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bunko.errors import IndexCorruptError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

K1 = 1.2
B = 0.75
_BLOCK = 20_000  # token lists turned into postings at a time


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
    def build(cls, docs: Iterable[Sequence[str]], k1: float = K1, b: float = B) -> LexicalIndex:
        """Index token lists; row i of the index is the i-th list.

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
        vocab = dict(ids)
        cat = np.concatenate
        post_rows = cat([p[0] for p in parts]) if parts else np.zeros(0, np.int32)
        post_terms = cat([p[1] for p in parts]) if parts else np.zeros(0, np.int32)
        post_tf = cat([p[2] for p in parts]).astype(np.int32) if parts else np.zeros(0, np.int32)
        parts.clear()
        n = len(lengths)
        lens = np.frombuffer(lengths, dtype=np.int32).astype(np.float32)
        avgdl = float(lens.mean()) if n and lens.sum() > 0 else 1.0
        terms = post_terms
        # Stable, so each term's rows stay in ascending order.
        order = np.argsort(terms, kind="stable")
        df = np.bincount(terms, minlength=len(vocab)).astype(np.int64)
        del terms, post_terms
        rows = post_rows[order]
        del post_rows
        tf = post_tf[order].astype(np.float32)
        del post_tf
        term_of = np.repeat(np.arange(len(vocab), dtype=np.int32), df)
        del order
        # The "plus one" idf of Lucene: never negative, even for very common terms.
        idf = np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)
        indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        indptr[1:] = np.cumsum(df)
        norm = k1 * (1.0 - b + b * lens[rows] / avgdl)
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
            # A term lists each row once, so plain fancy-index addition is exact
            # (and much faster than np.add.at).
            out[self.rows[a:z]] += self.weights[a:z]
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

        try:
            terms = json.loads((folder / "lexical_vocab.json").read_text("utf-8"))
            z = _map_npz(folder / "lexical.npz")
            idf, indptr, rows, weights = z["idf"], z["indptr"], z["rows"], z["weights"]
            n_rows = int(z["n_rows"][0])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise IndexCorruptError(
                f"the lexical index in {folder} is damaged ({exc}); run `bunko index --rebuild`"
            ) from exc
        if len(terms) + 1 != len(indptr) or len(rows) != len(weights):
            raise IndexCorruptError(
                f"the lexical index in {folder} is inconsistent; run `bunko index --rebuild`"
            )
        return cls({t: i for i, t in enumerate(terms)}, idf, indptr, rows, weights, n_rows)


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
            out[key] = np.memmap(
                path, dtype=dtype, mode="r", offset=f.tell(), shape=shape,
                order="F" if fortran else "C",
            )  # fmt: skip
    return out
