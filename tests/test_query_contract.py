"""One query contract everywhere: the CLI, `GET /api/query`, MCP `search` and `ask` take
the same request (question, k, mode, source globs, limits) and give the same answer.

The shelf: the mini corpus (Markdown with headings, plain text) plus a two-page PDF
report in a sub-folder, so citations carry headings and PDF pages.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from typer.testing import CliRunner

import format_files as ff
from bunko.api import Shelf
from bunko.cli import app
from bunko.config import Settings
from bunko.errors import SourceNotFoundError, UsageError
from bunko.retrieval.query import QUERY_PROMPT_ROOM, QueryRequest, Retriever
from serve_helpers import get_json, running

runner = CliRunner()
PDF_Q = "玉露の平均卸売価格はいくらですか？"
MD_Q = "At what temperature does the first crack happen?"
# (question, source globs): no filter, a glob per file kind, and a glob whose only
# article does not answer the question.
CASES = [
    (MD_Q, ()),
    ("富士山の標高は何メートルですか？", ("*.md",)),
    (PDF_Q, ("reports/*",)),
    (PDF_Q, ("sushi.txt",)),
    (MD_Q, ("*.md", "reports/*")),
]
TOO_LONG = "の" * 2000  # 2,000 characters, over the model's 512-token window


@pytest.fixture(scope="module")
def shelf_dir(_built_mini: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("contract")
    shutil.copytree(_built_mini / "corpus", root / "corpus")
    shutil.copytree(_built_mini / "index", root / "index")
    (root / "corpus" / "reports").mkdir()
    ff.make_report_pdf(root / "corpus" / "reports" / "report.pdf")
    settings = Settings.resolve(corpus=root / "corpus", index=root / "index")
    Shelf(settings).index()
    return settings


@pytest.fixture(scope="module")
def port(shelf_dir: Settings) -> Iterator[int]:
    with running(shelf_dir) as p:
        yield p


def _where(s: Settings) -> list[str]:
    return ["--corpus", str(s.corpus), "--index", str(s.index)]


def _cli(s: Settings, *args: str) -> Any:
    return runner.invoke(app, [*args, *_where(s)])


def _http(port: int, question: str, globs: tuple[str, ...], **extra: Any) -> tuple[int, Any]:
    params = [("q", question), *(("source", g) for g in globs), *extra.items()]
    return get_json(port, "/api/query?" + urllib.parse.urlencode(params))


def _mcp(s: Settings, calls: list[dict[str, Any]]) -> list[Any]:
    """Each call's result from one `bunko mcp` session over stdio."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUNKO_") or k == "BUNKO_CACHE"}
    server = StdioServerParameters(
        command=sys.executable, args=["-m", "bunko", "mcp", *_where(s)], env=env
    )

    async def go() -> list[Any]:
        async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            return [await session.call_tool("search", c) for c in calls]

    return anyio.run(go)


def _places(results: list[dict[str, Any]]) -> list[tuple[str, list[int]]]:
    return [(r["source"], r["lines"]) for r in results]


def test_cli_http_and_mcp_give_the_same_answer(shelf_dir: Settings, port: int) -> None:
    mcp = _mcp(shelf_dir, [{"question": q, "k": 3, "source": list(g)} for q, g in CASES])
    seen_unanswerable = False
    for (question, globs), tool in zip(CASES, mcp, strict=True):
        args = [a for g in globs for a in ("--source", g)]
        cli = _cli(shelf_dir, "query", question, "-k", "3", "--json", *args)
        assert cli.exit_code == 0, cli.stderr
        want = json.loads(cli.stdout)
        status, http = _http(port, question, globs, k=3)
        assert status == 200, http
        assert http == want  # exactly the CLI's object
        assert not tool.is_error, tool.content
        got = tool.structured_content
        assert got["answerable"] == want["answerable"], (question, globs)
        assert _places(got["results"]) == _places(want["results"]), (question, globs)
        assert [r["citation"] for r in got["results"]] == [r["citation"] for r in want["results"]]
        for r in want["results"]:
            assert any(Path(r["source"]).match(g) for g in globs) or not globs
        seen_unanswerable |= not want["answerable"]
    assert seen_unanswerable  # the glob whose article does not answer says so everywhere


def test_a_glob_that_matches_nothing_is_never_answerable(shelf_dir: Settings, port: int) -> None:
    glob = ("nothing/*",)
    cli = _cli(shelf_dir, "query", MD_Q, "--source", glob[0], "--json")
    assert cli.exit_code == 1 and "no indexed article matches" in cli.stderr
    status, err = _http(port, MD_Q, glob)
    assert status == 404 and "no indexed article matches" in err["error"]
    (tool,) = _mcp(shelf_dir, [{"question": MD_Q, "source": glob[0]}])
    assert tool.is_error and "no indexed article matches" in tool.content[0].text
    with pytest.raises(SourceNotFoundError):
        Shelf(shelf_dir).query(MD_Q, sources=glob)
    # A glob that matches an article in which nothing is found: no passage, no answer.
    result = Shelf(shelf_dir).query("zebra xylophone", mode="lexical", sources=("sushi.txt",))
    assert result.passages == () and result.answerable is False
    status, http = _http(port, "zebra xylophone", ("sushi.txt",), mode="lexical")
    assert status == 200 and http["answerable"] is False and http["results"] == []


def test_limits_and_refusals_are_the_same_everywhere(shelf_dir: Settings, port: int) -> None:
    for params, cli_args in (
        ({"k": 0}, ["-k", "0"]),
        ({"k": 51}, ["-k", "51"]),
        ({"mode": "fuzzy"}, ["--mode", "fuzzy"]),
    ):
        status, err = _http(port, MD_Q, (), **params)
        cli = _cli(shelf_dir, "query", MD_Q, *cli_args)
        assert status == 400 and cli.exit_code == 2
        if "mode" not in params:  # (typer checks --mode's choices itself)
            # The CLI shows the usage line first (exit 2), then the same message.
            assert cli.stderr.strip().splitlines()[-1] == f"Error: {err['error']}"
    status, err = _http(port, TOO_LONG, ())
    cli = _cli(shelf_dir, "query", TOO_LONG)
    (tool,) = _mcp(shelf_dir, [{"question": TOO_LONG}])
    assert status == 400 and "tokens long" in err["error"]
    assert cli.exit_code == 2 and cli.stderr.strip().splitlines()[-1] == f"Error: {err['error']}"
    assert tool.is_error and tool.content[0].text.endswith(": " + err["error"])


@pytest.mark.parametrize(
    ("question", "expect"),
    [
        (MD_Q, "[1] Coffee Roasting Basics › Temperatures — coffee.md:"),
        (PDF_Q, "[1] 日本茶市場報告二〇二五 — reports/report.pdf:"),
    ],
)
def test_ask_renders_citations_as_query_does(
    shelf_dir: Settings, question: str, expect: str
) -> None:
    query = json.loads(_cli(shelf_dir, "query", question, "--json").stdout)
    top = query["results"][0]
    assert expect in top["citation"]
    if question == PDF_Q:
        first, last = top["page"]  # the facts are on page 2
        assert 1 <= first <= 2 == last
        assert top["citation"].endswith(f" p.{last}" if first == last else f" pp.{first}-{last}")
    asked = _cli(shelf_dir, "ask", question, "--json")
    assert asked.exit_code == 0, asked.stderr
    cited = json.loads(asked.stdout)["citations"][0]
    assert cited["n"] == 1
    assert {k: v for k, v in cited.items() if k != "n"} == {
        k: top[k]
        for k in ("source", "title", "heading", "section", "lines", "chars", "page", "url",
                  "link", "citation")
    }  # fmt: skip
    text = _cli(shelf_dir, "ask", question)
    assert top["citation"] in text.stdout.splitlines()


class _CountingEmbedder:
    """The real embedder, counting what is embedded."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.max_tokens = inner.max_tokens
        self.embedded: list[str] = []

    def count_tokens(self, text: str) -> int:
        return int(self.inner.count_tokens(text))

    def embed_query(self, text: str) -> Any:
        self.embedded.append(text)
        return self.inner.embed_query(text)


def test_a_question_is_embedded_in_one_window_or_refused(shelf_dir: Settings) -> None:
    live = Shelf(shelf_dir).retriever()
    counting = _CountingEmbedder(live.embedder)
    retriever = Retriever(live.snapshot, counting, live.tokenizer, live.corpus)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"the question is \d+ tokens long; the model reads"):
        retriever.answer(QueryRequest(TOO_LONG))
    assert counting.embedded == []  # refused before any embedding
    # 2,000 characters that fit the window: one embedding of the whole question.
    fits = ("How hot do roasters heat coffee beans before the first crack? " * 40)[:2000]
    assert counting.count_tokens(fits) <= counting.max_tokens - QUERY_PROMPT_ROOM
    result = retriever.answer(QueryRequest(fits))
    assert counting.embedded == [fits.strip()]
    assert result.passages[0].citation.source == "coffee.md"
    short = retriever.answer(QueryRequest("first crack temperature"))
    assert len(counting.embedded) == 2 and short.passages


def test_openapi_on_loopback_describes_the_shared_models(port: int) -> None:
    status, spec = get_json(port, "/openapi.json")
    assert status == 200
    query = spec["paths"]["/api/query"]["get"]
    assert {p["name"] for p in query["parameters"]} == {"q", "k", "mode", "source"}
    schemas = spec["components"]["schemas"]
    assert {"QueryOut", "QueryHit", "ReadOutput", "AskBody"} <= set(schemas)
    assert {"answerable", "results"} <= set(schemas["QueryOut"]["required"])
    assert "section" in schemas["QueryHit"]["properties"]
