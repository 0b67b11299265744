"""`bunko serve`: the HTTP API and the web page, over one warm shelf.

``GET /api/query`` returns exactly the ``bunko query --json`` object; ``GET /api/read``
has the bounds and refusals of the MCP ``read`` tool; ``POST /api/ask`` streams a
generated answer as server-sent events.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Iterator
from importlib import resources
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse

from bunko.answer.ask import answer_from
from bunko.answer.llm import CONFIGURE_HINT, LLMConfig
from bunko.errors import BunkoError
from bunko.jsonout import query_json
from bunko.retrieval.query import MAX_SOURCE_CHARS, QueryRequest
from bunko.serve.reader import read_lines
from bunko.serve.results import SharedShelf, http_status
from bunko.serve.schemas import AskBody, QueryOut, ReadOutput
from bunko.serve.security import Guard, allowed_hosts, is_loopback

if TYPE_CHECKING:
    from bunko.api import Shelf
    from bunko.serve.security import ASGIApp

log = logging.getLogger("bunko")

STATIC = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'"
)
# /docs is FastAPI's Swagger UI: an inline start-up script and its files from jsDelivr.
_DOCS_CSP = (
    "default-src 'self'; img-src 'self' data: https://fastapi.tiangolo.com; "
    "style-src 'self' https://cdn.jsdelivr.net; "
    "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; connect-src 'self'; "
    "frame-ancestors 'none'"
)
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

api = APIRouter(prefix="/api")


def _shared(request: Request) -> SharedShelf:
    shared: SharedShelf = request.app.state.shared
    return shared


def _llm(request: Request) -> LLMConfig | None:
    llm: LLMConfig | None = request.app.state.llm
    return llm


@api.get("/query", response_model=QueryOut, response_model_exclude_unset=True)
def api_query(
    q: str,
    k: int = 5,
    mode: str = "hybrid",
    source: list[str] | None = Query(None, description="corpus globs, e.g. 2024/* (repeatable)"),
    shared: SharedShelf = Depends(_shared),
) -> dict[str, Any]:
    """Exactly the ``bunko query --json`` object for the same question and globs."""
    request = QueryRequest(q, k=k, mode=mode, sources=tuple(source or ()))  # type: ignore[arg-type]
    return query_json(shared.query(request))


@api.get("/status")
def api_status(
    shared: SharedShelf = Depends(_shared), llm: LLMConfig | None = Depends(_llm)
) -> dict[str, Any]:
    """What the index holds, what is not yet indexed, and the LLM ``ask`` uses."""
    out = shared.status()
    out["llm"] = None if llm is None else {"url": llm.url, "model": llm.model}
    return out


@api.get("/read", response_model=ReadOutput, response_model_exclude_unset=True)
def api_read(
    request: Request,
    source: str = Query(..., max_length=MAX_SOURCE_CHARS),
    start: int = 1,
    end: int | None = None,
) -> dict[str, object]:
    """Exact lines of a corpus source (the MCP ``read`` tool's bounds and refusals)."""
    return read_lines(request.app.state.corpus, source, start, end).to_json()


@api.post("/ask")
def api_ask(
    body: AskBody, shared: SharedShelf = Depends(_shared), llm: LLMConfig | None = Depends(_llm)
) -> StreamingResponse:
    """Server-sent events: passages, delta*, then done (the ``ask --json`` object) or error."""
    request = QueryRequest(body.q, k=body.k, mode=body.mode, sources=tuple(body.source))  # type: ignore[arg-type]
    return StreamingResponse(
        _ask_events(shared, request, llm),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def create_app(shelf: Shelf, llm: LLMConfig | None = None, docs: bool = False) -> FastAPI:
    """The FastAPI app (without the guard; see :func:`guarded_app`).

    Args:
        docs: serve the OpenAPI document and its page at ``/docs`` (loopback only).
    """
    app = FastAPI(
        title="bunko",
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.shared = SharedShelf(shelf)
    app.state.corpus = shelf.settings.corpus
    app.state.llm = llm
    app.include_router(api)

    @app.exception_handler(BunkoError)
    async def _bunko_error(request: Request, exc: BunkoError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=http_status(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(x) for x in e.get('loc', ())[1:]) or 'request'}: {e.get('msg')}"
            for e in exc.errors()
        ]
        return JSONResponse({"error": "; ".join(problems)}, status_code=400)

    @app.middleware("http")
    async def _headers(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        for key, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        csp = _DOCS_CSP if request.url.path == "/docs" else _CSP
        response.headers.setdefault("Content-Security-Policy", csp)
        return response

    def static(name: str) -> Response:
        data = resources.files("bunko.serve").joinpath("static", name).read_bytes()
        return Response(data, media_type=STATIC[name], headers={"Cache-Control": "no-cache"})

    @app.get("/", include_in_schema=False)
    def page() -> Response:
        return static("index.html")

    @app.get("/static/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        if name not in STATIC:
            return JSONResponse({"error": "not found"}, status_code=404)
        return static(name)

    return app


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _ask_events(shared: SharedShelf, request: QueryRequest, llm: LLMConfig | None) -> Iterator[str]:
    """passages, then delta* (generated text), then done (the `ask --json` object) or error."""
    try:
        result = shared.query(request)
    except BunkoError as exc:
        yield _sse("error", {"error": str(exc)})
        return
    yield _sse("passages", query_json(result))
    if llm is None:
        yield _sse("note", {"message": "No LLM configured: " + CONFIGURE_HINT})
    pieces: queue.Queue[tuple[str, Any]] = queue.Queue()

    def work() -> None:
        try:
            done = answer_from(result, llm, lambda s: pieces.put(("delta", {"text": s})))
            pieces.put(("done", done.to_json()))
        except BunkoError as exc:
            pieces.put(("error", {"error": str(exc)}))

    threading.Thread(target=work, daemon=True, name="bunko-ask").start()
    while True:
        event, data = pieces.get()
        yield _sse(event, data)
        if event in ("done", "error"):
            return


def guarded_app(shelf: Shelf, host: str, token: str | None, llm: LLMConfig | None) -> ASGIApp:
    """The app behind the Host/Origin/token/body guard."""
    app = create_app(shelf, llm, docs=is_loopback(host))
    # A token protects a non-loopback server, and then any Host name may reach it
    # (its LAN name or address); without one only loopback names are accepted.
    hosts = None if token and not is_loopback(host) else allowed_hosts(host)
    return Guard(app, hosts=hosts, token=token)
