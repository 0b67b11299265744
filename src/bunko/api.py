"""The importable surface of bunko: build, update, query and evaluate an index.

:class:`Shelf` keeps the embedding model, the tokenizer and the opened index
between calls, so a long-lived process pays for them once. The module-level
functions are one-shot conveniences over it.
"""

from __future__ import annotations

import json
import logging
import math
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bunko import search
from bunko.config import Settings
from bunko.errors import (
    CorpusError,
    EvalError,
    IndexMissingError,
    ModelMismatchError,
    SourceError,
    UsageError,
)
from bunko.index.format import ChunkRow
from bunko.index.snapshot import Snapshot
from bunko.index.store import IndexStore
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
    SkippedFile,
    StatusReport,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from bunko.embedding import Embedder
    from bunko.retrieval.crossling import Rendering
    from bunko.shelfops import ShowResult
    from bunko.text import Tokenizer

log = logging.getLogger("bunko")

ProgressFn = Callable[[str, int, int], None]
"""progress(stage, done, total): called as long work advances."""

_SURROGATES = re.compile("[\ud800-\udfff]")
MAX_QUESTION_CHARS = 4000  # longer questions are cut; the model's window is 512 tokens anyway


@dataclass(frozen=True)
class AddReport:
    """What :meth:`Shelf.add` did: corpus names copied, already there, and skipped."""

    copied: tuple[str, ...]
    identical: tuple[str, ...]
    index: IndexReport
    skipped: tuple[SkippedFile, ...] = ()


@dataclass(frozen=True)
class RemoveReport:
    """What :meth:`Shelf.remove` did: the corpus names deleted, and the index update."""

    removed: tuple[str, ...]
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
        self._loaded: Snapshot | None = None
        self._loaded_from: Path | None = None
        self._extras: tuple[Path, dict[str, dict[str, Any]]] | None = None
        self._dense_background: search.Ranked = []
        self.last_signals: list[Any] = []  # confidence signals of the last query, in rank order

    @classmethod
    def open(
        cls,
        home: str | Path | None = None,
        *,
        model: str | None = None,
        progress: ProgressFn | None = None,
    ) -> Shelf:
        """The shelf in folder ``home`` (its ``corpus/`` and ``index/``).

        Without ``home``, the shelf is found as the command line finds it:
        ``BUNKO_HOME``, else the nearest folder from the current one upwards that
        holds ``corpus/`` or ``bunko.toml`` (``BUNKO_CORPUS``/``BUNKO_INDEX`` win).
        Nothing is read until a method needs it.
        """
        if home is None:
            return cls(Settings.resolve(model=model), progress=progress)
        root = Path(home)
        return cls(
            Settings.resolve(corpus=root / "corpus", index=root / "index", model=model),
            progress=progress,
        )

    # -- shared pieces -------------------------------------------------------

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            from bunko.text import Tokenizer

            self._tokenizer = Tokenizer(mode="surface")
        return self._tokenizer

    def chunker_settings(self) -> dict[str, Any]:
        from bunko.pipeline import chunker_settings

        return chunker_settings(self.settings)

    def _requested_model(self) -> str | None:
        # Not through bunko.pipeline: the query path should not import the writer.
        from bunko.embedding import canonical_name

        return canonical_name(self.settings.model) if self.settings.model else None

    def loaded(self) -> Snapshot:
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

    def index(
        self, rebuild: bool = False, optimize: bool = False, *, wait: bool = True
    ) -> IndexReport:
        """Bring the index up to date with the corpus, embedding only what changed.

        Args:
            rebuild: ignore the existing index and build from scratch (vectors of
                unchanged chunk texts are still reused when the model is the same).
                Only a rebuild may switch the index to another corpus folder.
            optimize: merge every segment into one, dropping deleted rows.
            wait: wait for another writer to finish (else raise IndexLockedError).

        Returns:
            What was added, updated, removed, left unchanged and skipped.

        Raises:
            CorpusError: the corpus folder is missing or has no articles, or the
                index was built from another corpus folder.
            IndexWriteError: the index could not be written; the old one is intact.
            ModelLoadError: the model could not be loaded.
        """
        from bunko import pipeline

        if not self.settings.corpus.is_dir():  # an error before the lock (no index folder made)
            from bunko.ingest import list_corpus

            list_corpus(self.settings.corpus)  # raises CorpusError, naming the problem
        with self.store.lock(wait=wait):
            if not rebuild:
                self._check_live_corpus()
            return pipeline.run(
                self.settings, self.store, rebuild, self.tokenizer, self.progress, optimize
            )

    # -- query ---------------------------------------------------------------

    def query(
        self,
        question: str,
        k: int = 5,
        mode: Mode = "hybrid",
        explain: bool = False,
        *,
        sources: Sequence[str] | None = None,
        min_confidence: float | None = None,
        update: bool = True,
    ) -> QueryResult:
        """Answer a question with the ``k`` most relevant cited passages.

        Builds the index first when there is none yet, and (unless ``update`` is
        False) brings it up to date when corpus files were added, changed or
        removed since the last update. No two passages share text of one file.
        ``sources`` (corpus-relative globs such as ``2024/*``) limits the passages
        to matching articles.

        Args:
            min_confidence: the confidence the top passage needs for the result to
                be ``answerable`` (default: the value the abstention benchmark chose).
            update: check the corpus for changes and index them before answering.

        Raises:
            UsageError: empty question, k < 1, an unknown mode or a bad min_confidence.
            CorpusError: the corpus folder is missing, or the index belongs to another.
            SourceError: a ``sources`` glob points outside the corpus or matches
                no indexed article.
            ModelMismatchError: the index was built with another model.
            IndexCorruptError: an index file is damaged.
        """
        from bunko.retrieval import confidence as conf
        from bunko.retrieval.crossling import dense_text as crossling_dense_text
        from bunko.retrieval.passages import group_places, merge_rows

        question = _check_question(question, k, mode)
        threshold = conf.DEFAULT_MIN_CONFIDENCE if min_confidence is None else min_confidence
        if not 0.0 <= threshold <= 1.0:
            raise UsageError(f"min_confidence must be between 0 and 1 (got {threshold})")
        if self.store.current() is None:
            log.warning("no index yet in %s: building it first", self.settings.index)
            self.index()
        elif update:
            self._refresh()
        else:
            self._check_corpus(self.loaded())
        loaded = self.loaded()
        q = question[:MAX_QUESTION_CHARS]
        q_tokens = self._query_tokens(q, loaded)
        # --- cross-lingual hook (retrieval/crossling.py) -----------------------------
        # An English question over Japanese articles gets Japanese terms (words, names,
        # phrases, dates) for the lexical side, and the dense side embeds the question
        # with its Japanese rendering appended (one embedding). Japanese questions skip
        # it (no dictionary). Confidence and highlight read q_tokens.
        rendering = self.crosslingual(q, q_tokens, loaded)
        extra = dict(rendering.terms) if rendering is not None and mode != "dense" else {}
        dense_text = crossling_dense_text(q, rendering)
        # --- end of the cross-lingual hook ---------------------------------------------
        n = max(search.CANDIDATES, k)
        dense, lexical, rows, sent_sims = self._candidates_in(
            q, q_tokens, mode, n, sources, extra, dense_text
        )
        if mode == "hybrid":
            # (cross-lingual hook) an English word with a Japanese form counts as known
            asked = [t for t in q_tokens if rendering is None or t not in rendering.translated]
            weight = search.lexical_weight(loaded.coverage([*asked, *extra]))
            weight *= search.lexical_distinctness(lexical)
            fused = search.fuse(dense, lexical, weight, len(rows))
        else:
            fused = search.single(dense if mode == "dense" else lexical, len(rows), mode)
        groups = group_places(
            fused, lambda h: (rows[h.chunk_id].source, rows[h.chunk_id].char_start,
                              rows[h.chunk_id].char_end), k)  # fmt: skip
        idf = loaded.idf(q_tokens)
        unseen = math.log1p((loaded.n_chunks + 0.5) / 0.5)
        background = conf.median([s for _, s in self._dense_background])
        extras = self._doc_extras(loaded) if groups else {}
        passages = []
        for rank, group in enumerate(groups, 1):
            hit = group[0]
            row, sims = merge_rows(
                [rows[h.chunk_id] for h in group], [sent_sims.get(h.chunk_id) for h in group]
            )
            best = float(sims.max()) if sims is not None and len(sims) else background
            cross = conf.cross_lingual(q, row.text)
            signals = conf.Signals(
                sentence=best,
                gap=best - background,
                coverage=conf.translated_coverage(q, row.text, row.tokens)
                if cross
                else conf.word_coverage(q_tokens, row.tokens, idf, unseen),
                cross=cross,
            )
            hl_start, hl_end = self._highlight(row, q, q_tokens, idf, sims)
            page, url, link = _where(extras.get(row.source, {}), row, hl_start, hl_end)
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
                        page=page,
                        url=url,
                        link=link,
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

    def _query_tokens(self, q: str, loaded: Snapshot) -> list[str]:
        """The question's tokens, plus the corpus's spelling of words it writes with a
        look-alike letter for a digit ("o1" where the articles say "01")."""
        tokens = self.tokenizer.tokens(q)
        variants = self.tokenizer.tokens_many(search.digit_spellings(q))
        extra = [t for v in variants for t in v if t not in tokens]
        if extra:
            known = loaded.idf(extra)
            tokens += [t for t in dict.fromkeys(extra) if t in known]
        return tokens

    def expansion(self, q: str, q_tokens: Sequence[str], loaded: Snapshot) -> dict[str, float]:
        """Extra lexical terms for the question, ``{term: BM25 weight}``: Japanese
        headwords for the English words of a question without Japanese script that the
        corpus does not know (:mod:`bunko.retrieval.expansion`); empty otherwise, and
        then the dictionary is never opened."""
        from bunko.retrieval import expansion

        if expansion.is_japanese(q):
            return {}
        return expansion.translations(q, q_tokens, loaded.idf, self.tokenizer.tokens)

    def crosslingual(self, q: str, q_tokens: Sequence[str], loaded: Snapshot) -> Rendering | None:
        """The Japanese rendering of a question without Japanese script
        (:func:`bunko.retrieval.crossling.render`); None for a Japanese question, which
        never opens the dictionary, and for one whose words the corpus all knows."""
        from bunko.retrieval import crossling, expansion

        if expansion.is_japanese(q):
            return None
        known = loaded.idf(q_tokens)
        if all(t in known for t in q_tokens):
            return None
        return crossling.render(q, q_tokens, loaded.idf, self.tokenizer.tokens)

    def _check_corpus(self, loaded: Snapshot) -> None:
        from bunko.freshness import check_corpus

        check_corpus(self.settings.corpus, self.settings.index, loaded.meta)

    def _check_live_corpus(self) -> None:
        """Refuse to update an index built from another corpus folder (a missing,
        damaged or old-format index is the pipeline's to rebuild)."""
        from bunko.errors import IndexCorruptError

        try:
            live = self.store.load()
        except (IndexMissingError, IndexCorruptError):
            return
        try:
            self._check_corpus(live)
        finally:
            if live is not self._loaded:
                live.close()

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

    def _doc_extras(self, loaded: Snapshot) -> dict[str, dict[str, Any]]:
        """Per-document metadata (page offsets, URL) of the live index, read once per index."""
        if self._extras is None or self._extras[0] != loaded.folder:
            docs = loaded.documents()
            self._extras = (loaded.folder, {s: d.extra for s, d in docs.items() if d.extra})
        return self._extras[1]

    def candidates(
        self,
        q: str,
        q_tokens: Sequence[str],
        mode: Mode,
        n: int,
        extra: Mapping[str, float] | None = None,
        dense_text: str | None = None,
    ) -> tuple[search.Ranked, search.Ranked, dict[int, ChunkRow], dict[int, Any]]:
        """Dense and lexical candidates before fusion, with their rows and sentence cosines.

        The dense side is re-ranked with sentence vectors (:func:`search.rescore_dense`)
        over every candidate either retriever found. The question is embedded in
        every mode: confidence reads the sentence cosines even in lexical mode.
        The raw dense chunk cosines are kept in ``self._dense_background``.
        ``extra`` adds weighted terms to the lexical query (:meth:`crosslingual`);
        ``dense_text`` is embedded instead of ``q`` (the question with its Japanese
        rendering appended).
        """
        loaded = self.loaded()
        embedder = self._embedder_for(loaded)
        qvec = embedder.embed_query(dense_text or q)
        dense = search.dense_candidates(loaded, qvec, n)
        self._dense_background = dense
        self.last_signals = []
        lexical = (
            search.lexical_candidates(loaded, [*q_tokens, *(extra or ())], n, extra)
            if mode != "dense"
            else []
        )
        if mode == "lexical":
            dense = []
        # One fetch for every candidate: their sentence vectors re-rank the dense side.
        rows = loaded.chunks(list(dict.fromkeys(c for c, _ in dense + lexical)))
        sent_sims: dict[int, Any] = {}
        for cid, vecs in loaded.sentence_vectors(rows.values()).items():
            sent_sims[cid] = vecs @ qvec
        if mode != "lexical":
            dense = search.rescore_dense(dense, list(rows), sent_sims)
        return dense, lexical, rows, sent_sims

    def _candidates_in(
        self,
        q: str,
        q_tokens: Sequence[str],
        mode: Mode,
        n: int,
        sources: Sequence[str] | None,
        extra: Mapping[str, float] | None = None,
        dense_text: str | None = None,
    ) -> tuple[search.Ranked, search.Ranked, dict[int, ChunkRow], dict[int, Any]]:
        """:meth:`candidates`, keeping only chunks of articles matching ``sources``.

        Filtering happens before fusion, so scores are scaled over the kept
        candidates only; the retrievers are asked for more candidates (in
        proportion to how much of the index the globs cover) until ``n`` survive
        or the whole index has been seen.
        """
        if not sources:
            return self.candidates(q, q_tokens, mode, n, extra, dense_text)
        corpus = self.settings.corpus
        from bunko import shelfops

        patterns = [shelfops.check_pattern(p, corpus) for p in sources]
        loaded = self.loaded()
        docs = loaded.documents()
        allowed = {s for s in docs if shelfops.matches(s, patterns)}
        if not allowed:
            raise SourceError(
                f"no indexed article matches {', '.join(map(repr, sources))}; "
                "globs are relative to the corpus folder, e.g. '2024/*'"
            )
        share = sum(docs[s].n_chunks for s in allowed) / max(1, loaded.n_chunks)
        fetch = min(loaded.n_chunks, max(n, int(n / max(share, 1e-9) * 2)))
        while True:
            dense, lexical, rows, sims = self.candidates(
                q, q_tokens, mode, fetch, extra, dense_text
            )
            keep = {c for c, row in rows.items() if row.source in allowed}
            dense = [h for h in dense if h[0] in keep]
            lexical = [h for h in lexical if h[0] in keep]
            enough = len(dense) >= n or (mode == "lexical" and len(lexical) >= n)
            if enough or fetch >= loaded.n_chunks:
                break
            fetch = min(loaded.n_chunks, fetch * 4)
        rows = {c: r for c, r in rows.items() if c in keep}
        sims = {c: v for c, v in sims.items() if c in keep}
        return dense[:n], lexical[:n], rows, sims

    def _embedder_for(self, loaded: Snapshot) -> Embedder:
        from bunko.embedding import get_embedder, recorded_engine

        want = self._requested_model()
        if want is not None and want != loaded.model:
            raise ModelMismatchError(
                f"the index in {self.settings.index} was built with model {loaded.model}, "
                f"but you asked for {want}. Ask for no model (unset BUNKO_MODEL) to "
                f"use {loaded.model}, or rebuild the index with {want}"
            ).with_cli_hint(
                f"query without --model, or rebuild: `bunko index --rebuild --model {want}`"
            )
        engine = recorded_engine(loaded.meta)
        want_engine = self.settings.engine
        if engine is not None and want_engine is not None and want_engine != engine:
            raise ModelMismatchError(
                f"the index in {self.settings.index} was built with the {engine} engine, "
                f"but you asked for {want_engine}. Ask for no engine (unset BUNKO_ENGINE) "
                f"to use {engine}, or rebuild the index with {want_engine}"
            ).with_cli_hint(
                f"query without --engine, or rebuild: `bunko index --engine {want_engine}`"
            )
        embedder = get_embedder(loaded.model, engine)
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
        """Char span (in the source file) of the sentence that best answers the question
        (see :mod:`bunko.retrieval.highlight`)."""
        from bunko.retrieval import highlight

        spans = row.sentences or ((row.char_start, row.char_end),)
        texts = [row.text[s - row.char_start : e - row.char_start] for s, e in spans]
        if sims is not None and len(sims) != len(texts):
            sims = None
        first, last = highlight.choose(
            question, q_tokens, texts, self.tokenizer.tokens_many(texts), spans, idf, sims,
            highlight.is_cross(question, row.text), self.tokenizer,
        )  # fmt: skip
        return spans[first][0], spans[last][1]

    # -- add, status, eval ---------------------------------------------------

    def add(self, files: Sequence[str | Path], force: bool = False) -> AddReport:
        """Copy articles (files, or folders recursively) into the corpus, then update the index.

        Each file is first read the way indexing reads it; a named file that could
        not be indexed refuses the whole add, and nothing is copied. A named file
        lands as a plain name at the top of the corpus; a folder keeps its name and
        sub-folders under the corpus, and its unreadable files are skipped with the
        reason (see :mod:`bunko.shelfops`). Nothing is ever written outside the corpus.

        Raises:
            AddError: a file is missing, not a supported kind, cannot be indexed,
                or would overwrite a different article of the same name without
                ``force``.
        """
        corpus = self.settings.corpus
        if not corpus.is_dir():
            raise CorpusError(
                f"the corpus folder {corpus} does not exist; create it first"
            ).with_cli_hint(self._where_hint())
        from bunko import shelfops

        plan = shelfops.plan_add(files, corpus, force=force)
        shelfops.copy_into(plan, corpus)
        report = self.index()
        copied = tuple(rel for _, rel in plan.copy)
        return AddReport(copied, plan.identical, report, plan.skipped)

    def remove(self, sources: Sequence[str]) -> RemoveReport:
        """Delete articles from the corpus, then update the index.

        Args:
            sources: corpus-relative names or globs (``2024/*``); a plain folder
                name selects everything under it.

        Raises:
            SourceError: a name points outside the corpus or matches nothing, or
                every article would go. Nothing is deleted then.
        """
        corpus = self.settings.corpus
        from bunko import shelfops

        plan = shelfops.plan_remove(sources, corpus)
        removed = shelfops.delete(plan, corpus)
        return RemoveReport(tuple(removed), self.index())

    def show(self, target: str) -> ShowResult:
        """An article's text with citation line numbers: ``SOURCE`` or ``SOURCE:START[-END]``.

        Raises:
            SourceError: no such article, or the name points outside the corpus.
            SkipFile: the article cannot be read.
        """
        from bunko import shelfops

        return shelfops.show(target, self.settings.corpus)

    def _where_hint(self) -> str:
        return f"{self.settings.found}; pass --corpus DIR, set BUNKO_HOME, or run inside a shelf"

    def status(self) -> StatusReport:
        """What the index holds, and which corpus files it has not caught up with."""
        from bunko.corpus.changes import CorpusChanges, corpus_changes
        from bunko.embedding import recorded_engine

        loaded = self.loaded() if self.store.current() is not None else None
        indexed = loaded.documents() if loaded is not None else {}
        skipped: list[SkippedFile] = []
        changes = CorpusChanges((), (), tuple(sorted(indexed)))
        if self.settings.corpus.is_dir():
            changes = corpus_changes(
                self.settings.corpus, indexed, lambda p: self._indexable(p, skipped)
            )
        new, changed, removed = changes.new, changes.changed, changes.removed
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
            skipped=tuple(skipped),
            engine=recorded_engine(meta) if loaded is not None else None,
        )

    def _indexable(self, path: Path, skipped: list[SkippedFile]) -> bool:
        """Whether indexing would take ``path``; if not, record why in ``skipped``."""
        from bunko import shelfops
        from bunko.errors import SkipFile

        try:
            shelfops.check_file(path, self.settings.corpus)
        except SkipFile as skip:
            skipped.append(SkippedFile(skip.path, skip.reason))
            return False
        return True

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


def _nfkc(s: str) -> str:
    return unicodedata.normalize("NFKC", s)


def _check_question(question: str, k: int, mode: str) -> str:
    if not isinstance(question, str) or not question.strip():
        raise UsageError(
            'the question is empty; ask something, e.g. bunko query "GPT-4.5の料金は？"'
        )
    if k < 1:
        raise UsageError(f"k (the number of passages) must be at least 1 (got {k})")
    if mode not in MODES:
        raise UsageError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    # Lone surrogates (from command-line bytes that are not UTF-8) cannot reach the
    # tokenizer, the model or stdout; they become U+FFFD like any undecodable byte.
    return _SURROGATES.sub("\ufffd", question.strip())


def _where(
    extra: dict[str, Any], row: ChunkRow, hl_start: int, hl_end: int
) -> tuple[tuple[int, int] | None, str | None, str | None]:
    """A passage's pages (PDF), canonical URL and text-fragment link (web page)."""
    if not extra:
        return None, None, None
    from bunko.readers import page_range, text_fragment

    pages = extra.get("pages")
    page = page_range(pages, row.char_start, row.char_end) if isinstance(pages, list) else None
    url = extra.get("url") if isinstance(extra.get("url"), str) else None
    highlight = row.text[hl_start - row.char_start : hl_end - row.char_start]
    return page, url, text_fragment(url, highlight) if url else None


def _explain(hit: search.Hit, mode: Mode) -> Explain:
    if mode == "hybrid":
        w = hit.lexical_weight
        fused = (
            f"{1 - w:.3f}·dense + {w:.3f}·lexical, each as z-scores over the candidates; "
            "dense = mean of chunk and best-sentence cosine; "
            f"w = {search.LEXICAL_WEIGHT}·coverage^{search.COVERAGE_POWER:g}"
            "·distinctness of the best BM25 score"
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


def index(
    settings: Settings | None = None, rebuild: bool = False, optimize: bool = False
) -> IndexReport:
    """Build or update the index for ``settings`` (see :meth:`Shelf.index`)."""
    return Shelf(settings).index(rebuild=rebuild, optimize=optimize)


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
