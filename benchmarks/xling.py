"""English questions over a Japanese shelf: each cross-lingual lever measured on its own.

The shelf is `load_xling(size=900)` (JSQuAD valid + JaQuAD dev paragraphs, held-out
articles removed), indexed once under benchmarks/.cache/xling/. Every question's
candidates are computed the way `Shelf.query` computes them (dense top 50 re-scored
with sentence vectors, BM25 top 50 with the expansion terms, convex fusion with the
coverage- and distinctness-scaled lexical weight), under each variant:

- `main`: JMdict word glosses only (the shipped behaviour before issue 23);
- `+names`, `+dates`, `+phrases`: one lever's lexical terms added to `main`'s;
- `+all lexical`: the three together;
- `dense: append`: the question embedded with its Japanese rendering appended (1 embedding);
- `dense: fuse`: the question's and the rendering's embeddings averaged (2 embeddings);
- `shipped`: what `Shelf.query` now does (all lexical levers + append).

A hit is a passage of the question's own paragraph (one paragraph, one file). The
figures are hit@1, hit@5, MRR@10 and recall@pool (the paragraph anywhere in the
fused top 50: what an answer stage re-ranking candidates can reach). Nothing is fitted:
the weights are fixed a priori; the only choice (which variant ships) is checked by
5-fold cross-validation split by article. Costs are counted: embedder calls and
dictionary lookups per question.

    python benchmarks/xling.py            # 900-paragraph shelf, 397 + 397 questions
    python benchmarks/xling.py --smoke    # 20 questions over their own paragraphs (CI)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bunko import search
from bunko.api import Shelf
from bunko.config import Settings
from bunko.embedding import get_embedder, recorded_engine
from bunko.retrieval import crossling, expansion
from datasets import CACHE, Question, load_xling

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "xling.json"
COLS = ["hit@1", "hit@5", "MRR@10", "recall@pool", "embeds/q", "lookups/q"]


@dataclass(frozen=True)
class Variant:
    name: str
    levers: frozenset[str]  # crossling levers for the lexical terms ("words" = main's)
    dense: str = "plain"  # plain | append | fuse (-only: with main's lexical terms)
    dense_levers: frozenset[str] = crossling.ALL_LEVERS  # whose forms the dense text holds
    covered: bool = False  # translated words count as known in the lexical weight
    lexical: frozenset[str] | None = None  # levers feeding BM25 (default: all of levers)


NPD = frozenset({"names", "phrases", "dates"})  # names, phrases, dates: no single-word glosses
VARIANTS = [
    Variant("main (JMdict words)", frozenset({"words"})),
    Variant("+names", frozenset({"words", "names"})),
    Variant("+dates", frozenset({"words", "dates"})),
    Variant("+phrases", frozenset({"words", "phrases"})),
    Variant("+all lexical", crossling.ALL_LEVERS),
    Variant("dense: append (main lexical)", crossling.ALL_LEVERS, "append-only"),
    Variant("dense: fuse (main lexical)", crossling.ALL_LEVERS, "fuse-only"),
    Variant("dense: append, no words (main lexical)", crossling.ALL_LEVERS, "append-only", NPD),
    Variant("all lexical + append", crossling.ALL_LEVERS, "append"),
    Variant("all lexical + fuse", crossling.ALL_LEVERS, "fuse"),
    Variant("all lexical + append, no words", crossling.ALL_LEVERS, "append", NPD),
    Variant(
        "all lexical + append, translated coverage", crossling.ALL_LEVERS, "append", covered=True
    ),
    Variant(
        "names+phrases+words lexical, dates dense only + append, translated coverage",
        crossling.ALL_LEVERS,
        "append",
        covered=True,
        lexical=frozenset({"names", "phrases", "words"}),
    ),
    Variant(
        "all lexical + append no words, translated coverage",
        crossling.ALL_LEVERS,
        "append",
        NPD,
        covered=True,
    ),
]


class Runner:
    """One shelf's retrieval, as Shelf.query does it, with the variant's inputs."""

    def __init__(self, shelf: Shelf) -> None:
        self.shelf = shelf
        self.loaded = shelf.loaded()
        self.embedder = get_embedder(self.loaded.model, recorded_engine(self.loaded.meta))
        self.vectors: dict[str, Any] = {}

    def embed(self, text: str) -> Any:
        if text not in self.vectors:
            self.vectors[text] = self.embedder.embed_query(text)
        return self.vectors[text]

    def ranked_sources(
        self,
        q: str,
        tokens: list[str],
        extra: dict[str, float],
        qvec: Any,
        translated: frozenset[str] = frozenset(),
    ) -> list[str]:
        """Sources of the fused top-50 chunks, best first, each once."""
        loaded, n = self.loaded, search.CANDIDATES
        dense = search.dense_candidates(loaded, qvec, n)
        lexical = search.lexical_candidates(loaded, [*tokens, *extra], n, extra)
        rows = loaded.chunks(list(dict.fromkeys(c for c, _ in dense + lexical)))
        sims = {c: v @ qvec for c, v in loaded.sentence_vectors(rows.values()).items()}
        dense = search.rescore_dense(dense, list(rows), sims)
        asked = [t for t in tokens if t not in translated]
        weight = search.lexical_weight(loaded.coverage([*asked, *extra]))
        weight *= search.lexical_distinctness(lexical)
        fused = search.fuse(dense, lexical, weight, len(rows))
        return list(dict.fromkeys(rows[h.chunk_id].source for h in fused))

    def run(self, q: str, v: Variant | None) -> tuple[list[str], int, int]:
        """(ranked sources, embedder calls, dictionary lookups) of one question."""
        loaded, shelf = self.loaded, self.shelf
        tokens = shelf.retriever().query_tokens(q)
        if v is None:  # what Shelf.query does now
            rendering = shelf.retriever().crosslingual(q, tokens)
            text = crossling.dense_text(q, rendering) or q
            extra = dict(rendering.terms) if rendering else {}
            lookups = rendering.lookups if rendering else 0
            done = rendering.translated if rendering else frozenset()
            return self.ranked_sources(q, tokens, extra, self.embed(text), done), 1, lookups
        if expansion.is_japanese(q):
            return self.ranked_sources(q, tokens, {}, self.embed(q)), 1, 0
        if v.levers == {"words"} and v.dense == "plain":  # main: the shipped word expansion
            extra = expansion.translations(q, tokens, loaded.idf, shelf.tokenizer.tokens)
            return (
                self.ranked_sources(q, tokens, extra, self.embed(q)),
                1,
                len(expansion.word_terms(tokens, loaded.idf, shelf.tokenizer.tokens)[0]),
            )
        full = crossling.render(
            q, tokens, loaded.idf, shelf.tokenizer.tokens, v.levers, v.lexical or v.levers
        )
        words = crossling.render(q, tokens, loaded.idf, shelf.tokenizer.tokens,
                                 frozenset({"words"}))  # fmt: skip
        extra = dict(words.terms if v.dense.endswith("-only") else full.terms)
        lookups = full.lookups
        embeds = 1
        qvec = self.embed(q)
        japanese = full.japanese(v.dense_levers)
        if v.dense.startswith("append") and japanese:
            qvec = self.embed(f"{q} {japanese}")
        elif v.dense.startswith("fuse") and japanese:
            both = qvec + self.embed(japanese)
            qvec = both / float((both @ both) ** 0.5)
            embeds = 2
        translated = full.translated if v.covered else frozenset()
        return self.ranked_sources(q, tokens, extra, qvec, translated), embeds, lookups


def scores(runs: Sequence[tuple[list[str], int, int]], qs: Sequence[Question]) -> dict[str, float]:
    n = len(qs)
    out = dict.fromkeys(COLS, 0.0)
    for (ranked, embeds, lookups), q in zip(runs, qs, strict=True):
        rank = ranked.index(q.source) + 1 if q.source in ranked else None
        out["hit@1"] += rank == 1
        out["hit@5"] += rank is not None and rank <= 5
        out["MRR@10"] += 1 / rank if rank is not None and rank <= 10 else 0.0
        out["recall@pool"] += rank is not None
        out["embeds/q"] += embeds
        out["lookups/q"] += lookups
    return {k: v / max(1, n) for k, v in out.items()} | {"n": n}


def fold(article: str, k: int = 5) -> int:
    return int(hashlib.sha1(article.encode()).hexdigest(), 16) % k


def cross_validate(
    per_variant: dict[str, list[tuple[list[str], int, int]]],
    qs: Sequence[Question],
    article: Callable[[str], str],
    k: int = 5,
) -> dict[str, Any]:
    """Pick the variant with the best MRR@10 on k-1 folds (split by article), score it
    on the held-out fold; the pooled held-out figures and the picks per fold."""
    picks: list[str] = []
    held: dict[int, tuple[list[str], int, int]] = {}
    for f in range(k):
        train = [i for i, q in enumerate(qs) if fold(article(q.id), k) != f]
        test = [i for i, q in enumerate(qs) if fold(article(q.id), k) == f]

        def mrr(name: str, idx: list[int] = train) -> float:
            runs = per_variant[name]
            return scores([runs[i] for i in idx], [qs[i] for i in idx])["MRR@10"]

        best = max(per_variant, key=mrr)
        picks.append(best)
        held.update({i: per_variant[best][i] for i in test})
    order = sorted(held)
    return {"picks": picks, **scores([held[i] for i in order], [qs[i] for i in order])}


def table(rows: Sequence[tuple[str, dict[str, float]]]) -> str:
    lines = ["| variant | " + " | ".join(COLS) + " |", "|---|" + "---|" * len(COLS)]
    for name, m in rows:
        lines.append(f"| {name} | " + " | ".join(f"{m[c]:.3f}" for c in COLS) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny shelf, 20 questions (CI)")
    ap.add_argument("--size", type=int, default=900, help="paragraphs on the shelf")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    size = 60 if args.smoke else args.size
    x = load_xling(size=size)
    en, ja = list(x.en), list(x.ja)
    if args.smoke:  # the questions whose paragraphs fit on a 60-paragraph shelf
        asked = sorted({q.source for q in en})[:size]
        en = [q for q in en if q.source in asked][:20]
        ja = [q for q in ja if q.id in {e.id for e in en}]
        corpus = CACHE / "xling" / "corpus-smoke"
        corpus.mkdir(parents=True, exist_ok=True)
        for q in en:
            if not (corpus / q.source).exists():
                (corpus / q.source).hardlink_to(x.corpus / q.source)
    else:
        corpus = x.corpus
    index = CACHE / "xling" / ("index-smoke" if args.smoke else f"index-{size}")
    shelf = Shelf(Settings.resolve(corpus=corpus, index=index))
    shelf.index()
    runner = Runner(shelf)
    per_variant: dict[str, list[tuple[list[str], int, int]]] = {}
    rows = []
    for v in VARIANTS:
        per_variant[v.name] = [runner.run(q.question, v) for q in en]
        rows.append((v.name, scores(per_variant[v.name], en)))
        print(f"{v.name}: MRR@10 {rows[-1][1]['MRR@10']:.3f}", file=sys.stderr)
    shipped_en = [runner.run(q.question, None) for q in en]
    rows.append(("shipped (Shelf.query)", scores(shipped_en, en)))
    ja_main = scores([runner.run(q.question, VARIANTS[0]) for q in ja], ja)
    ja_shipped = scores([runner.run(q.question, None) for q in ja], ja)
    cv = cross_validate(per_variant, en, lambda i: x.article[i])
    out = {
        "shelf": {"paragraphs": len(list(corpus.iterdir())), "size": size, "smoke": args.smoke},
        "english": dict(rows),
        "english_cv_pick": cv,
        "japanese": {"main": ja_main, "shipped": ja_shipped},
    }
    print("English questions, hybrid\n" + table(rows))
    print(f"\ncross-validated pick (5 folds by article): {cv['picks']}")
    print(table([("held-out folds", cv)]))
    print("\nJapanese questions, hybrid\n"
          + table([("main", ja_main), ("shipped", ja_shipped)]))  # fmt: skip
    if not args.smoke:
        args.out.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", "utf-8")


if __name__ == "__main__":
    main()
