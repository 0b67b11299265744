"""Pick the Japanese questions behind the hand-translated cross-lingual set.

Run once to list candidates for translation (the translations themselves were
written by hand and live in ``eval/xling-en*.jsonl``):

    python benchmarks/xling_pick.py > /tmp/xling-candidates.txt

Held-out articles: per dataset, the article titles (the ``# title`` line of the
corpus files written by ``datasets.prepare``) sorted, then
``random.Random(SEED).sample(titles, round(HOLDOUT * len(titles)))``.
Answerable candidates: for every other article, its paragraphs shuffled with
``random.Random(f"{SEED}:{set}:{title}")`` and one question drawn from each
paragraph in turn, so the first questions of an article come from different
paragraphs; questions are then taken round-robin over articles.
"""

from __future__ import annotations

import random
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from datasets import Question, prepare

SEED = 23
HOLDOUT = 0.1
SETS = ("jsquad-valid", "jaquad-dev")


def titles_of(corpus: Path) -> dict[str, str]:
    """Corpus file name -> article title (the file's ``# title`` line)."""
    return {f.name: f.read_text("utf-8").split("\n", 1)[0][2:] for f in sorted(corpus.iterdir())}


def held_out(name: str) -> list[str]:
    """The held-out article titles of one dataset (seeded, see the module docstring)."""
    corpus, _ = prepare(name)
    titles = sorted(set(titles_of(corpus).values()))
    return sorted(random.Random(SEED).sample(titles, round(HOLDOUT * len(titles))))


def per_article(name: str) -> dict[str, list[Question]]:
    """Article title -> its questions in pick order (one per paragraph per round)."""
    corpus, questions = prepare(name)
    titles = titles_of(corpus)
    by_para: dict[str, dict[str, list[Question]]] = defaultdict(lambda: defaultdict(list))
    for q in questions:
        by_para[titles[q.source]][q.source].append(q)
    out: dict[str, list[Question]] = {}
    for title in sorted(by_para):
        rng = random.Random(f"{SEED}:{name}:{title}")
        paras = sorted(by_para[title])
        rng.shuffle(paras)
        pools = [rng.sample(by_para[title][p], len(by_para[title][p])) for p in paras]
        order: list[Question] = []
        while any(pools):
            for pool in pools:
                if pool:
                    order.append(pool.pop())
        out[title] = order
    return out


def main() -> None:
    for name in SETS:
        corpus, _ = prepare(name)
        held = set(held_out(name))
        arts = per_article(name)
        for title, qs in arts.items():
            tag = "HELD" if title in held else "ANS"
            for rank, q in enumerate(qs[: 16 if tag == "HELD" else 7]):
                text = (corpus / q.source).read_text("utf-8")
                s, e = q.spans[0]
                snip = text[max(len(title) + 4, s - 60) : e + 30].replace("\n", " ")
                ans = text[s:e]
                print(f"{tag}\t{name}\t{title}\t{rank}\t{q.id}\t{q.question}\t{ans}\t{snip}")


if __name__ == "__main__":
    main()
