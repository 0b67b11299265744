"""The one query pipeline: a :class:`QueryRequest` in, a :class:`~bunko.types.QueryResult` out.

Every front end (the CLI, the HTTP API, the MCP server, ``ask``, the web page)
builds a :class:`QueryRequest`, so a question is checked once, against the limits
defined here, and travels down one path:

    request -> question tokens (+ translations) -> one query vector
            -> dense + lexical candidates (source globs filtered before fusion)
            -> fusion -> places to passages (confidence, highlight, citation) -> result

:class:`Retriever` holds what a query reads (the snapshot, the embedder, the
tokenizer) and nothing a query computes: each call returns everything it found,
the confidence signals included, in its frozen result.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bunko import search
from bunko.errors import ModelMismatchError, SourceNotFoundError, UsageError
from bunko.types import MODES, Citation, Explain, Mode, Passage, QueryResult

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from bunko.embedding import Embedder
    from bunko.index.format import ChunkRow
    from bunko.index.snapshot import Snapshot
    from bunko.retrieval.crossling import Rendering
    from bunko.text import Tokenizer

# -- the limits of a request (every front end shares these) ------------------------------

MAX_K = 50  # passages per query
MAX_QUESTION_CHARS = 4000  # a cheap bound before tokenising; the real cap is in tokens
MAX_SOURCES = 20  # globs per query
MAX_SOURCE_CHARS = 1000  # characters per glob
EMPTY_QUESTION = 'the question is empty; ask something, e.g. bunko query "GPT-4.5の料金は？"'
_SURROGATES = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class QueryRequest:
    """One question and how to answer it, checked once when it is made.

    Args:
        question: the question (any language); surrounding space is dropped and lone
            surrogates (command-line bytes that are not UTF-8) become U+FFFD.
        k: passages wanted, 1..:data:`MAX_K`.
        mode: ``hybrid``, ``dense`` or ``lexical``.
        sources: corpus-relative globs (``2024/*``); only matching articles answer.
            Filtering happens before fusion.
        min_confidence: the confidence the top passage needs for ``answerable``
            (None: the benchmarked default).
        explain: add dense/lexical ranks and the fusion to each passage.
        update: index corpus changes before answering (else answer from the index as is).

    Raises:
        UsageError: an empty or over-long question, k out of range, an unknown mode,
            a bad glob or min_confidence. The question's length in model tokens is
            checked when it is embedded (:func:`check_question_tokens`).
    """

    question: str
    k: int = 5
    mode: Mode = "hybrid"
    sources: tuple[str, ...] = ()
    min_confidence: float | None = None
    explain: bool = False
    update: bool = True

    def __post_init__(self) -> None:
        q = self.question
        if not isinstance(q, str) or not q.strip():
            raise UsageError(EMPTY_QUESTION)
        if len(q) > MAX_QUESTION_CHARS:
            raise UsageError(
                f"the question is {len(q):,} characters long; ask in at most "
                f"{MAX_QUESTION_CHARS:,} (the model reads one window of 512 tokens)"
            )
        object.__setattr__(self, "question", _SURROGATES.sub("\ufffd", q.strip()))
        check_k_and_mode(self.k, self.mode)
        sources = (self.sources,) if isinstance(self.sources, str) else tuple(self.sources or ())
        if len(sources) > MAX_SOURCES:
            raise UsageError(f"at most {MAX_SOURCES} source globs (got {len(sources)})")
        for s in sources:
            if not isinstance(s, str) or not s.strip() or len(s) > MAX_SOURCE_CHARS:
                raise UsageError(
                    "a source must be a corpus path or glob such as '2024/*' "
                    f"(at most {MAX_SOURCE_CHARS} characters)"
                )
        object.__setattr__(self, "sources", sources)
        c = self.min_confidence
        if c is not None and (
            isinstance(c, bool) or not isinstance(c, (int, float)) or not 0.0 <= c <= 1.0
        ):
            raise UsageError(f"min_confidence must be between 0 and 1 (got {c})")


def check_k_and_mode(k: object, mode: object) -> None:
    """The limits on ``k`` and ``mode`` (``QueryRequest`` and ``bunko eval`` share them).

    Raises:
        UsageError: k is not an integer in 1..MAX_K, or the mode is unknown.
    """
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise UsageError(f"k (the number of passages) must be between 1 and {MAX_K} (got {k})")
    if mode not in MODES:
        raise UsageError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")


# Embedders count tokens with the passage prompt; the query prompt may be a token or
# two longer ("query: " is one more than "passage: " for e5), so the cap leaves room.
QUERY_PROMPT_ROOM = 4


def check_question_tokens(question: str, embedder: Embedder) -> None:
    """Refuse a question longer than the model's window: it is never cut silently,
    and never embedded window by window ('の' x 2,000 is 2,005 tokens: at least four windows,
    which took 40 times as long as a short question).

    Raises:
        UsageError: the question is over ``embedder.max_tokens - QUERY_PROMPT_ROOM`` tokens.
    """
    n = embedder.count_tokens(question)
    limit = embedder.max_tokens - QUERY_PROMPT_ROOM
    if n > limit:
        raise UsageError(
            f"the question is {n} tokens long; the model reads at most {limit}. "
            "Ask a shorter question"
        )


def embedder_for(
    loaded: Snapshot, index_dir: Path, model: str | None, engine: str | None
) -> Embedder:
    """The embedder that built ``loaded``, refusing another one a user asked for.

    Raises:
        ModelMismatchError: ``model``/``engine`` differ from the index's, or the model
            changed since the index was built.
    """
    from bunko.embedding import canonical_name, get_embedder, recorded_engine

    want = canonical_name(model) if model else None
    if want is not None and want != loaded.model:
        raise ModelMismatchError(
            f"the index in {index_dir} was built with model {loaded.model}, "
            f"but you asked for {want}. Ask for no model (unset BUNKO_MODEL) to "
            f"use {loaded.model}, or rebuild the index with {want}"
        ).with_cli_hint(
            f"query without --model, or rebuild: `bunko index --rebuild --model {want}`"
        )
    recorded = recorded_engine(loaded.meta)
    if recorded is not None and engine is not None and engine != recorded:
        raise ModelMismatchError(
            f"the index in {index_dir} was built with the {recorded} engine, "
            f"but you asked for {engine}. Ask for no engine (unset BUNKO_ENGINE) "
            f"to use {recorded}, or rebuild the index with {engine}"
        ).with_cli_hint(f"query without --engine, or rebuild: `bunko index --engine {engine}`")
    embedder = get_embedder(loaded.model, recorded)
    if embedder.fingerprint != loaded.meta["fingerprint"]:
        raise ModelMismatchError(
            f"model {loaded.model} has changed since the index was built "
            f"({loaded.meta['fingerprint']} then, {embedder.fingerprint} now); "
            "run `bunko index --rebuild`"
        )
    return embedder


@dataclass(frozen=True)
class Candidates:
    """What the retrievers found for a question, before fusion."""

    dense: search.Ranked  # re-scored with sentence vectors (empty in lexical mode)
    lexical: search.Ranked  # BM25 (empty in dense mode)
    rows: dict[int, ChunkRow]
    sentence_sims: dict[int, Any]  # chunk id -> cosine of each sentence to the question
    background: search.Ranked  # raw dense chunk cosines: the question's background


@dataclass(frozen=True)
class Retriever:
    """The query pipeline over one index snapshot.

    Holds only what every query reads; build one per snapshot (``Shelf`` caches it).
    """

    snapshot: Snapshot
    embedder: Embedder
    tokenizer: Tokenizer
    corpus: Path  # source globs are resolved against it
    _extras: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        # Per-document metadata (PDF page offsets, URL), read once per snapshot.
        docs = self.snapshot.documents()
        self._extras.update({s: d.extra for s, d in docs.items() if d.extra})

    # -- steps, public for benchmarks that replay part of a query ---------------------

    def query_tokens(self, q: str) -> list[str]:
        """The question's tokens, plus the corpus's spelling of words it writes with a
        look-alike letter for a digit ("o1" where the articles say "01")."""
        tokens = self.tokenizer.tokens(q)
        variants = self.tokenizer.tokens_many(search.digit_spellings(q))
        extra = [t for v in variants for t in v if t not in tokens]
        if extra:
            known = self.snapshot.idf(extra)
            tokens += [t for t in dict.fromkeys(extra) if t in known]
        return tokens

    def crosslingual(self, q: str, q_tokens: Sequence[str]) -> Rendering | None:
        """The Japanese rendering of a question without Japanese script
        (:func:`bunko.retrieval.crossling.render`: JMdict words, JMnedict names, phrase
        glosses, dates); None for a Japanese question, which never opens the
        dictionary, and for one whose words the corpus all knows."""
        from bunko.retrieval import crossling, expansion

        if expansion.is_japanese(q):
            return None
        known = self.snapshot.idf(q_tokens)
        if all(t in known for t in q_tokens):
            return None
        return crossling.render(q, q_tokens, self.snapshot.idf, self.tokenizer.tokens)

    def expansion(self, q: str, q_tokens: Sequence[str]) -> dict[str, float]:
        """Extra lexical terms for the question, ``{term: BM25 weight}``: the terms of
        :meth:`crosslingual`'s rendering; empty for a Japanese question."""
        rendering = self.crosslingual(q, q_tokens)
        return dict(rendering.terms) if rendering is not None else {}

    def embed_rendered(self, q: str, rendering: Rendering | None) -> npt.NDArray[np.float32]:
        """The vector of the question with its Japanese rendering appended (one window;
        the question alone when the two would not fit in it).

        Raises:
            UsageError: the question itself is longer than the model's window.
        """
        from bunko.retrieval.crossling import dense_text

        text = dense_text(q, rendering) or q
        try:
            # The question is the start of the text, so when the text fits, so does the
            # question: one count (tokenising English costs about 0.15 ms) instead of two.
            check_question_tokens(text, self.embedder)
        except UsageError:
            if text == q:
                raise
            check_question_tokens(q, self.embedder)
            text = q
        return self.embedder.embed_query(text)

    def embed(self, q: str) -> npt.NDArray[np.float32]:
        """The question's vector: one window of the model, never more.

        Raises:
            UsageError: the question is longer than the model's window.
        """
        check_question_tokens(q, self.embedder)
        return self.embedder.embed_query(q)

    def candidates(
        self,
        qvec: npt.NDArray[np.float32],
        q_tokens: Sequence[str],
        mode: Mode,
        n: int,
        extra: Mapping[str, float] | None = None,
    ) -> Candidates:
        """Dense and lexical candidates before fusion, with their rows and sentence cosines.

        The dense side is re-ranked with sentence vectors (:func:`search.rescore_dense`)
        over every candidate either retriever found. The question is embedded in
        every mode: confidence reads the sentence cosines even in lexical mode.
        ``extra`` adds weighted terms to the lexical query (:meth:`expansion`).
        """
        loaded = self.snapshot
        dense = search.dense_candidates(loaded, qvec, n)
        background = dense
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
        return Candidates(dense, lexical, rows, sent_sims, background)

    def candidates_in(
        self,
        qvec: npt.NDArray[np.float32],
        q_tokens: Sequence[str],
        mode: Mode,
        n: int,
        sources: Sequence[str],
        extra: Mapping[str, float] | None = None,
    ) -> Candidates:
        """:meth:`candidates`, keeping only chunks of articles matching ``sources``.

        Filtering happens before fusion, so scores are scaled over the kept
        candidates only; the retrievers are asked for more candidates (in
        proportion to how much of the index the globs cover) until ``n`` survive
        or the whole index has been seen.

        Raises:
            SourceError: a glob points outside the corpus.
            SourceNotFoundError: no indexed article matches the globs.
        """
        if not sources:
            return self.candidates(qvec, q_tokens, mode, n, extra)
        from bunko import shelfops

        patterns = [shelfops.check_pattern(p, self.corpus) for p in sources]
        loaded = self.snapshot
        docs = loaded.documents()
        allowed = {s for s in docs if shelfops.matches(s, patterns)}
        if not allowed:
            raise SourceNotFoundError(
                f"no indexed article matches {', '.join(map(repr, sources))}; "
                "globs are relative to the corpus folder, e.g. '2024/*'"
            )
        share = sum(docs[s].n_chunks for s in allowed) / max(1, loaded.n_chunks)
        fetch = min(loaded.n_chunks, max(n, int(n / max(share, 1e-9) * 2)))
        while True:
            found = self.candidates(qvec, q_tokens, mode, fetch, extra)
            keep = {c for c, row in found.rows.items() if row.source in allowed}
            dense = [h for h in found.dense if h[0] in keep]
            lexical = [h for h in found.lexical if h[0] in keep]
            enough = len(dense) >= n or (mode == "lexical" and len(lexical) >= n)
            if enough or fetch >= loaded.n_chunks:
                break
            fetch = min(loaded.n_chunks, fetch * 4)
        rows = {c: r for c, r in found.rows.items() if c in keep}
        sims = {c: v for c, v in found.sentence_sims.items() if c in keep}
        return Candidates(dense[:n], lexical[:n], rows, sims, found.background)

    def fuse(self, found: Candidates, q_tokens: Sequence[str], extra: Mapping[str, float],
             mode: Mode) -> list[search.Hit]:  # fmt: skip
        """Every candidate, best first, in one ranked list."""
        if mode == "hybrid":
            weight = search.lexical_weight(self.snapshot.coverage([*q_tokens, *extra]))
            weight *= search.lexical_distinctness(found.lexical)
            return search.fuse(found.dense, found.lexical, weight, len(found.rows))
        return search.single(found.dense if mode == "dense" else found.lexical,
                             len(found.rows), mode)  # fmt: skip

    def highlight_span(
        self,
        row: ChunkRow,
        question: str,
        q_tokens: Sequence[str],
        idf: dict[str, float],
        sims: npt.NDArray[np.float32] | None,
        title_tokens: Collection[str] = (),
    ) -> tuple[int, int]:
        """Char span (in the source file) of the sentence that best answers the question
        (see :mod:`bunko.retrieval.highlight`); ``title_tokens``: the tokens of the
        passage's title."""
        from bunko.retrieval import highlight

        spans = row.sentence_spans()
        texts = [row.text[s - row.char_start : e - row.char_start] for s, e in spans]
        if sims is not None and len(sims) != len(texts):
            sims = None
        # Stored with the row at indexing; an older index has none, so they are made here.
        sent_tokens = row.sentence_tokens()
        if sent_tokens is None:
            sent_tokens = self.tokenizer.tokens_many(texts)
        first, last = highlight.choose(
            question, q_tokens, texts, sent_tokens, spans, idf, sims,
            highlight.is_cross(question, row.text), self.tokenizer, title_tokens,
        )  # fmt: skip
        return spans[first][0], spans[last][1]

    # -- the whole query ---------------------------------------------------------------

    def answer(self, request: QueryRequest) -> QueryResult:
        """Run ``request`` over this snapshot (no index update here: see ``Shelf.query``).

        Raises:
            UsageError: the question is longer than the model's window.
            SourceError: a source glob points outside the corpus.
            SourceNotFoundError: no indexed article matches the source globs.
        """
        from bunko.retrieval import confidence as conf

        q, mode, k = request.question, request.mode, request.k
        threshold = (
            conf.DEFAULT_MIN_CONFIDENCE if request.min_confidence is None
            else float(request.min_confidence)
        )  # fmt: skip
        q_tokens = self.query_tokens(q)
        # An English question over Japanese articles gets Japanese terms (words, names,
        # phrases, dates) for the lexical side, and the dense side embeds the question
        # with its Japanese rendering appended (still one embedding). Confidence and
        # highlight read q_tokens (retrieval/crossling.py).
        rendering = self.crosslingual(q, q_tokens)
        qvec = self.embed_rendered(q, rendering)
        extra = dict(rendering.terms) if rendering is not None and mode != "dense" else {}
        n = max(search.CANDIDATES, k)
        found = self.candidates_in(qvec, q_tokens, mode, n, request.sources, extra)
        # An English word that found a Japanese form counts as known in the lexical weight.
        asked = [t for t in q_tokens if rendering is None or t not in rendering.translated]
        fused = self.fuse(found, asked, extra, mode)
        passages = _places_to_passages(
            self, fused, found, q, q_tokens, k, mode, rendering, explain=request.explain
        )
        return QueryResult(
            query=q,
            mode=mode,
            model=self.snapshot.model,
            passages=passages,
            # Recomputed on what is left after the source filter: nothing left, no answer.
            answerable=bool(passages) and passages[0].confidence >= threshold,
            min_confidence=threshold,
        )


# -- the answer stage: fused hits -> cited passages --------------------------------------


def _places_to_passages(
    retriever: Retriever,
    fused: Sequence[search.Hit],
    found: Candidates,
    question: str,
    q_tokens: Sequence[str],
    k: int,
    mode: Mode,
    rendering: Rendering | None = None,
    *,
    explain: bool = False,
) -> tuple[Passage, ...]:
    """The answer stage (:mod:`bunko.retrieval.answer_stage`): places from a pool of fused
    hits fixed before ``k``, ordered by the probability that they answer the question,
    then cut to ``k``; highlights and citations only for the ``k`` shown."""
    from bunko.retrieval import answer_stage
    from bunko.retrieval import confidence as conf

    loaded, rows, sent_sims = retriever.snapshot, found.rows, found.sentence_sims
    pool = list(fused[: max(search.CANDIDATES, k)])
    idf = loaded.idf(q_tokens)
    unseen = math.log1p((loaded.n_chunks + 0.5) / 0.5)
    background = conf.median([s for _, s in found.background])
    places = answer_stage.rank_places(
        question, q_tokens, pool, rows, sent_sims, idf, unseen, background, rendering,
        retriever.tokenizer.tokens,
    )[:k]  # fmt: skip
    # The highlight of an English question over Japanese text reads its rendering's
    # Japanese terms too: the words it can match in a Japanese sentence.
    hl_tokens, hl_idf = q_tokens, idf
    if rendering is not None and rendering.terms:
        asked_tokens = set(q_tokens)
        hl_tokens = [*q_tokens, *(t for t in rendering.terms if t not in asked_tokens)]
        hl_idf = loaded.idf(hl_tokens)
    passages = []
    for rank, place in enumerate(places, 1):
        row, hit = place.row, place.hit
        hl_start, hl_end = retriever.highlight_span(
            row, question, hl_tokens, hl_idf, place.sims, place.title_tokens
        )
        page, url, link = _where(retriever._extras.get(row.source, {}), row, hl_start, hl_end)
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
                explain=_explain(hit, mode, place.features, place.question) if explain else None,
                confidence=round(place.confidence, 4),
                signals=place.signals,
            )
        )
    return tuple(passages)


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


def _explain(
    hit: search.Hit, mode: Mode, signals: Mapping[str, float],
    question: Mapping[str, float] | None,
) -> Explain:  # fmt: skip
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
        signals={name: round(v, 6) for name, v in signals.items()},
        question={name: round(v, 6) for name, v in (question or {}).items()},
    )
