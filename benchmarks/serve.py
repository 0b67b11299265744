"""Figures for the ways people reach bunko: HTTP query latency on a warm `bunko serve`,
the size of an MCP `search` result, and cold `bunko query` (which must not import the
server stack).

    python benchmarks/serve.py                 # shipped corpus, dev-qa questions
    python benchmarks/serve.py --smoke         # tiny: the test corpus, 3 questions (CI runs it)

Writes benchmarks/results/serve.json (or --out). Timings are wall-clock on a shared
machine: the load average is recorded beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from bunko.config import Settings
from serve_helpers import request, running

SHARED = Path(os.environ.get("BUNKO_SHARED", REPO.parent / "shared"))
HEAVY = ("fastapi", "uvicorn", "starlette", "mcp", "openai", "playwright", "torch")


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def questions(smoke: bool) -> list[str]:
    if smoke:
        return [
            "富士山の標高は何メートルですか？",
            "How tall is Mount Fuji?",
            "握り寿司はいつ生まれましたか？",
        ]
    path = SHARED / "eval" / "dev-qa.jsonl"
    return [
        json.loads(line)["question"]
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def summary(times: list[float]) -> dict[str, Any]:
    ms = [t * 1000 for t in times]
    return {
        "requests": len(ms),
        "p50_ms": round(pct(ms, 50), 1),
        "p95_ms": round(pct(ms, 95), 1),
        "mean_ms": round(statistics.mean(ms), 1),
        "max_ms": round(max(ms), 1),
    }


def http_latency(settings: Settings, qs: list[str], rounds: int) -> dict[str, Any]:
    """A warm `bunko serve` over HTTP, and the same queries in this process (Shelf.query),
    interleaved round by round, so the HTTP overhead shows under the same load."""
    from bunko.api import Shelf

    shelf = Shelf(settings)
    http: list[float] = []
    inproc: list[float] = []
    with running(settings) as port:
        for q in qs:  # one warm-up pass each, not timed
            request(port, "GET", "/api/query?" + urllib.parse.urlencode({"q": q, "k": 5}))
            shelf.query(q, k=5)
        for _ in range(rounds):
            for q in qs:
                t = time.perf_counter()
                status, _, body = request(
                    port, "GET", "/api/query?" + urllib.parse.urlencode({"q": q, "k": 5})
                )
                http.append(time.perf_counter() - t)
                assert status == 200, body[:200]
            for q in qs:
                t = time.perf_counter()
                shelf.query(q, k=5)
                inproc.append(time.perf_counter() - t)
    return {**summary(http), "in_process": summary(inproc)}


def mcp_sizes(settings: Settings, qs: list[str]) -> dict[str, Any]:
    import anyio
    from mcp import ClientSession, StdioServerParameters, stdio_client

    params = StdioServerParameters(
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
        env={k: v for k, v in os.environ.items() if not k.startswith("BUNKO_")},
    )

    async def go() -> list[dict[str, int]]:
        out = []
        async with stdio_client(params) as (r, w), ClientSession(r, w) as s:
            await s.initialize()
            for q in qs:
                res = await s.call_tool("search", {"question": q, "k": 5})
                structured = json.dumps(res.structured_content, ensure_ascii=False)
                text = "".join(getattr(c, "text", "") for c in res.content)
                out.append(
                    {
                        "structured_chars": len(structured),
                        "structured_bytes": len(structured.encode()),
                        "content_chars": len(text),
                        "whole_result_bytes": len(res.model_dump_json(by_alias=True).encode()),
                    }
                )
        return out

    sizes = anyio.run(go)
    whole = [s["whole_result_bytes"] for s in sizes]
    chars = [s["structured_chars"] for s in sizes]
    return {
        "questions": len(sizes),
        "k": 5,
        "structured_chars_median": int(statistics.median(chars)),
        "structured_chars_max": max(chars),
        "whole_result_bytes_median": int(statistics.median(whole)),
        "whole_result_bytes_max": max(whole),
    }


def cold_query(settings: Settings, runs: int, baseline: Path | None) -> dict[str, Any]:
    """Cold `bunko query` wall time; with ``baseline`` (a checkout's src/), the same
    command from that code too, alternating run by run."""
    cmd = [
        sys.executable,
        "-m",
        "bunko",
        "query",
        "GPT-4.5のAPI料金は？",
        "--corpus",
        str(settings.corpus),
        "--index",
        str(settings.index),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUNKO_")}
    subprocess.run(cmd, env=env, check=True, capture_output=True)  # page cache warm, index built
    base_env = {**env, "PYTHONPATH": str(baseline)} if baseline else None
    walls: list[float] = []
    base_walls: list[float] = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        walls.append(time.perf_counter() - t)
        if base_env is not None:
            t = time.perf_counter()
            subprocess.run(cmd, env=base_env, check=True, capture_output=True)
            base_walls.append(time.perf_counter() - t)
    trace = subprocess.run(
        [sys.executable, "-X", "importtime", *cmd[1:]],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stderr
    imported = {
        line.split("|")[-1].strip().split(".")[0] for line in trace.splitlines() if "|" in line
    }
    return {
        "runs": runs,
        "median_s": round(statistics.median(walls), 3),
        "min_s": round(min(walls), 3),
        "max_s": round(max(walls), 3),
        "server_stack_imported": sorted(set(HEAVY) & imported),
        "baseline_median_s": round(statistics.median(base_walls), 3) if base_walls else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--cold-runs", type=int, default=5)
    ap.add_argument(
        "--baseline-src", type=Path, help="src/ of another checkout to time cold query against"
    )
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "serve.json")
    args = ap.parse_args()
    corpus = REPO / "tests" / "data" / "mini" if args.smoke else REPO / "corpus"
    with tempfile.TemporaryDirectory(prefix="bunko-serve-bench-") as tmp:
        shutil.copytree(corpus, Path(tmp) / "corpus")
        settings = Settings.resolve(corpus=Path(tmp) / "corpus", index=Path(tmp) / "index")
        qs = questions(args.smoke)
        cold = cold_query(
            settings, 1 if args.smoke else args.cold_runs, args.baseline_src
        )  # also builds the index
        load_before = os.getloadavg()
        http = http_latency(settings, qs, 1 if args.smoke else args.rounds)
        mcp = mcp_sizes(settings, qs)
        load_after = os.getloadavg()
    result = {
        "smoke": args.smoke,
        "corpus": str(corpus.relative_to(REPO)),
        "questions": len(qs),
        "http_query": http,
        "mcp_search": mcp,
        "cold_query": cold,
        "loadavg": {
            "before": [round(x, 2) for x in load_before],
            "after": [round(x, 2) for x in load_after],
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
