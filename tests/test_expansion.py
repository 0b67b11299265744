"""Lexical query expansion: English questions over Japanese text through JMdict."""

from __future__ import annotations

import importlib.util
import logging
import sqlite3
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from bunko.api import Shelf
from bunko.config import Settings
from bunko.index.lexical import LexicalIndex
from bunko.retrieval import expansion
from bunko.retrieval.expansion import Dictionary, translations
from bunko.text import Tokenizer


def _corpus(tmp_path: Path) -> Path:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    texts = {
        "infra.md": "# 計算基盤\n\n大規模モデルの訓練では、インフラは研究と同じくらい重要です。",
        "sushi.md": "# 寿司\n\n江戸前寿司は東京湾の魚介を使った握り寿司です。",
        "coffee.md": "# 珈琲\n\n浅煎りの豆は酸味が強く、深煎りの豆は苦味が強くなります。",
        "fuji.md": "# 富士山\n\n富士山は日本で最も高い山で、標高は3776メートルです。",
        "tea.md": "# 緑茶\n\n緑茶は茶葉を蒸して発酵を止めることで作られます。",
    }
    for name, text in texts.items():
        (corpus / name).write_text(text + "\n", "utf-8")
    return corpus


def test_english_question_finds_japanese_article_through_translated_words(
    tmp_path: Path,
) -> None:
    shelf = Shelf(Settings.resolve(corpus=_corpus(tmp_path), index=tmp_path / "index"))
    shelf.index()
    question = "Why is infrastructure as important as research?"
    loaded = shelf.loaded()
    q_tokens = shelf.tokenizer.tokens(question)
    assert loaded.coverage(q_tokens) == 0.0  # BM25 alone shares no word with the corpus
    extra = shelf.retriever().expansion(question, q_tokens)
    assert {"インフラ", "研究"} <= extra.keys()
    assert all(0 < w <= expansion.TRANSLATION_WEIGHT for w in extra.values())
    result = shelf.query(question, k=2, mode="lexical")
    assert result.passages[0].citation.source == "infra.md"
    hybrid = shelf.query(question, k=1, mode="hybrid", explain=True)
    assert hybrid.passages[0].citation.source == "infra.md"
    explain = hybrid.passages[0].explain
    assert explain is not None and explain.lexical_weight > 0  # the lexical side now counts


def test_japanese_question_gets_no_translation(tmp_path: Path) -> None:
    tok = Tokenizer()
    index = LexicalIndex.build([tok.tokens("インフラと研究")])
    question = "インフラとは何ですか？"

    def known(tokens: list[str] | tuple[str, ...]) -> dict[str, float]:
        return index.bm25.idf(tokens)

    assert translations(question, tok.tokens(question), known, tok.tokens) == {}


def test_words_the_corpus_knows_are_not_translated(tmp_path: Path) -> None:
    # English text over English articles: nothing to translate, nothing looked up.
    tok = Tokenizer()
    index = LexicalIndex.build([tok.tokens("Research infrastructure matters")])
    question = "Why research infrastructure matters?"
    lookups: list[str] = []

    class Recording(Dictionary):
        def entries(self, word: str) -> list[tuple[str, float]]:
            lookups.append(word)
            return super().entries(word)

    got = translations(question, tok.tokens(question), index.bm25.idf, tok.tokens, Recording())
    assert got == {} and lookups == []


def _tiny_jmdict(path: Path) -> None:
    """A JMdict database with jamdict-data's schema (the tables a lookup reads), turned
    into bunko's compact file by the script that builds the shipped one."""
    source = path.with_name(path.name + ".jamdict")
    db = sqlite3.connect(source)
    db.executescript(
        """
        CREATE TABLE Sense (ID INTEGER PRIMARY KEY, idseq INTEGER);
        CREATE TABLE SenseGloss (sid INTEGER, lang TEXT, gend TEXT, text TEXT);
        CREATE TABLE Kanji (ID INTEGER PRIMARY KEY, idseq INTEGER, text TEXT);
        CREATE TABLE Kana (ID INTEGER PRIMARY KEY, idseq INTEGER, text TEXT, nokanji BOOLEAN);
        CREATE TABLE KJP (kid INTEGER, text TEXT);
        CREATE TABLE KNP (kid INTEGER, text TEXT);
        -- 研究: common (news1), "research" in its first sense
        INSERT INTO Sense VALUES (1, 100);
        INSERT INTO SenseGloss VALUES (1, 'eng', NULL, 'research');
        INSERT INTO Kanji VALUES (1, 100, '研究'); INSERT INTO KJP VALUES (1, 'news1');
        -- 討究: no priority tag, first sense
        INSERT INTO Sense VALUES (2, 200);
        INSERT INTO SenseGloss VALUES (2, 'eng', NULL, 'research');
        INSERT INTO Kanji VALUES (2, 200, '討究');
        -- 調査: common, but "research" only in its second sense
        INSERT INTO Sense VALUES (3, 300); INSERT INTO Sense VALUES (4, 300);
        INSERT INTO SenseGloss VALUES (3, 'eng', NULL, 'investigation');
        INSERT INTO SenseGloss VALUES (4, 'eng', NULL, 'research');
        INSERT INTO Kanji VALUES (3, 300, '調査'); INSERT INTO KJP VALUES (3, 'ichi1');
        -- a verb: the gloss is "to train"; kana-only headword
        INSERT INTO Sense VALUES (5, 400);
        INSERT INTO SenseGloss VALUES (5, 'eng', NULL, 'to train');
        INSERT INTO Kana VALUES (1, 400, 'トレーニング', 0); INSERT INTO KNP VALUES (1, 'gai1');
        """
    )
    db.commit()
    db.close()
    build_jmdict().build(str(source), path, names="none")


def build_jmdict() -> ModuleType:
    """tools/build_jmdict.py, the script that builds bunko/data/jmdict.sqlite."""
    path = Path(__file__).resolve().parents[1] / "tools" / "build_jmdict.py"
    spec = importlib.util.spec_from_file_location("build_jmdict", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ambiguity_weights_from_priority_and_sense(tmp_path: Path) -> None:
    _tiny_jmdict(tmp_path / "jm.db")
    jm = Dictionary(str(tmp_path / "jm.db"))
    assert dict(jm.entries("research")) == {"研究": 1.0, "討究": 0.25, "調査": 0.5}
    assert dict(jm.entries("trained")) == {"トレーニング": 1.0}  # stem + "to ..."
    tok = Tokenizer()
    index = LexicalIndex.build([tok.tokens(t) for t in ["研究の話", "討究する", "調査結果"]])
    question = "What research?"
    got = translations(question, tok.tokens(question), index.bm25.idf, tok.tokens, jm)
    w = expansion.TRANSLATION_WEIGHT
    assert got == pytest.approx({"研究": w, "討究": w * 0.25, "調査": w * 0.5})


def test_dictionary_answers_from_worker_threads(tmp_path: Path) -> None:
    # The MCP server and the web app run queries in worker threads; an SQLite
    # connection may only be used by the thread that opened it.
    from concurrent.futures import ThreadPoolExecutor

    _tiny_jmdict(tmp_path / "jm.db")
    jm = Dictionary(str(tmp_path / "jm.db"))
    assert jm.entries("research")
    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(jm.entries, ["train", "investigation"]))
    assert got == [[("トレーニング", 1.0)], [("調査", 1.0)]]


def test_unreadable_dictionary_means_no_translation_not_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "broken.db").write_bytes(b"not a database")
    jm = Dictionary(str(tmp_path / "broken.db"))
    with caplog.at_level(logging.WARNING):
        assert jm.entries("research") == []
    assert "no translated words" in caplog.text


def test_only_non_japanese_questions_load_the_dictionary(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    Shelf(Settings.resolve(corpus=corpus, index=tmp_path / "index")).index()

    def printed_after(question: str) -> set[str]:
        code = (
            "from bunko.cli import app\n"
            "try:\n"
            f"    app(['query', {question!r}, '--corpus', {str(corpus)!r}, '--index', "
            f"{str(tmp_path / 'index')!r}, '--no-update'])\n"
            "except SystemExit as exit:\n    assert exit.code in (0, None), exit.code\n"
            "from bunko.retrieval import expansion\n"
            "jm = expansion._dictionary\n"
            "print('JMDICT-OPEN' if jm and getattr(jm._local, 'db', None) else '')"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        return set(out.stdout.split())

    assert "JMDICT-OPEN" not in printed_after("インフラはなぜ重要ですか？")
    assert "JMDICT-OPEN" in printed_after("Why is infrastructure important?")


ARTICLES = Path(__file__).parent / "data" / "articles"  # a copy of the shipped corpus


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Shelf:
    root = tmp_path_factory.mktemp("shipped")
    shelf = Shelf(Settings.resolve(corpus=ARTICLES, index=root / "index"))
    shelf.index()
    return shelf


def test_readme_o1_example_finds_the_o1_article(shipped: Shelf) -> None:
    # The articles spell the model "01"; a DeepSeek R1 passage says 「o1」 and 訓練, so
    # BM25 alone prefers it. The digit spelling and the distinctness back-off
    # (search.lexical_distinctness) must leave the o1 article first.
    # Since the answer stage orders places by answer probability, a DeepSeek R1 passage
    # that names 「o1」 as written ranks first and the o1 article second: a known
    # regression (docs/answer-stage.md). The o1 article must stay in the first two.
    # Whether the query is judged answerable is not pinned: its first place (the DeepSeek
    # R1 passage) sits at the threshold, 0.47-0.62 across fits and engine graphs.
    result = shipped.query("o1はどのように訓練されましたか？", k=3, mode="hybrid", update=False)
    assert "002_e737c20070cc9f8e.txt" in [p.citation.source for p in result.passages[:2]]
    assert result.answerable == (result.passages[0].confidence >= result.min_confidence)


def test_english_question_over_the_shipped_articles_uses_translations(shipped: Shelf) -> None:
    question = "Which company released the image generation model?"
    loaded = shipped.loaded()
    q_tokens = shipped.tokenizer.tokens(question)
    extra = shipped.retriever().expansion(question, q_tokens)
    assert {"画像", "生成", "モデル"} <= extra.keys()  # JMdict: image, generation, model
    assert loaded.coverage([*q_tokens, *extra]) > loaded.coverage(q_tokens)
    lexical = shipped.query(question, k=3, mode="lexical", update=False)
    assert any("画像生成" in p.text for p in lexical.passages)


def test_bm25_term_weights_scale_only_their_terms() -> None:
    tok = Tokenizer()
    texts = ["インフラの研究", "研究の予算", "寿司の話"]
    index = LexicalIndex.build([tok.tokens(t) for t in texts])
    plain = index.bm25.scores(["インフラ", "研究"])[0]
    alone = {t: index.bm25.scores([t])[0] for t in ("インフラ", "研究")}
    half = index.bm25.scores(["インフラ", "研究"], {"インフラ": 0.5})[0]
    assert half == pytest.approx(0.5 * alone["インフラ"] + alone["研究"])
    assert plain == pytest.approx(alone["インフラ"] + alone["研究"])
    assert half[2] == 0.0
