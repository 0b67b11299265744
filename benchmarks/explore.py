"""What moves retrieval quality: tokenizers for BM25 and fusion methods, measured offline.

Dense and lexical candidate lists are computed once per question, then every
fusion variant is scored on the same lists. Tuning data only (JSQuAD valid,
JaQuAD dev, dev-qa); the held-out JSQuAD test is never used here.

    python benchmarks/explore.py --datasets dev-qa,jsquad-valid,jaquad-dev --sample 1000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bunko import search
from bunko.index.lexical import LexicalIndex
from bunko.text import Tokenizer
from common import REPO, Task, all_chunks, devqa_task, metrics, squad_task, table

N = 50


def tokenizer_variants() -> dict[str, Callable[[str], list[str]]]:
    surface = Tokenizer("surface")
    lemma = Tokenizer("lemma")
    surface_nf = Tokenizer("surface", drop_function_words=True)
    lemma_nf = Tokenizer("lemma", drop_function_words=True)

    def bigrams(tok: Tokenizer) -> Callable[[str], list[str]]:
        def f(text: str) -> list[str]:
            out = tok.tokens(text)
            extra = []
            for t in out:
                if len(t) >= 3 and not t.isascii():
                    extra.extend("#" + t[i : i + 2] for i in range(len(t) - 1))
            return out + extra

        return f

    return {
        "surface": surface.tokens,
        "lemma": lemma.tokens,
        "surface-nofunc": surface_nf.tokens,
        "lemma-nofunc": lemma_nf.tokens,
        "surface+bigram": bigrams(surface),
        "lemma-nofunc+bigram": bigrams(lemma_nf),
    }


def run(task: Task, tok_names: list[str]) -> list[tuple[str, dict[str, float]]]:
    shelf = task.shelf
    loaded = shelf.loaded()
    from bunko.embedding import get_embedder

    embedder = get_embedder(loaded.model)
    rows = all_chunks(shelf)
    row_ids = [r.id for r in rows]
    row_texts = [r.text for r in rows]
    items = task.items
    print(f"[{task.name}] embedding {len(items)} questions", file=sys.stderr)
    qv = np.stack([embedder.embed_query(it.question) for it in items])
    dense = [search.dense_candidates(loaded, q, N) for q in qv]
    results: list[tuple[str, dict[str, float]]] = []
    results.append(("dense", metrics([[c for c, _ in d] for d in dense], items)))
    variants = tokenizer_variants()
    for name in tok_names:
        tok = variants[name]
        print(f"[{task.name}] BM25 with {name}", file=sys.stderr)
        lex_index = LexicalIndex.build([tok(t) for t in row_texts])
        lex: list[search.Ranked] = []
        cov: list[float] = []
        for it in items:
            qt = tok(it.question)
            scores = lex_index.scores(qt)
            n = min(N, int(np.count_nonzero(scores)))
            top = np.argsort(-scores, kind="stable")[:n]
            lex.append([(int(row_ids[r]), float(scores[r])) for r in top])
            cov.append(lex_index.coverage(qt))
        results.append((f"lexical {name}", metrics([[c for c, _ in lst] for lst in lex], items)))
        for method in ("convex", "rrf"):
            for w in (0.3, 0.5, 0.7):
                for scaled in (True, False):
                    ranked = [
                        [
                            h.chunk_id
                            for h in search.fuse(d, lx, w * (c if scaled else 1.0), 10, method)
                        ]  # type: ignore[arg-type]
                        for d, lx, c in zip(dense, lex, cov, strict=True)
                    ]
                    label = f"{method} w={w}{'·cov' if scaled else ''} {name}"
                    results.append((label, metrics(ranked, items)))
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="dev-qa,jsquad-valid,jaquad-dev")
    ap.add_argument("--sample", type=int, default=1000)
    ap.add_argument(
        "--tokenizers",
        default="surface,lemma,surface-nofunc,lemma-nofunc,surface+bigram,lemma-nofunc+bigram",
    )
    ap.add_argument("--chunk-tokens", type=int, default=None)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "explore.json"))
    ap.add_argument("--smoke", action="store_true", help="dev-qa, 3 questions a language (CI)")
    args = ap.parse_args()
    if args.smoke:
        args.datasets, args.tokenizers = "dev-qa", "surface"
        args.out = str(Path(tempfile.mkdtemp()) / "explore.json")
    toks = args.tokenizers.split(",")
    everything: dict[str, Any] = {}
    cols = ["R@1", "R@5", "MRR@10", "nDCG@10"]
    for name in args.datasets.split(","):
        if name == "dev-qa":
            ct = args.chunk_tokens
            index_name = "smoke" if args.smoke else f"index-c{ct}" if ct else "index"
            task = devqa_task(index_name, ct, 3 if args.smoke else None)
            for lang in ("ja", "en"):
                sub = Task(f"dev-qa-{lang}", task.shelf, [i for i in task.items if i.lang == lang])
                res = run(sub, toks)
                everything[sub.name] = dict(res)
                print(f"\n## {sub.name}\n" + table(res, cols), flush=True)
        else:
            ct = args.chunk_tokens
            task = squad_task(name, args.sample, ct, f"index-c{ct}" if ct else "index-c256")
            res = run(task, toks)
            everything[name] = dict(res)
            print(f"\n## {name}\n" + table(res, cols), flush=True)
    Path(args.out).write_text(json.dumps(everything, indent=1))


if __name__ == "__main__":
    main()
