"""Start a real `bunko serve` / `bunko mcp --http` on a free loopback port for tests."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bunko.config import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(
    settings: Settings, *args: str, command: str = "serve", env: dict[str, str] | None = None
) -> Iterator[int]:
    """`bunko <command> --port P ...` in a child process; yields P once it answers."""
    with started(settings, *args, command=command, env=env) as (port, _):
        yield port


@contextmanager
def started(
    settings: Settings, *args: str, command: str = "serve", env: dict[str, str] | None = None
) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """Like :func:`running`, yielding the port and the child process."""
    port = free_port()
    child_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BUNKO_", "OPENAI_")) or k == "BUNKO_CACHE"
    }
    child_env.update(env or {})
    cmd = [sys.executable, "-m", "bunko", command]
    if command == "mcp":
        cmd.append("--http")
    cmd += ["--port", str(port), "--corpus", str(settings.corpus), "--index",
            str(settings.index), *args]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise RuntimeError(f"bunko {command} exited {proc.returncode}: {err}{out}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"bunko {command} did not start") from None
                time.sleep(0.2)
        yield port, proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()


def request(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP request (so Host and Origin can be anything)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        sent = {"Host": f"127.0.0.1:{port}", **(headers or {})}
        if body is not None:
            sent.setdefault("Content-Length", str(len(body)))
        for k, v in sent.items():
            conn.putheader(k, v)
        conn.endheaders(body)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def get_json(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    status, _, body = request(port, "GET", path, headers)
    return status, json.loads(body)
