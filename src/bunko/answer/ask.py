"""Ask: retrieve, then generate (or extract) an answer whose citations are checked."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bunko.answer.citations import CheckedAnswer, MarkerStream, QuoteCheck, check_answer
from bunko.answer.llm import LLMConfig, LLMError, chat
from bunko.answer.prompt import build_messages, no_answer_text
from bunko.types import Mode, Passage, QueryResult

if TYPE_CHECKING:
    from bunko.api import Shelf

EXTRACTIVE_PASSAGES = 3


@dataclass(frozen=True)
class AskCitation:
    """A kept ``[n]`` of the answer and the passage it resolves to."""

    n: int
    passage: Passage


@dataclass(frozen=True)
class AskResult:
    question: str
    answer: str
    answerable: bool | None  # None until the index can tell (the trust contract)
    citations: tuple[AskCitation, ...]
    dropped: tuple[str, ...]
    quotes: tuple[QuoteCheck, ...]
    model: str  # the embedding model of the index
    llm: LLMConfig | None  # None: extractive answer, or no model was called
    generated: bool
    # Why the model's answer was replaced by the extractive one (unreachable, timed out,
    # refused); None when the model answered or none was configured.
    llm_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The stable ``bunko ask --json`` object (documented in the README)."""
        out: dict[str, Any] = {"question": self.question, "answer": self.answer}
        if self.answerable is not None:
            out["answerable"] = self.answerable
        out["citations"] = [
            {
                "n": c.n,
                "source": c.passage.citation.source,
                "title": c.passage.citation.title,
                "lines": [c.passage.citation.line_start, c.passage.citation.line_end],
                "chars": [c.passage.citation.char_start, c.passage.citation.char_end],
                "citation": _render(c),
            }
            for c in self.citations
        ]
        out["dropped"] = list(self.dropped)
        out["unverified_quotes"] = [q.text for q in self.quotes if not q.verified]
        out["model"] = self.model
        out["llm"] = (
            {"url": self.llm.url, "model": self.llm.model}
            if self.llm is not None and self.generated
            else None
        )
        out["llm_error"] = self.llm_error
        return out


def _render(c: AskCitation) -> str:
    cit = c.passage.citation
    head = f" › {cit.heading}" if cit.heading else ""
    return f"[{c.n}] {cit.title}{head} — {cit.source}:{cit.line_start}-{cit.line_end}"


def answerable_of(result: QueryResult) -> bool | None:
    """The trust contract's verdict, read defensively until it lands everywhere."""
    value = getattr(result, "answerable", None)
    return None if value is None else bool(value)


def ask(
    shelf: Shelf,
    question: str,
    k: int = 5,
    mode: Mode = "hybrid",
    llm: LLMConfig | None = None,
    on_delta: Callable[[str], None] | None = None,
) -> AskResult:
    """Answer ``question`` from the shelf.

    With ``llm`` set, the model writes the answer from the passages, numbered as
    ``bunko query`` shows them, and its citations are checked afterwards. Without one,
    the answer is the best highlights with their citations. When the index says the
    corpus has no answer, no model is called.

    Args:
        on_delta: called with each streamed piece of a generated answer, its markers
            already normalised (unknown ones removed).

    Raises:
        UsageError: bad question, k or mode.

    A model that cannot be reached, times out or refuses does not fail the call: the
    answer is then the extractive one, and ``llm_error`` says why.
    """
    result = shelf.query(question, k=k, mode=mode)
    return answer_from(result, llm, on_delta)


def answer_from(
    result: QueryResult,
    llm: LLMConfig | None,
    on_delta: Callable[[str], None] | None = None,
) -> AskResult:
    """The answer step of :func:`ask`, for a query already run (the HTTP server uses it)."""
    answerable = answerable_of(result)
    passages = list(result.passages)

    def made(
        answer: str,
        citations: tuple[AskCitation, ...] = (),
        checked: CheckedAnswer | None = None,
        generated: bool = False,
        llm_error: str | None = None,
    ) -> AskResult:
        return AskResult(
            question=result.query,
            answer=answer,
            answerable=answerable,
            citations=citations,
            dropped=checked.dropped if checked else (),
            quotes=checked.quotes if checked else (),
            model=result.model,
            llm=llm,
            generated=generated,
            llm_error=llm_error,
        )

    if answerable is False or not passages:
        return made(no_answer_text(result.query))

    def extractive(llm_error: str | None = None) -> AskResult:
        top = passages[:EXTRACTIVE_PASSAGES]
        lines = [f"{' '.join(p.highlight.split())} [{n}]" for n, p in enumerate(top, 1)]
        cited = tuple(AskCitation(n, p) for n, p in enumerate(top, 1))
        return made("\n".join(lines), cited, llm_error=llm_error)

    if llm is None:
        return extractive()
    stream = MarkerStream(len(passages))

    def relay(piece: str) -> None:
        if on_delta is not None:
            shown = stream.feed(piece)
            if shown:
                on_delta(shown)

    try:
        raw = chat(llm, build_messages(result.query, passages), relay if on_delta else None)
    except LLMError as exc:
        # The passages are here: a model that is down or slow costs the prose, not the answer.
        return extractive(str(exc))
    if on_delta is not None:
        tail = stream.flush()
        if tail:
            on_delta(tail)
    checked = check_answer(raw, [p.text for p in passages])
    cited = tuple(AskCitation(n, passages[n - 1]) for n in checked.cited)
    return made(checked.answer, cited, checked, generated=True)
