"""The importable surface of bunko: build, update, query and evaluate an index.

:class:`Shelf` keeps the embedding model, the tokenizer and the opened index
between calls, so a long-lived process pays for them once. The module-level
functions are one-shot conveniences over it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bunko import search
from bunko.config import DEFAULT_MODEL, Settings
from bunko.errors import (
    AddError,
    BunkoError,
    CorpusError,
    EvalError,
    IndexCorruptError,
    IndexMissingError,
    ModelMismatchError,
    UsageError,
)
from bunko.store import (
    FORMAT_VERSION,
    ChunkRow,
    DocRow,
    IndexStore,
    LoadedIndex,
    pack_vectors,
    unpack_vectors,
)
from bunko.types import (
    MODES,
    Citation,
    EvalReport,
    EvalScores,
    Explain,
    IndexReport,
    Mode,
    Passage,
    QueryResult,
    StatusReport,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from bunko.embedding import Embedder
    from bunko.text import Tokenizer
    from bunko.types import Document

log = logging.getLogger("bunko")

ProgressFn = Callable[[str, int, int], None]
"""progress(stage, done, total): called as long work advances."""

CHUNKER_VERSION = 1
TOKENIZER = {"name": "fugashi-unidic-lite", "mode": "surface", "version": 1}
SHORT_HIGHLIGHT = 60  # chars; measured on dev-qa (see benchmarks/README)
ANN_META = ("index_type", "nlist", "nprobe", "recall_at_10", "trained_on")
_SURROGATES = re.compile("[\ud800-\udfff]")
MAX_QUESTION_CHARS = 4000  # longer questions are cut; the model's window is 512 tokens anyway
# Where a chunk's own vector comes from: "embed" embeds the chunk text; "mean" is
# the token-weighted mean of its sentence vectors (half the embedding work).
CHUNK_VECTORS = os.environ.get("BUNKO_CHUNK_VECTORS", "mean")


@dataclass(frozen=True)
class AddReport:
    copied: tuple[str, ...]
    identical: tuple[str, ...]
    index: IndexReport


def _no_progress(stage: str, done: int, total: int) -> None:
    pass


class Shelf:
    """A corpus and its index, with the model, tokenizer and index cached."""

    def __init__(self, settings: Settings | None = None, progress: ProgressFn | None = None):
        self.settings = settings or Settings.resolve()
        self.store = IndexStore(self.settings.index)
        self.progress = progress or _no_progress
        self._tokenizer: Tokenizer | None = None
        self._loaded: LoadedIndex | None = None
        self._loaded_from: Path | None = None
        self._dense_background: search.Ranked = []
        self.last_signals: list[Any] = []  # confidence signals of the last query, in rank order

    # -- shared pieces -------------------------------------------------------

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            from bunko.text import Tokenizer

            self._tokenizer = Tokenizer(mode="surface")
        return self._tokenizer

    def chunker_settings(self) -> dict[str, Any]:
        return {
            "version": CHUNKER_VERSION,
            "max_tokens": self.settings.chunk_tokens,
            "overlap": self.settings.overlap,
            "chunk_vectors": CHUNK_VECTORS,
            "sentence_vectors": True,
        }

    def _requested_model(self) -> str | None:
        from bunko.embedding import canonical_name

        return canonical_name(self.settings.model) if self.settings.model else None

    def loaded(self) -> LoadedIndex:
        """The live index, reopened when another process has committed a new one."""
        current = self.store.current()
        if current is None:
            raise IndexMissingError(
                f"there is no index in {self.settings.index}; run `bunko index` to build one"
            )
        if self._loaded is None or self._loaded_from != current:
            if self._loaded is not None:
                self._loaded.close()
            self._loaded = self.store.load()
            self._loaded_from = self._loaded.folder
        return self._loaded

    # -- index ---------------------------------------------------------------

    def index(self, rebuild: bool = False, *, wait: bool = True) -> IndexReport:
        """Bring the index up to date with the corpus, embedding only what changed.

        Args:
            rebuild: ignore the existing index and build from scratch (vectors of
                unchanged chunk texts are still reused when the model is the same).
                Only a rebuild may switch the index to another corpus folder.
            wait: wait for another writer to finish (else raise IndexLockedError).

        Returns:
            What was added, updated, removed, left unchanged and skipped.

        Raises:
            CorpusError: the corpus folder is missing or has no articles, or the
                index was built from another corpus folder.
            IndexWriteError: the index could not be written; the old one is intact.
            ModelLoadError: the model could not be loaded.
        """
        from bunko.ingest import load_corpus

        t0 = time.perf_counter()
        corpus = self.settings.corpus
        docs, skips = load_corpus(corpus)
        if not docs and not skips:
            raise CorpusError(
                f"the corpus folder {corpus} has no .txt or .md articles; "
                "add some (or `bunko add FILE`), or pass --corpus DIR"
            )
        with self.store.lock(wait=wait):
            old, reason = self._open_for_update(rebuild)
            if old is not None and not rebuild and reason != "damaged index":
                try:
                    self._check_corpus(old)
                except CorpusError:
                    if old is not self._loaded:
                        old.close()
                    raise
            try:
                return self._update(docs, skips, old, reason, t0)
            finally:
                if old is not None and old is not self._loaded:
                    old.close()

    def _open_for_update(self, rebuild: bool) -> tuple[LoadedIndex | None, str | None]:
        """The old index to update (or to reuse vectors from), and why a full rebuild."""
        try:
            old = self.store.load()
        except IndexMissingError:
            return None, "new index"
        except IndexCorruptError as exc:
            log.warning("the index is damaged (%s); rebuilding it from the corpus", exc)
            return None, "damaged index"
        if rebuild:
            return old, "--rebuild"
        want = self._requested_model()
        if want is not None and want != old.model:
            log.warning("model changed from %s to %s: rebuilding the whole index", old.model, want)
            return old, f"model changed from {old.model} to {want}"
        if old.meta["chunker"] != self.chunker_settings():
            log.warning(
                "chunk settings changed from %s to %s: rebuilding the whole index",
                old.meta["chunker"],
                self.chunker_settings(),
            )
            return old, "chunk settings changed"
        if old.meta.get("tokenizer") != TOKENIZER:
            log.warning("the lexical tokenizer changed: rebuilding the whole index")
            return old, "tokenizer changed"
        return old, None

    def _update(
        self,
        docs: list[Document],
        skips: Sequence[BunkoError],
        old: LoadedIndex | None,
        reason: str | None,
        t0: float,
    ) -> IndexReport:
        import numpy as np

        from bunko import ann
        from bunko.embedding import get_embedder

        model = self._requested_model() or (old.model if old else DEFAULT_MODEL)
        embedder = get_embedder(model)
        if old is not None and reason is None and old.meta["fingerprint"] != embedder.fingerprint:
            log.warning("model %s has changed since the index was built: rebuilding", model)
            reason = "model weights changed"
        full = reason is not None
        reuse = (
            old is not None
            and old.model == model
            and old.meta["fingerprint"] == embedder.fingerprint
        )
        old_docs = old.documents() if old is not None else {}
        skipped_sources = {getattr(s, "path", "") for s in skips}

        added: list[Document] = []
        updated: list[Document] = []
        kept: list[str] = []
        for doc in docs:
            prev = old_docs.get(doc.source)
            if prev is None:
                added.append(doc)
            elif full or prev.sha256 != doc.sha256:
                updated.append(doc)
            else:
                kept.append(doc.source)
        # A file that exists but could not be read this time keeps its last good
        # version rather than vanishing from the index.
        current = {d.source for d in docs}
        kept_skipped = [s for s in old_docs if s not in current and s in skipped_sources]
        if not full:
            kept.extend(kept_skipped)
        removed = [s for s in old_docs if s not in current and s not in skipped_sources]
        if full:
            removed = [s for s in removed if s not in kept_skipped]
        n_removed = len(removed)

        if not full and not added and not updated and not removed:
            assert old is not None
            return IndexReport(
                added=0, updated=0, removed=0, unchanged=len(kept), skipped=len(skips),
                chunks_embedded=0, chunks_total=old.n_chunks,
                seconds=time.perf_counter() - t0,
                skipped_files=tuple(str(s) for s in skips),
            )  # fmt: skip

        next_id = int(old.meta.get("next_id", 1)) if old is not None else 1
        new_rows: list[ChunkRow] = []
        doc_rows: dict[str, DocRow] = {s: old_docs[s] for s in kept}
        work = added + updated
        for i, doc in enumerate(work):
            rows = self._chunk(doc, embedder, next_id)
            next_id += len(rows)
            new_rows.extend(rows)
            doc_rows[doc.source] = DocRow(
                doc.source, doc.title, doc.sha256, doc.size, doc.mtime_ns, doc.encoding, len(rows)
            )
            self.progress("chunking", i + 1, len(work))

        new_rows, vectors, n_embedded = self._vectors_for(
            new_rows, embedder, old if reuse else None
        )

        new_ids = np.asarray([r.id for r in new_rows], dtype=np.int64)
        index: Any = None
        live_type: ann.IndexType | None = None
        ann_meta: dict[str, Any] = {}
        if old is not None and not full:
            index = old.vectors
            live_type = ann.index_type(index)
            ann_meta = {k: old.meta[k] for k in ANN_META if k in old.meta}
            gone = [s for s in old_docs if s not in kept]
            if gone:
                marks = ",".join("?" * len(gone))
                ids = [r[0] for r in old.db.execute(
                    f"SELECT id FROM chunks WHERE source IN ({marks})", gone)]  # fmt: skip
                index.remove_ids(np.asarray(ids, dtype=np.int64))
            if new_rows:
                index.add_with_ids(vectors, new_ids)
        # Exact below the threshold, approximate above it (ann.py); an approximate
        # index is rebuilt when it changes type or outgrows its clusters.
        n_total = int(index.ntotal) if index is not None else len(new_rows)
        kind = ann.wanted_type(n_total, live_type, ann.threshold())
        trained_on = int(ann_meta.get("trained_on") or n_total)
        outgrown = kind == "ivf-sq8" and n_total > ann.RETRAIN_GROWTH * trained_on
        if index is None or kind != live_type or outgrown:
            if index is None:
                all_ids, all_vecs = new_ids, vectors
            else:
                all_ids = ann.row_ids(index)
                all_vecs = ann.reconstruct(index, all_ids)
            if kind == "ivf-sq8":
                self.progress("clustering", 0, 1)
            index, ann_meta = ann.build(all_vecs, all_ids, kind)
        index = ann.for_writing(index)

        # BM25 rows follow the FAISS row order so one row number means one chunk.
        tokens: dict[int, Sequence[str]] = {r.id: r.tokens for r in new_rows}
        if old is not None and not full and kept:
            marks = ",".join("?" * len(kept))
            for cid, tok in old.db.execute(
                f"SELECT id, tokens FROM chunks WHERE source IN ({marks})", kept
            ):
                tokens[cid] = tok.split("\x1f") if tok else []
        from bunko.lexical import LexicalIndex

        row_ids = ann.row_ids(index)
        lexical = LexicalIndex.build([tokens[int(i)] for i in row_ids])

        meta = {
            "format": FORMAT_VERSION,
            "model": model,
            "fingerprint": embedder.fingerprint,
            "dimension": embedder.dim,
            **ann_meta,
            "metric": "inner_product",
            "chunker": self.chunker_settings(),
            "tokenizer": TOKENIZER,
            "documents": len(doc_rows),
            "chunks": int(index.ntotal),
            "next_id": next_id,
            "created": old.meta.get("created") if old is not None and not full else None,
            "corpus": str(self.settings.corpus.resolve()),
            "corpus_from_index": _relpath(self.settings.corpus, self.settings.index),
        }
        meta["created"] = meta["created"] or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        copy_from = (old.folder, kept) if old is not None and not full else None
        self.store.commit(
            meta, sorted(doc_rows.values(), key=lambda d: d.source), new_rows, index, lexical,
            copy_from,
        )  # fmt: skip
        return IndexReport(
            added=len(added),
            updated=len(updated),
            removed=n_removed,
            unchanged=len(kept) if not full else 0,
            skipped=len(skips),
            chunks_embedded=n_embedded,
            chunks_total=int(index.ntotal),
            seconds=time.perf_counter() - t0,
            rebuilt=full,
            rebuild_reason=reason,
            skipped_files=tuple(str(s) for s in skips),
        )

    def _chunk(self, doc: Document, embedder: Embedder, first_id: int) -> list[ChunkRow]:
        from bunko.chunking import chunk_document

        max_tokens = min(self.settings.chunk_tokens, embedder.max_tokens)
        chunks = chunk_document(doc, embedder.count_tokens, max_tokens, self.settings.overlap)
        toks = self.tokenizer.tokens_many([c.text for c in chunks])
        return [
            ChunkRow(
                id=first_id + i,
                source=c.source,
                title=c.title,
                heading=c.heading,
                text=c.text,
                char_start=c.char_start,
                char_end=c.char_end,
                line_start=c.line_start,
                line_end=c.line_end,
                sentences=tuple((s.start, s.end) for s in c.sentences),
                n_tokens=c.n_tokens,
                hash=_text_hash(CHUNK_VECTORS + "\n" + embed_text(c.text)),
                tokens=tuple(t),
            )
            for i, (c, t) in enumerate(zip(chunks, toks, strict=True))
        ]

    def _vectors_for(
        self, rows: list[ChunkRow], embedder: Embedder, cache: LoadedIndex | None
    ) -> tuple[list[ChunkRow], npt.NDArray[np.float32], int]:
        """Chunk vectors and packed sentence vectors for new rows.

        A chunk whose text was embedded before (same text hash, same model) takes
        its vectors from the old index; the rest are embedded. Returns the rows
        with their sentence vectors filled in, the chunk vectors, and how many
        chunks had to be embedded.
        """
        import numpy as np

        out = np.zeros((len(rows), embedder.dim), dtype=np.float32)
        blobs = [b""] * len(rows)
        todo = list(range(len(rows)))
        if cache is not None and rows:
            hashes = sorted({r.hash for r in rows})
            found: dict[str, tuple[int, bytes]] = {}
            for start in range(0, len(hashes), 500):
                part = hashes[start : start + 500]
                marks = ",".join("?" * len(part))
                for h, cid, blob in cache.db.execute(
                    f"SELECT hash, id, sentvecs FROM chunks WHERE hash IN ({marks})", part
                ):
                    found[h] = (cid, blob)
            from bunko import ann

            hit = [i for i, r in enumerate(rows) if r.hash in found]
            todo = [i for i, r in enumerate(rows) if r.hash not in found]
            if hit:
                cids = np.asarray([found[rows[i].hash][0] for i in hit], dtype=np.int64)
                out[hit] = ann.reconstruct(cache.vectors, cids)
                for i in hit:
                    blobs[i] = found[rows[i].hash][1]
        if todo:
            # Each distinct sentence is embedded once (overlapping chunks share one).
            texts: list[str] = []
            slot: dict[str, int] = {}
            members: list[list[int]] = []
            for i in todo:
                r = rows[i]
                idx = []
                for a, z in r.sentences:
                    t = r.text[a - r.char_start : z - r.char_start]
                    idx.append(slot.setdefault(t, len(slot)))
                    if idx[-1] == len(texts):
                        texts.append(t)
                members.append(idx)
            chunk_texts = (
                [] if CHUNK_VECTORS == "mean" else [embed_text(rows[i].text) for i in todo]
            )
            total = len(texts) + len(chunk_texts)
            self.progress("embedding", 0, total)
            vecs = embedder.embed_passages(
                texts + chunk_texts, progress=lambda n: self.progress("embedding", n, total)
            )
            sent = vecs[: len(texts)]
            if CHUNK_VECTORS == "mean":
                base = embedder.count_tokens("")
                weight = np.array(
                    [max(1, embedder.count_tokens(t) - base) for t in texts], dtype=np.float32
                )
            for j, (i, idx) in enumerate(zip(todo, members, strict=True)):
                blobs[i] = pack_vectors(sent[idx])
                if CHUNK_VECTORS == "mean":
                    v = (sent[idx] * weight[idx, None]).sum(axis=0)
                    out[i] = v / (np.linalg.norm(v) or 1.0)
                else:
                    out[i] = vecs[len(texts) + j]
        done = [dataclasses.replace(r, sentvecs=blob) for r, blob in zip(rows, blobs, strict=True)]
        return done, out, len(todo)

    # -- query ---------------------------------------------------------------

    def query(
        self,
        question: str,
        k: int = 5,
        mode: Mode = "hybrid",
        explain: bool = False,
        *,
        min_confidence: float | None = None,
        update: bool = True,
    ) -> QueryResult:
        """Answer a question with the ``k`` most relevant cited passages.

        Builds the index first when there is none yet, and (unless ``update`` is
        False) brings it up to date when corpus files were added, changed or
        removed since the last update. No two passages share text of one file.

        Args:
            min_confidence: the confidence the top passage needs for the result to
                be ``answerable`` (default: the value the abstention benchmark chose).
            update: check the corpus for changes and index them before answering.

        Raises:
            UsageError: empty question, k < 1, an unknown mode or a bad min_confidence.
            CorpusError: the corpus folder is missing, or the index belongs to another.
            ModelMismatchError: the index was built with another model.
            IndexCorruptError: an index file is damaged.
        """
        from bunko.retrieval import confidence as conf
        from bunko.retrieval.passages import group_places, merge_rows

        question = _check_question(question, k, mode)
        threshold = conf.DEFAULT_MIN_CONFIDENCE if min_confidence is None else min_confidence
        if not 0.0 <= threshold <= 1.0:
            raise UsageError(f"--min-confidence must be between 0 and 1 (got {threshold})")
        if self.store.current() is None:
            log.warning("no index yet in %s: building it first", self.settings.index)
            self.index()
        elif update:
            self._refresh()
        else:
            self._check_corpus(self.loaded())
        loaded = self.loaded()
        q = question[:MAX_QUESTION_CHARS]
        q_tokens = self.tokenizer.tokens(q)
        n = max(search.CANDIDATES, k)
        dense, lexical, rows, sent_sims = self.candidates(q, q_tokens, mode, n)
        if mode == "hybrid":
            weight = search.lexical_weight(loaded.lexical.coverage(q_tokens))
            fused = search.fuse(dense, lexical, weight, len(rows))
        else:
            fused = search.single(dense if mode == "dense" else lexical, len(rows), mode)
        groups = group_places(
            fused, lambda h: (rows[h.chunk_id].source, rows[h.chunk_id].char_start,
                              rows[h.chunk_id].char_end), k)  # fmt: skip
        lex = loaded.lexical
        idf = {t: float(lex.idf[lex.vocab[t]]) for t in q_tokens if t in lex.vocab}
        unseen = math.log1p((lex.n_rows + 0.5) / 0.5)
        chunk_cos = [s for _, s in self._dense_background]
        background = conf.median(chunk_cos)
        passages = []
        for rank, group in enumerate(groups, 1):
            hit = group[0]
            row, sims = merge_rows(
                [rows[h.chunk_id] for h in group], [sent_sims.get(h.chunk_id) for h in group]
            )
            best = float(sims.max()) if sims is not None and len(sims) else background
            signals = conf.Signals(
                sentence=best,
                gap=best - background,
                coverage=conf.word_coverage(q_tokens, row.tokens, idf, unseen),
                cross=conf.cross_lingual(q, row.text),
            )
            hl_start, hl_end = self._highlight(row, q, q_tokens, idf, sims)
            passages.append(
                Passage(
                    rank=rank,
                    score=round(hit.score, 6),
                    text=row.text,
                    highlight=row.text[hl_start - row.char_start : hl_end - row.char_start],
                    highlight_span=(hl_start, hl_end),
                    citation=Citation(
                        number=rank,
                        title=row.title,
                        source=row.source,
                        heading=row.heading,
                        line_start=row.line_start,
                        line_end=row.line_end,
                        char_start=row.char_start,
                        char_end=row.char_end,
                    ),
                    explain=_explain(hit, mode) if explain else None,
                    confidence=round(conf.confidence(signals), 4),
                )
            )
            self.last_signals.append(signals)
        return QueryResult(
            query=question,
            mode=mode,
            model=loaded.model,
            passages=tuple(passages),
            answerable=bool(passages) and passages[0].confidence >= threshold,
            min_confidence=threshold,
        )

    def _check_corpus(self, loaded: LoadedIndex) -> None:
        from bunko.freshness import check_corpus

        check_corpus(self.settings.corpus, self.settings.index, loaded.meta)

    def _refresh(self) -> None:
        """Index what changed in the corpus since the last update, saying so on stderr.

        A read-only or locked index is not an error here: the query answers from
        what the index holds, with a warning.
        """
        from bunko.errors import IndexLockedError, IndexWriteError
        from bunko.freshness import corpus_changes

        loaded = self.loaded()
        self._check_corpus(loaded)
        changes = corpus_changes(self.settings.corpus, loaded.documents())
        if not changes:
            return
        log.warning("the corpus changed since the last update: %s; updating the index",
                    changes.summary())  # fmt: skip
        try:
            self.index(wait=False)
        except IndexLockedError:
            log.warning("another bunko process is updating %s; answering from the index as it "
                        "is", self.settings.index)  # fmt: skip
        except IndexWriteError as exc:
            log.warning("could not update the index (%s); answering from the index as it is", exc)

    def candidates(
        self, q: str, q_tokens: Sequence[str], mode: Mode, n: int
    ) -> tuple[search.Ranked, search.Ranked, dict[int, ChunkRow], dict[int, Any]]:
        """Dense and lexical candidates before fusion, with their rows and sentence cosines.

        The dense side is re-ranked with sentence vectors (:func:`search.rescore_dense`)
        over every candidate either retriever found. The question is embedded in
        every mode: confidence reads the sentence cosines even in lexical mode.
        The raw dense chunk cosines are kept in ``self._dense_background``.
        """
        loaded = self.loaded()
        embedder = self._embedder_for(loaded)
        qvec = embedder.embed_query(q)
        dense = search.dense_candidates(loaded, qvec, n)
        self._dense_background = dense
        self.last_signals = []
        lexical = search.lexical_candidates(loaded, q_tokens, n) if mode != "dense" else []
        if mode == "lexical":
            dense = []
        # One fetch for every candidate: their sentence vectors re-rank the dense side.
        rows = loaded.chunks(list(dict.fromkeys(c for c, _ in dense + lexical)))
        sent_sims: dict[int, Any] = {}
        for cid, row in rows.items():
            sent_sims[cid] = unpack_vectors(row.sentvecs, loaded.vectors.d) @ qvec
        if mode != "lexical":
            dense = search.rescore_dense(dense, list(rows), sent_sims)
        return dense, lexical, rows, sent_sims

    def _embedder_for(self, loaded: LoadedIndex) -> Embedder:
        from bunko.embedding import get_embedder

        want = self._requested_model()
        if want is not None and want != loaded.model:
            raise ModelMismatchError(
                f"the index in {self.settings.index} was built with model {loaded.model}, "
                f"but you asked for {want}. Query without --model (or unset BUNKO_MODEL) to "
                f"use {loaded.model}, or rebuild for the new model: "
                f"`bunko index --rebuild --model {want}`"
            )
        embedder = get_embedder(loaded.model)
        if embedder.fingerprint != loaded.meta["fingerprint"]:
            raise ModelMismatchError(
                f"model {loaded.model} has changed since the index was built "
                f"({loaded.meta['fingerprint']} then, {embedder.fingerprint} now); "
                "run `bunko index --rebuild`"
            )
        return embedder

    def _highlight(
        self,
        row: ChunkRow,
        question: str,
        q_tokens: Sequence[str],
        idf: dict[str, float],
        sims: npt.NDArray[np.float32] | None,
    ) -> tuple[int, int]:
        """Char span (in the source file) of the sentence that best answers the question."""
        spans = row.sentences or ((row.char_start, row.char_end),)
        texts = [row.text[s - row.char_start : e - row.char_start] for s, e in spans]
        if sims is not None and len(sims) != len(texts):
            sims = None
        scores = search.sentence_scores(
            q_tokens, question, texts, self.tokenizer.tokens_many(texts), idf, sims
        )
        best = max(range(len(scores)), key=scores.__getitem__)
        start, end = spans[best]
        # A short line (a heading, a list label, "two models were announced:") rarely
        # holds the answer by itself: the sentence after it joins the highlight.
        if end - start < SHORT_HIGHLIGHT and best + 1 < len(spans):
            end = spans[best + 1][1]
        return start, end

    # -- add, status, eval ---------------------------------------------------

    def add(self, files: Sequence[str | Path], force: bool = False) -> AddReport:
        """Copy articles into the corpus folder, then update the index.

        Every file lands as a plain name directly in the corpus folder, whatever
        path it came from, so nothing is ever written outside it.

        Raises:
            AddError: a file is missing, not .txt/.md, or would overwrite a
                different article of the same name without ``force``.
        """
        from bunko.ingest import SUPPORTED_SUFFIXES

        corpus = self.settings.corpus
        if not corpus.is_dir():
            raise CorpusError(
                f"the corpus folder {corpus} does not exist; create it or pass --corpus DIR"
            )
        plan: list[tuple[Path, Path]] = []
        identical: list[str] = []
        names: set[str] = set()
        for f in map(Path, files):
            if not f.is_file():
                raise AddError(f"{f} is not a file")
            name = f.name.lstrip(".") or "article.txt"
            if Path(name).suffix.lower() not in SUPPORTED_SUFFIXES:
                raise AddError(f"{f}: only {', '.join(SUPPORTED_SUFFIXES)} files can be added")
            if name in names:
                raise AddError(f"two files named {name} were given; rename one")
            names.add(name)
            dest = corpus / name
            if dest.exists():
                if dest.is_file() and dest.read_bytes() == f.read_bytes():
                    identical.append(name)
                    continue
                if not force:
                    raise AddError(
                        f"{dest} already exists and differs from {f}; "
                        "pass --force to overwrite it, or rename the file"
                    )
            plan.append((f, dest))
        for src, dest in plan:
            # A fresh, exclusively created temp name: a fixed one could already be a
            # symlink pointing out of the corpus, and copying would write through it.
            fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".bunko-tmp", dir=corpus)
            tmp = Path(name)
            try:
                with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
                    shutil.copyfileobj(inp, out)
                shutil.copymode(src, tmp)  # mkstemp made it 0600
                os.replace(tmp, dest)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise AddError(f"could not copy {src} into {corpus}: {exc}") from exc
        report = self.index()
        return AddReport(tuple(d.name for _, d in plan), tuple(identical), report)

    def status(self) -> StatusReport:
        """What the index holds, and which corpus files it has not caught up with."""
        from bunko.ingest import list_corpus, source_of

        loaded = self.loaded() if self.store.current() is not None else None
        indexed = loaded.documents() if loaded is not None else {}
        new: list[str] = []
        changed: list[str] = []
        seen: set[str] = set()
        if self.settings.corpus.is_dir():
            for path in list_corpus(self.settings.corpus):
                src = source_of(path, self.settings.corpus)
                seen.add(src)
                prev = indexed.get(src)
                if prev is None:
                    new.append(src)
                    continue
                try:
                    st = path.stat()
                    if st.st_size == prev.size and st.st_mtime_ns == prev.mtime_ns:
                        continue
                    if hashlib.sha256(path.read_bytes()).hexdigest() != prev.sha256:
                        changed.append(src)
                except OSError:
                    changed.append(src)
        removed = sorted(s for s in indexed if s not in seen)
        meta = loaded.meta if loaded is not None else {}
        return StatusReport(
            corpus=str(self.settings.corpus),
            index=str(self.settings.index),
            exists=loaded is not None,
            model=meta.get("model"),
            dimension=meta.get("dimension"),
            index_type=meta.get("index_type"),
            documents=len(indexed),
            chunks=loaded.n_chunks if loaded is not None else 0,
            created=meta.get("created"),
            updated=meta.get("updated"),
            stale_new=tuple(new),
            stale_changed=tuple(changed),
            stale_removed=tuple(removed),
            recall_at_10=meta.get("recall_at_10"),
            nprobe=meta.get("nprobe"),
        )

    def evaluate(self, path: str | Path, k: int = 10, mode: Mode = "hybrid") -> EvalReport:
        """hit@1/3/5/10 and MRR@10 per language on a JSONL file of questions with evidence.

        Each line: {"id", "lang", "question", "doc", "evidence": [str, ...]}. A hit is a
        result whose text contains any evidence string, after NFKC on both sides.
        A line with ``"answerable": false`` (and no evidence) is a question the corpus
        does not answer: it counts only towards the abstention scores (top confidence
        against the default threshold, AUROC), reported per language.

        Raises:
            EvalError: the file is missing or a line is malformed.
        """
        from bunko.retrieval.abstention import abstention_scores

        items = load_eval(Path(path))
        depth = max(k, 10)
        ranks: dict[str, list[int | None]] = {}
        tops: dict[str, tuple[list[float], list[float]]] = {}
        threshold = 0.0
        for item in items:
            result = self.query(item["question"], k=depth, mode=mode, update=False)
            threshold = result.min_confidence
            lang = str(item.get("lang", "all"))
            top = result.passages[0].confidence if result.passages else 0.0
            if item.get("answerable", True) is False:
                tops.setdefault(lang, ([], []))[1].append(top)
            else:
                tops.setdefault(lang, ([], []))[0].append(top)
                evidence = [_nfkc(e) for e in item["evidence"]]
                rank = next(
                    (p.rank for p in result.passages if any(e in _nfkc(p.text) for e in evidence)),
                    None,
                )
                ranks.setdefault(lang, []).append(rank)
            self.progress("evaluating", sum(len(a) + len(b) for a, b in tops.values()), len(items))
        model = self.loaded().model
        all_ranks = [r for rs in ranks.values() for r in rs]
        abstention = {}
        if any(neg for _, neg in tops.values()):
            for lang, (pos, neg) in sorted(tops.items()):
                abstention[lang] = abstention_scores(pos, neg, threshold)
            abstention["all"] = abstention_scores(
                [c for pos, _ in tops.values() for c in pos],
                [c for _, neg in tops.values() for c in neg],
                threshold,
            )
        return EvalReport(
            file=str(path),
            mode=mode,
            model=model,
            k=k,
            by_lang={lang: _scores(rs, k) for lang, rs in sorted(ranks.items())},
            overall=_scores(all_ranks, k),
            abstention=abstention,
        )


def embed_text(chunk_text: str) -> str:
    """The text given to the embedding model for a chunk."""
    return chunk_text


def _relpath(path: Path, start: Path) -> str | None:
    """``path`` relative to ``start`` (None across drives): a corpus and index moved together."""
    try:
        return os.path.relpath(path.resolve(), start.resolve())
    except ValueError:
        return None


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _nfkc(s: str) -> str:
    return unicodedata.normalize("NFKC", s)


def _check_question(question: str, k: int, mode: str) -> str:
    if not isinstance(question, str) or not question.strip():
        raise UsageError(
            'the question is empty; ask something, e.g. bunko query "GPT-4.5の料金は？"'
        )
    if k < 1:
        raise UsageError(f"-k/--top-k must be at least 1 (got {k})")
    if mode not in MODES:
        raise UsageError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    # Lone surrogates (from command-line bytes that are not UTF-8) cannot reach the
    # tokenizer, the model or stdout; they become U+FFFD like any undecodable byte.
    return _SURROGATES.sub("\ufffd", question.strip())


def _explain(hit: search.Hit, mode: Mode) -> Explain:
    if mode == "hybrid":
        w = hit.lexical_weight
        fused = (
            f"{1 - w:.3f}·dense + {w:.3f}·lexical, each min-max scaled over the candidates; "
            "dense = mean of chunk and best-sentence cosine; "
            f"w = {search.LEXICAL_WEIGHT}·coverage^{search.COVERAGE_POWER:g}"
        )
    else:
        fused = f"{mode} only"
    return Explain(
        dense_rank=hit.dense_rank,
        dense_score=hit.dense_score,
        lexical_rank=hit.lexical_rank,
        lexical_score=hit.lexical_score,
        lexical_weight=hit.lexical_weight,
        fused=fused,
    )


def _scores(ranks: Sequence[int | None], k: int) -> EvalScores:
    n = len(ranks)
    cuts = sorted({1, 3, 5, 10, k})
    hit_at = {c: sum(1 for r in ranks if r is not None and r <= c) / n if n else 0.0 for c in cuts}
    mrr = sum(1.0 / r for r in ranks if r is not None and r <= 10) / n if n else 0.0
    return EvalScores(n=n, hit_at=hit_at, mrr_at_10=mrr)


def load_eval(path: Path) -> list[dict[str, Any]]:
    """Read and check an evaluation JSONL file."""
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalError(f"cannot read the evaluation file {path}: {exc}") from exc
    items = []
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalError(f"{path}:{no}: not valid JSON ({exc.msg})") from exc
        unanswerable = isinstance(item, dict) and item.get("answerable", True) is False
        ok = (
            isinstance(item, dict)
            and isinstance(item.get("question"), str)
            and item["question"].strip()
            and unanswerable
        ) or (
            isinstance(item, dict)
            and isinstance(item.get("question"), str)
            and item["question"].strip()
            and isinstance(item.get("evidence"), list)
            and item["evidence"]
            and all(isinstance(e, str) and e for e in item["evidence"])
        )
        if not ok:
            raise EvalError(
                f'{path}:{no}: each line needs "question" (text) and "evidence" (a list of '
                'text), or "answerable": false for a question the corpus does not answer'
            )
        items.append(item)
    if not items:
        raise EvalError(f"{path} has no questions")
    return items


# -- one-shot conveniences -----------------------------------------------------


def index(settings: Settings | None = None, rebuild: bool = False) -> IndexReport:
    """Build or update the index for ``settings`` (see :meth:`Shelf.index`)."""
    return Shelf(settings).index(rebuild=rebuild)


def query(
    question: str, settings: Settings | None = None, k: int = 5, mode: Mode = "hybrid"
) -> QueryResult:
    """Answer one question (see :meth:`Shelf.query`)."""
    return Shelf(settings).query(question, k=k, mode=mode)


def add(
    files: Sequence[str | Path], settings: Settings | None = None, force: bool = False
) -> AddReport:
    """Copy articles into the corpus and update the index (see :meth:`Shelf.add`)."""
    return Shelf(settings).add(files, force=force)


def evaluate(
    path: str | Path, settings: Settings | None = None, k: int = 10, mode: Mode = "hybrid"
) -> EvalReport:
    """Evaluate retrieval on a JSONL file (see :meth:`Shelf.evaluate`)."""
    return Shelf(settings).evaluate(path, k=k, mode=mode)
