"""The chat prompt for `bunko ask`: numbered passages and strict answering rules."""

from __future__ import annotations

from collections.abc import Sequence

from bunko.text import JAPANESE
from bunko.types import Passage


def language_of(question: str) -> str:
    """'Japanese' when the question has kana or kanji, else 'English'."""
    return "Japanese" if JAPANESE.search(question) else "English"


SYSTEM = (
    "You answer questions using only the numbered passages the user gives you. "
    "Cite every statement with the number of the passage it comes from, written as [n] "
    "(for example [1] or [2][3]); cite only numbers that appear in the list. "
    "When you quote a passage, copy the words exactly inside 「」 or double quotes. "
    "If the passages do not contain the answer, say so plainly and do not guess. "
    "Be brief: a few sentences."
)


def no_answer_text(question: str) -> str:
    """What `ask` says when the corpus has no answer, in the question's language."""
    if language_of(question) == "Japanese":
        return "コーパスの中に、この質問に答える記述は見つかりませんでした。"
    return "The corpus does not contain an answer to this question."


def build_messages(question: str, passages: Sequence[Passage]) -> list[dict[str, str]]:
    """System and user messages; passage ``n`` is the n-th result of ``bunko query``."""
    blocks = []
    for n, p in enumerate(passages, 1):
        c = p.citation
        head = f" › {c.heading}" if c.heading else ""
        blocks.append(
            f"[{n}] {c.title}{head} ({c.source}:{c.line_start}-{c.line_end})\n{p.text.strip()}"
        )
    lang = language_of(question)
    user = (
        "Passages:\n\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question}\n\n"
        f"Answer in {lang}, only from the passages above, citing them as [n]. "
        "If they do not answer the question, say so."
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
