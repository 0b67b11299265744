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

from bunko.answer.ask import answer_from
from bunko.answer.llm import CONFIGURE_HINT, LLMConfig
from bunko.errors import BunkoError, IndexMissingError, UsageError
from bunko.jsonout import query_json
from bunko.serve.reader import ReadError, read_lines
from bunko.serve.results import SharedShelf, check_query
from bunko.serve.security import Guard, allowed_hosts, is_loopback

if TYPE_CHECKING:
    from fastapi import FastAPI

    from bunko.api import Shelf
    from bunko.serve.security import ASGIApp

log = logging.getLogger("bunko")

STATIC = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'"
    ),
}


def _status_for(exc: BunkoError) -> int:
    if isinstance(exc, UsageError):
        return 400
    if isinstance(exc, ReadError):
        return 404 if "no source" in str(exc) else 400
    if isinstance(exc, IndexMissingError):
        return 503
    return 500


def create_app(shelf: Shelf, llm: LLMConfig | None = None) -> FastAPI:
    """The FastAPI app (without the guard; see :func:`guarded_app`)."""
    from fastapi import Body, FastAPI, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response, StreamingResponse

    shared = SharedShelf(shelf)
    corpus = shelf.settings.corpus
    app = FastAPI(title="bunko", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(BunkoError)
    async def _bunko_error(request: Request, exc: BunkoError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=_status_for(exc))

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

    @app.get("/api/query")
    def api_query(
        q: str = Query(..., max_length=4000),
        k: int = 5,
        mode: str = "hybrid",
        source: str | None = Query(None, max_length=1000),
    ) -> dict[str, Any]:
        return query_json(shared.query(q, k, mode, source))

    @app.get("/api/status")
    def api_status() -> dict[str, Any]:
        out = shared.status()
        out["llm"] = None if llm is None else {"url": llm.url, "model": llm.model}
        return out

    @app.get("/api/read")
    def api_read(
        source: str = Query(..., max_length=1000), start: int = 1, end: int | None = None
    ) -> dict[str, Any]:
        return read_lines(corpus, source, start, end).to_json()

    @app.post("/api/ask")
    def api_ask(body: Any = Body(...)) -> Response:
        # (a plain JSON body, not a model: FastAPI cannot see annotations of names
        # imported inside this function)
        if not isinstance(body, dict):
            raise UsageError('the body must be a JSON object: {"q": "…", "k": 5}')
        unknown = set(body) - {"q", "k", "mode"}
        if unknown:
            raise UsageError(f"unknown fields {sorted(unknown)}; use q, k, mode")
        q, k, mode = body.get("q", ""), body.get("k", 5), body.get("mode", "hybrid")
        if not isinstance(q, str) or not isinstance(k, int) or not isinstance(mode, str):
            raise UsageError("q and mode must be strings, k an integer")
        check_query(q, k, mode)
        return StreamingResponse(
            _ask_events(shared, q, k, mode, llm),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return app


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _ask_events(
    shared: SharedShelf, q: str, k: int, mode: str, llm: LLMConfig | None
) -> Iterator[str]:
    """passages, then delta* (generated text), then done (the `ask --json` object) or error."""
    try:
        result = shared.query(q, k, mode)
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
    app = create_app(shelf, llm)
    # A token protects a non-loopback server, and then any Host name may reach it
    # (its LAN name or address); without one only loopback names are accepted.
    hosts = None if token and not is_loopback(host) else allowed_hosts(host)
    return Guard(app, hosts=hosts, token=token)
