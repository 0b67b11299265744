"""`bunko mcp`: the shelf as an MCP server (official SDK), over stdio or streamable HTTP.

Tools: ``search`` (bounded passages with exact citations), ``read`` (exact lines of a
source, paged), ``status``. Resource template ``bunko://{+source}`` gives a whole
article. Logs go to stderr; the SDK points fd 1 at stderr while serving stdio, so
stray native output cannot corrupt the JSON-RPC stream.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any, Literal

from mcp_types import CallToolResult, TextContent

from bunko.errors import BunkoError, UsageError
from bunko.retrieval.query import QueryRequest
from bunko.serve.reader import read_lines
from bunko.serve.results import MCP_MAX_K, SharedShelf, mcp_results
from bunko.serve.schemas import ReadOutput, SearchOutput, StatusOutput

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from bunko.api import Shelf

log = logging.getLogger("bunko")

INSTRUCTIONS = (
    "bunko searches a local shelf of Japanese and English articles. Call `search` with the "
    "user's question (any language); cite results by their `citation` (file and 1-based "
    "lines). When `answerable` is false, tell the user the shelf has no answer. Call `read` "
    "with a result's `source` and `lines` to see the exact text around it."
)


def build_server(shelf: Shelf) -> MCPServer[Any]:
    """The MCP server over one warm shelf."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError

    from bunko import __version__

    class StrictServer(MCPServer[Any]):
        """Rejects unknown tool arguments instead of silently dropping them."""

        async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
            known = {t.name: t.input_schema.get("properties", {}) for t in await self.list_tools()}
            extra = sorted(set(arguments) - set(known.get(name, arguments)))
            if extra:
                raise ToolError(
                    f"unknown argument(s) {', '.join(extra)} for tool {name}; "
                    f"it takes {', '.join(known[name]) or 'no arguments'}"
                )
            return await super().call_tool(name, arguments, context)

    shared = SharedShelf(shelf)
    corpus = shelf.settings.corpus
    server: MCPServer[Any] = StrictServer(
        "bunko", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING"
    )

    @server.tool()
    def search(
        question: str,
        k: int = 5,
        mode: Literal["hybrid", "dense", "lexical"] = "hybrid",
        source: str | list[str] | None = None,
    ) -> Annotated[CallToolResult, SearchOutput]:
        """Search the shelf for passages that answer a question (Japanese or English).

        Returns up to k passages (1-20), best first, each with its source file,
        1-based line range, char span, PDF page, a text excerpt of at most 1,200
        characters around the best sentence (`highlight`), and a citation string.
        `source` limits the search to corpus files matching a glob (or a list of
        globs), e.g. "2024/*" or "notes/article.md", as `bunko query --source` does.
        """
        try:
            if not 1 <= k <= MCP_MAX_K:
                raise UsageError(f"k must be between 1 and {MCP_MAX_K} (got {k})")
            globs = (source,) if isinstance(source, str) else tuple(source or ())
            result = shared.query(QueryRequest(question, k=k, mode=mode, sources=globs))
        except BunkoError as exc:
            raise ToolError(str(exc)) from None
        return _structured(mcp_results(result))

    @server.tool()
    def read(
        source: str, start_line: int = 1, end_line: int | None = None
    ) -> Annotated[CallToolResult, ReadOutput]:
        """Read exact lines of a corpus source (as named by a search result's `source`).

        Lines are 1-based and inclusive. A page holds at most 200 lines or 20,000
        characters; when more follows, `next_start_line` says where to go on.
        Paths outside the corpus are refused.
        """
        try:
            page = read_lines(corpus, source, start_line, end_line)
        except BunkoError as exc:
            raise ToolError(str(exc)) from None
        return _structured(page.to_json())

    @server.tool()
    def status() -> Annotated[CallToolResult, StatusOutput]:
        """What the shelf holds: documents, chunks, model, and files not yet indexed."""
        try:
            s = shared.status()
        except BunkoError as exc:
            raise ToolError(str(exc)) from None
        return _structured(
            {
                "corpus": s["corpus"],
                "index": s["index"],
                "exists": s["exists"],
                "model": s["model"],
                "documents": s["documents"],
                "chunks": s["chunks"],
                "updated": s["updated"],
                "not_indexed": [*s["stale_new"], *s["stale_changed"], *s["stale_removed"]],
            }
        )

    @server.resource("bunko://{+source}", name="article", mime_type="text/plain")
    def article(source: str) -> str:
        """A whole article of the corpus (first page of 20,000 characters)."""
        try:
            page = read_lines(corpus, source, 1, None, max_lines=1_000_000)
        except BunkoError as exc:
            # ResourceError carries the reason to the client; any other exception
            # reaches it as a bare "Error creating resource from template".
            if "no source" in str(exc):
                raise ResourceNotFoundError(str(exc)) from None
            raise ResourceError(str(exc)) from None
        return page.text

    return server


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Point fd 1 at stderr for a while, so native libraries cannot write to stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _structured(data: dict[str, Any]) -> CallToolResult:
    """Structured content plus its compact JSON as text (for hosts that read only text).

    The SDK's own text copy is indented with ASCII escapes; compact UTF-8 JSON is about
    half the size, and tool-result size is what MCP hosts cut.
    """
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def run(shelf: Shelf, http: bool = False, host: str = "127.0.0.1", port: int = 8766,
        token: str | None = None) -> None:  # fmt: skip
    """Serve over stdio (default) or streamable HTTP on ``host:port``.

    The index is opened (or built) and the model loaded first, so the first tool call
    is fast; on stdio, anything printed meanwhile goes to stderr, not to the client.
    """
    server = build_server(shelf)
    if not http:
        with stdout_to_stderr():
            shelf.query("warm up", k=1)
        server.run("stdio")
        return
    shelf.query("warm up", k=1)
    import uvicorn
    from mcp.server.transport_security import TransportSecuritySettings

    from bunko.serve.security import Guard, allowed_hosts, is_loopback

    names = allowed_hosts(host)
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=not (token and not is_loopback(host)),
        allowed_hosts=[f"{h}:*" if ":" not in h else f"[{h}]:*" for h in names]
        + [h if ":" not in h else f"[{h}]" for h in names],
        allowed_origins=[f"http://{h}:*" if ":" not in h else f"http://[{h}]:*" for h in names],
    )
    app = server.streamable_http_app(transport_security=security, host=host)
    hosts = None if token and not is_loopback(host) else names
    guarded = Guard(app, hosts=hosts, token=token, max_body=1024 * 1024)
    uvicorn.run(guarded, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2)
