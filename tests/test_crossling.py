"""An English question's Japanese rendering: names, phrases, dates, words (real JMdict)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bunko.api import Shelf
from bunko.config import Settings
from bunko.retrieval import crossling, translate
from bunko.retrieval.crossling import japanese_dates, names_for, phrase_for
from bunko.retrieval.query import QUERY_PROMPT_ROOM, QueryRequest, Retriever
from reliability_helpers import child_env


def test_names_fold_macrons_and_long_vowels() -> None:
    assert "九条道家" in names_for("Kujou Michiie")
    assert names_for("Kujō Michiie") == names_for("Kujou Michiie")
    assert "九条道家" in names_for("Kujo Michiie")  # no macron: the long vowel is tried too
    assert "徳川家康" in names_for("Tokugawa Ieyasu")
    assert names_for("Qwzx Blorp") == ()


def test_phrases_match_whole_glosses_and_ignore_their_notes() -> None:
    # JMdict's gloss is "Science and Technology Agency (1956-2001)"
    assert phrase_for("Science and Technology Agency") == ("科学技術庁",)
    assert "梅雨" in phrase_for("rainy season")
    assert phrase_for("Science and Technology") == ()  # a prefix of a gloss is no match


def test_dates_and_numbers_written_the_japanese_way() -> None:
    got = japanese_dates(
        "What happened on March 11, 1960, in the 3rd century, in the 1920s, "
        "on 21 June 1582 and in 1868 to 35,000 people?"
    )
    assert got == ["1960年3月11日", "3世紀", "1920年代", "1582年6月21日", "1868年", "35000"]
    assert japanese_dates("How tall is it?") == []


def _corpus(tmp_path: Path) -> Path:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    texts = {
        "kujo.md": "# 九条道家\n\n九条道家は鎌倉時代前期の公卿である。父は九条良経。",
        "agency.md": "# 科学技術庁\n\n科学技術庁は1956年に総理府の外局として設置された。",
        "quake.md": "# 地震\n\n1960年3月11日に大きな地震が起きた。",
        "tea.md": "# 緑茶\n\n緑茶は茶葉を蒸して発酵を止めることで作られます。",
    }
    for name, text in texts.items():
        (corpus / name).write_text(text + "\n", "utf-8")
    return corpus


def test_render_finds_names_phrases_and_dates_the_corpus_knows(tmp_path: Path) -> None:
    shelf = Shelf(Settings.resolve(corpus=_corpus(tmp_path), index=tmp_path / "index"))
    shelf.index()
    loaded = shelf.loaded()
    q = "Who was Kujō Michiie's father, and when was the Science and Technology Agency set up?"
    tokens = shelf.tokenizer.tokens(q)
    r = shelf.retriever().crosslingual(q, tokens)
    assert r is not None and r.lookups > 0
    forms = {(lever, f) for lever, _, f in r.found}
    assert ("names", "九条道家") in forms and ("phrases", "科学技術庁") in forms
    assert {"九条", "道家", "科学", "技術", "庁"} <= r.terms.keys()
    assert all(t in loaded.idf([t]) for t in r.terms)  # only terms the corpus knows
    text = crossling.dense_text(q, r)
    assert text is not None and text.startswith(q) and "九条道家" in text
    # One lever alone finds only its own kind.
    dates_only = crossling.render("What happened on March 11, 1960?", shelf.tokenizer.tokens(
        "What happened on March 11, 1960?"), loaded.idf, shelf.tokenizer.tokens,
        frozenset({"dates"}))  # fmt: skip
    assert [f for _, _, f in dates_only.found] == ["1960年3月11日"] and dates_only.lookups == 0
    top = shelf.query("Who was Kujō Michiie's father?", k=1)
    assert top.passages[0].citation.source == "kujo.md"


class _Counting:
    """The real embedder, recording what is counted and what is embedded."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.max_tokens = inner.max_tokens
        self.counted: list[str] = []
        self.embedded: list[str] = []

    def count_tokens(self, text: str) -> int:
        self.counted.append(text)
        return int(self.inner.count_tokens(text))

    def embed_query(self, text: str) -> Any:
        self.embedded.append(text)
        return self.inner.embed_query(text)


def test_the_dense_side_appends_names_phrases_and_dates_not_word_glosses(tmp_path: Path) -> None:
    shelf = Shelf(Settings.resolve(corpus=_corpus(tmp_path), index=tmp_path / "index"))
    shelf.index()
    live = shelf.retriever()
    q = "Who was Kujō Michiie's father and what era did he live in?"
    r = live.crosslingual(q, live.query_tokens(q))
    assert r is not None
    assert {("names", "九条道家"), ("words", "時代")} <= {(lever, f) for lever, _, f in r.found}
    assert "時代" in r.terms  # the word gloss still feeds BM25 ...
    assert crossling.dense_text(q, r) == f"{q} 九条道家"  # ... but is not embedded
    # Counted once and embedded once: the question is the start of the text, so a text
    # that fits means a question that fits.
    counting = _Counting(live.embedder)
    retriever = Retriever(live.snapshot, counting, live.tokenizer, live.corpus)  # type: ignore[arg-type]
    top = retriever.answer(QueryRequest(q, k=1))
    assert counting.counted == counting.embedded == [f"{q} 九条道家"]
    assert top.passages[0].citation.source == "kujo.md"
    # A question that fills the window exactly: its rendering no longer fits, so the
    # question alone is embedded.
    limit = counting.max_tokens - QUERY_PROMPT_ROOM
    filler = 0
    while counting.inner.count_tokens("well " * filler + q) < limit:
        filler += 1
    full = "well " * filler + q
    assert counting.inner.count_tokens(full) == limit
    counting.counted.clear()
    counting.embedded.clear()
    retriever.answer(QueryRequest(full, k=1))
    assert counting.counted == [f"{full} 九条道家", full] and counting.embedded == [full]


def test_japanese_questions_never_open_the_dictionary(tmp_path: Path) -> None:
    shelf = Shelf(Settings.resolve(corpus=_corpus(tmp_path), index=tmp_path / "index"))
    shelf.index()
    crossling.names_for.cache_clear()
    crossling.phrase_for.cache_clear()
    translate.translations.cache_clear()
    for q in ("九条道家の父は誰ですか？", "九条道家（Michiie）は1193年にどこで生まれましたか？"):
        assert shelf.retriever().crosslingual(q, shelf.tokenizer.tokens(q)) is None
        shelf.query(q, k=5)
    assert crossling.names_for.cache_info().misses == 0
    assert crossling.phrase_for.cache_info().misses == 0
    # Nor does the answer stage look up its Latin names or numbers (name coverage).
    assert translate.translations.cache_info().misses == 0


@pytest.mark.slow
def test_xling_benchmark_smoke() -> None:
    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    res = subprocess.run(
        [sys.executable, str(bench / "xling.py"), "--smoke"],
        capture_output=True, text=True, env=child_env(), timeout=900, cwd=bench.parent,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert "| main (JMdict words)" in res.stdout and "Japanese questions" in res.stdout
