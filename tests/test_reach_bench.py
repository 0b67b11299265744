"""The serve/MCP benchmark's smoke mode runs, and `bunko query` never imports the server stack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bunko.config import Settings

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_serve_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "serve.json"
    subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "serve.py"), "--smoke", "--out", str(out)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["http_query"]["requests"] == 3 and data["http_query"]["p50_ms"] > 0
    assert data["mcp_search"]["questions"] == 3
    assert 0 < data["mcp_search"]["structured_chars_max"] < 20_000
    assert data["cold_query"]["server_stack_imported"] == []


def test_query_does_not_import_the_server_stack(mini: Settings) -> None:
    trace = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "bunko", "query", "富士山", "--corpus",
         str(mini.corpus), "--index", str(mini.index)],
        check=True, capture_output=True, text=True,
    ).stderr  # fmt: skip
    imported = {line.split("|")[-1].strip().split(".")[0] for line in trace.splitlines()}
    heavy = {"fastapi", "uvicorn", "starlette", "mcp", "openai", "playwright", "pydantic"}
    heavy |= {"torch", "sentence_transformers", "onnxruntime", "onnx", "ray"}
    assert not imported & heavy
