"""Request guards shared by `bunko serve` and `bunko mcp --http`.

* Host and Origin must name the server itself (DNS rebinding: a web page on another
  site must not be able to reach a loopback server through a name it controls).
* With a token, every API request needs ``Authorization: Bearer <token>``.
* Request bodies are bounded.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from bunko.errors import ServeError, UsageError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
MAX_BODY_BYTES = 64 * 1024


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the server on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse a non-loopback bind without a token.

    Raises:
        UsageError: ``host`` is reachable from other machines and no token is set.
    """
    if not is_loopback(host) and not token:
        raise UsageError(
            f"--host {host} makes the server reachable from other machines; set a token "
            "with --token or BUNKO_TOKEN (clients send it as 'Authorization: Bearer TOKEN'), "
            "or bind to 127.0.0.1"
        )


def check_port(host: str, port: int) -> None:
    """Refuse to start on a port another program holds, before announcing the address.

    Raises:
        ServeError: the port is in use, or the address cannot be bound here.
    """
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ServeError(f"cannot bind {host}: {exc.strerror or exc}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ServeError(f"port {port} is in use (try --port {port + 1})") from None
            raise ServeError(f"cannot bind {host}:{port}: {exc.strerror or exc}") from None


def allowed_hosts(bind_host: str) -> set[str]:
    """Host names the server answers to: its loopback names, plus the bound address."""
    names = set(LOOPBACK_NAMES)
    if bind_host not in ("0.0.0.0", "::", ""):
        names.add(bind_host.strip("[]").lower())
    return names


def _hostname(value: str) -> str | None:
    """The host part of a Host header value ('localhost:8765', '[::1]:80')."""
    try:
        parts = urlsplit("//" + value)
        return parts.hostname
    except ValueError:
        return None


class Guard:
    """ASGI middleware: Host/Origin checks, optional bearer token, bounded bodies.

    Args:
        app: the wrapped ASGI app.
        hosts: accepted host names (no ports); None accepts any Host (only with a token).
        token: the bearer token, or None for none.
        protected: path prefixes that need the token (the page itself does not).
    """

    def __init__(
        self,
        app: ASGIApp,
        hosts: Iterable[str] | None,
        token: str | None = None,
        protected: tuple[str, ...] = ("/api/", "/mcp"),
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        self.app = app
        self.hosts = None if hosts is None else {h.lower() for h in hosts}
        self.token = token
        self.protected = protected
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = _hostname(headers.get("host", ""))
        if host is None or (self.hosts is not None and host.lower() not in self.hosts):
            await _reply(send, 421, "the Host header does not name this server (DNS rebinding?)")
            return
        origin = headers.get("origin")
        if origin is not None and origin != "null":
            o = urlsplit(origin)
            ok_origin = o.scheme in ("http", "https") and o.hostname is not None
            if ok_origin and self.hosts is not None:
                ok_origin = o.hostname.lower() in self.hosts
            elif ok_origin:  # any Host accepted (token mode): the page must be same-origin
                ok_origin = o.netloc.lower() == headers.get("host", "").lower()
            if not ok_origin:
                await _reply(send, 403, f"requests from origin {origin} are not allowed")
                return
        elif origin == "null":
            await _reply(send, 403, "requests from an opaque origin are not allowed")
            return
        path: str = scope.get("path", "")
        if self.token is not None and path.startswith(self.protected):
            given = headers.get("authorization", "")
            scheme, _, value = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                value.strip().encode(), self.token.encode()
            ):
                await _reply(
                    send, 401, "missing or wrong token: send 'Authorization: Bearer TOKEN'"
                )
                return
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await _reply(send, 413, f"request body over {self.max_body} bytes")
            return
        # Read the (small) body first, so an oversized chunked body gets a clean 413.
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message], receive), send)
                return
            body.extend(message.get("body", b""))
            if len(body) > self.max_body:
                await _reply(send, 413, f"request body over {self.max_body} bytes")
                return
            if not message.get("more_body", False):
                break
        first: Message = {"type": "http.request", "body": bytes(body), "more_body": False}
        await self.app(scope, _replay([first], receive), send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    async def wrapped() -> Message:
        if messages:
            return messages.pop(0)
        return await receive()

    return wrapped


async def _reply(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}, ensure_ascii=False).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
