"""Public Japanese QA sets turned into bunko corpora, with where each answer lies.

Every paragraph becomes one Markdown file, ``# <title>`` then the paragraph, so
bunko reads it with its own ingestion and chunker. For each question we keep the
file and the character span(s) of its answer in that file, so that a hit can be
judged as "a retrieved chunk of the question's own paragraph that contains the
answer span".
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

SHARED = Path(os.environ.get("BUNKO_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
BENCH = SHARED / "bench-data"
CACHE = Path(__file__).resolve().parent / ".cache"

FILES = {
    "jsquad-valid": [BENCH / "jsquad-valid-v1.1.json"],
    "jsquad-test": [BENCH / "jsquad-test-v1.3.json"],  # held out: report once, never tune
    "jaquad-dev": sorted((BENCH / "jaquad-dev-v0.1.0").glob("jaquad_dev_*.json")),
}


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    source: str  # file name in the corpus
    spans: tuple[tuple[int, int], ...]  # answer spans, char offsets in the file text


def prepare(name: str, corpus: Path | None = None) -> tuple[Path, list[Question]]:
    """Write the corpus files (once) and return the folder and all questions."""
    corpus = corpus or CACHE / name / "corpus"
    write = not corpus.is_dir()
    if write:
        corpus.mkdir(parents=True)
    questions: list[Question] = []
    n = 0
    for path in FILES[name]:
        data = json.loads(path.read_text("utf-8"))
        for article in data["data"]:
            for para in article["paragraphs"]:
                ctx: str = para["context"]
                title = article["title"]
                body_at = 0
                if " [SEP] " in ctx:  # JSQuAD: "<title> [SEP] <body>"
                    title, _, _ = ctx.partition(" [SEP] ")
                    body_at = len(title) + len(" [SEP] ")
                head = f"# {title}\n\n"
                text = head + ctx[body_at:] + "\n"
                source = f"p{n:05d}.md"
                n += 1
                if write:
                    (corpus / source).write_text(text, "utf-8")
                shift = len(head) - body_at
                for qa in para["qas"]:
                    spans = []
                    for ans in qa["answers"]:
                        start = int(ans["answer_start"])
                        # An answer inside the JSQuAD title lies in the "# title" line.
                        start += 2 if start < body_at else shift
                        end = start + len(ans["text"])
                        if text[start:end] == ans["text"]:
                            spans.append((start, end))
                    if spans:
                        questions.append(Question(qa["id"], qa["question"], source, tuple(spans)))
    return corpus, questions


def sample(questions: list[Question], size: int | None, seed: int = 0) -> list[Question]:
    """A fixed random sample (the same for every run with the same seed)."""
    if size is None or size >= len(questions):
        return questions
    return random.Random(seed).sample(questions, size)


# The cross-lingual set (eval/XLING.md): English questions translated by hand from
# JSQuAD valid and JaQuAD dev, over one shelf of both sets' paragraphs.
EVAL = Path(__file__).resolve().parents[1] / "eval"
XLING_SETS = ("jsquad-valid", "jaquad-dev")


@dataclass(frozen=True)
class XLing:
    """The cross-lingual shelf and its questions.

    ``en`` and ``ja`` hold the same answerable questions (same ids, same
    sources and spans), in English and in their original Japanese. The
    unanswerable ones come from held-out articles, whose paragraphs are not in
    ``corpus``; their ``source`` names the file they would have had.
    """

    corpus: Path
    en: tuple[Question, ...]
    ja: tuple[Question, ...]
    unanswerable_en: tuple[Question, ...]
    unanswerable_ja: tuple[Question, ...]
    held_out: dict[str, tuple[str, ...]]  # dataset -> held-out article titles
    article: dict[str, str]  # question id -> "dataset/title", for folds split by article


def _read_jsonl(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def link_shelf(folder: Path, files: dict[str, Path]) -> None:
    """Make ``folder`` hold exactly ``files`` (name -> file), as hard links: kept in step
    with a question set, and a shelf built again only for what changed."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in folder.iterdir():
        if path.name not in files:
            path.unlink()
    for name in sorted(files):
        if not (folder / name).exists():
            os.link(files[name], folder / name)


def load_xling(cache: Path | None = None, size: int | None = None) -> XLing:
    """Write the cross-lingual shelf (kept in step with the files) and return it with its questions.

    The shelf is every paragraph of JSQuAD valid and JaQuAD dev, as written by
    :func:`prepare`, except those of the held-out articles; files are named
    ``<dataset>-<file>`` (``jaquad-dev-p00012.md``) so the two sets share one folder.
    With ``size``, the shelf keeps every paragraph an answerable question asks
    about plus a seeded sample of the others, ``size`` paragraphs in all.
    """
    cache = cache or CACHE
    held = json.loads((EVAL / "xling-heldout-articles.json").read_text("utf-8"))
    by_id: dict[str, Question] = {}
    title_of: dict[str, str] = {}
    files: dict[str, Path] = {}
    for name in XLING_SETS:
        corpus, questions = prepare(name, cache / name / "corpus")
        for path in sorted(corpus.iterdir()):
            source = f"{name}-{path.name}"
            title_of[source] = path.read_text("utf-8").split("\n", 1)[0][2:]
            if title_of[source] not in held[name]:
                files[source] = path
        for q in questions:
            by_id[f"{name}:{q.id}"] = Question(q.id, q.question, f"{name}-{q.source}", q.spans)
    out: dict[bool, tuple[list[Question], list[Question]]] = {True: ([], []), False: ([], [])}
    article: dict[str, str] = {}
    for file, answerable in (("xling-en.jsonl", True), ("xling-en-unanswerable.jsonl", False)):
        for d in _read_jsonl(EVAL / file):
            q = by_id[f"{d['set']}:{d['qid']}"]
            en, ja = out[answerable]
            en.append(Question(d["id"], d["en"], q.source, q.spans))
            ja.append(Question(d["id"], q.question, q.source, q.spans))
            article[d["id"]] = f"{d['set']}/{title_of[q.source]}"
    keep = set(files)
    if size is not None:
        asked = {q.source for q in out[True][0]}
        others = sorted(keep - asked)
        keep = asked | set(
            random.Random(0).sample(others, max(0, min(len(others), size - len(asked))))
        )
    shelf = cache / "xling" / ("corpus" if size is None else f"corpus-{size}")
    link_shelf(shelf, {source: files[source] for source in keep})
    return XLing(
        corpus=shelf,
        en=tuple(out[True][0]),
        ja=tuple(out[True][1]),
        unanswerable_en=tuple(out[False][0]),
        unanswerable_ja=tuple(out[False][1]),
        held_out={name: tuple(held[name]) for name in XLING_SETS},
        article=article,
    )
