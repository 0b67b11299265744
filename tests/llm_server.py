"""A small scripted OpenAI-compatible chat server on 127.0.0.1 for the `ask` tests.

No language model runs on these machines, so the replies are scripted; bunko still
goes through the real ``openai`` client, HTTP and SSE. The requested model name picks
the script. Plain and streamed (``"stream": true``) replies are both served.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SCRIPTS: dict[str, str] = {
    "valid": "富士山の標高は3776メートルです[1]。2013年に世界文化遺産に登録されました[2]。",
    "fullwidth": "富士山の標高は3776メートルです【1】。世界文化遺産です［2］。",
    "unknown": "富士山の標高は3776メートルです[1][99]。",
    "quotes": "記事には「標高は3776メートル」とあります[1]。また「標高は5000メートル」とも[1]。",
    "english": 'The first crack happens at "about 196 degrees" [1].',
    "slow": "富士山の標高は3776メートルです[1]。",
}
ERRORS = {"http401": 401, "http404": 404, "http500": 500}
SLOW_SECONDS = 3.0


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (the timeout test) is expected; keep stderr clean


class ScriptedLLM:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "body": body,
                                       "auth": self.headers.get("Authorization")})  # fmt: skip
                model = body.get("model", "")
                if not self.path.endswith("/chat/completions"):
                    return self._error(404, "no such route")
                if model in ERRORS:
                    return self._error(ERRORS[model], f"scripted {model}")
                if model not in SCRIPTS:
                    return self._error(404, f"model '{model}' not found")
                if model == "slow":
                    time.sleep(SLOW_SECONDS)
                text = SCRIPTS[model]
                if body.get("stream"):
                    return self._stream(model, text)
                reply = {
                    "id": "x", "object": "chat.completion", "created": 0, "model": model,
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                }  # fmt: skip
                self._send(200, "application/json", json.dumps(reply).encode())

            def _stream(self, model: str, text: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                step = 3  # small pieces, so markers arrive split across chunks
                for i in range(0, len(text), step):
                    chunk = {
                        "id": "x", "object": "chat.completion.chunk", "created": 0,
                        "model": model,
                        "choices": [{"index": 0, "delta": {"content": text[i : i + step]},
                                     "finish_reason": None}],
                    }  # fmt: skip
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

            def _error(self, status: int, message: str) -> None:
                body = {"error": {"message": message, "type": "scripted", "code": status}}
                self._send(status, "application/json", json.dumps(body).encode())

            def _send(self, status: int, ctype: str, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def calls(self) -> int:
        return sum(1 for r in self.requests if r["path"].endswith("/chat/completions"))


@contextmanager
def scripted_llm() -> Iterator[ScriptedLLM]:
    llm = ScriptedLLM()
    thread = threading.Thread(target=llm.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield llm
    finally:
        llm.server.shutdown()
        llm.server.server_close()
        thread.join(5)
