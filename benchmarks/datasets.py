"""Public Japanese QA sets turned into bunko corpora, with where each answer lies.

Every paragraph becomes one Markdown file, ``# <title>`` then the paragraph, so
bunko reads it with its own ingestion and chunker. For each question we keep the
file and the character span(s) of its answer in that file, so that a hit can be
judged as "a retrieved chunk of the question's own paragraph that contains the
answer span".
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
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
