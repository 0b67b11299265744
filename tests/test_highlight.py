"""The highlight: its features (real fugashi tokens), its choice, and real queries."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bunko.api import Shelf
from bunko.config import Settings
from bunko.retrieval import highlight as hl
from bunko.text import Tokenizer
from conftest import DATA


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer()


def _choose(tok: Tokenizer, q: str, sents: list[str], idf: dict[str, float],
            sims: np.ndarray | None = None, gaps: dict[int, int] | None = None,
            ) -> tuple[int, int]:  # fmt: skip
    """``gaps``: characters before sentence i (default 1, a line break; 2: a blank line)."""
    spans, at = [], 0
    for i, s in enumerate(sents):
        at += (gaps or {}).get(i, 1) if i else 0
        spans.append((at, at + len(s)))
        at += len(s)
    return hl.choose(q, tok.tokens(q), sents, tok.tokens_many(sents), spans, idf, sims,
                     hl.is_cross(q, "".join(sents)), tok)  # fmt: skip


@pytest.mark.parametrize(
    ("question", "cues"),
    [
        ("最後の噴火はいつですか？", (True, False, False, False)),
        ("富士山の標高は何メートル？", (False, True, False, False)),
        ("How many models were announced?", (False, True, False, False)),
        ("In what year was it founded?", (True, False, False, False)),
        ("本能寺の変で信長を討ったのは誰？", (False, False, True, False)),
        ("Where is the temple?", (False, False, False, True)),
        ("寿司の起源は？", (False, False, False, False)),
    ],
)
def test_question_cues(question: str, cues: tuple[bool, ...]) -> None:
    assert hl.question_cues(question) == cues


def test_answer_cues_find_dates_numbers_and_new_names(tok: Tokenizer) -> None:
    sents = [
        "本能寺の変は1582年に起きた。",
        "明智光秀が織田信長を討った。",
        "京都の寺である。",
        "とても有名だ。",
    ]
    cues = hl.answer_cues(sents, tok, "織田信長を討ったのは誰？")
    assert cues[0][:2] == (True, True)  # a year is a date and a number
    assert cues[1][2]  # 明智光秀 is a person the question does not name
    assert cues[2][3] and not cues[2][2]  # 京都 is a place
    assert cues[3] == (False, False, False, False)
    # 織田信長 alone names nobody new
    assert not hl.answer_cues(["織田信長がいた。"], tok, "織田信長を討ったのは誰？")[0][2]


def test_a_temperature_question_wants_degrees_not_any_number() -> None:
    sents = ["The loaf feeds 4 people.", "Preheat the oven to 250 °C.", "Bake it well."]
    number = [c[1] for c in hl.answer_cues(sents, None, "What temperature to bake it?")]
    assert number == [False, True, False]
    count = [c[1] for c in hl.answer_cues(sents, None, "How many people does it feed?")]
    assert count == [True, True, False]


def test_features_rows_and_columns(tok: Tokenizer) -> None:
    sents = ["# 富士山", "最後の噴火は1707年の宝永噴火です。", "山頂は寒いです。"]
    q = "最後の噴火はいつ？"
    sims = np.array([0.80, 0.90, 0.70], dtype=np.float32)
    x = hl.features(q, tok.tokens(q), sents, tok.tokens_many(sents), {"噴火": 3.0}, sims, False,
                    hl.answer_cues(sents, tok, q))  # fmt: skip
    col = {name: x[:, i] for i, name in enumerate(hl.FEATURES)}
    assert x.shape == (3, len(hl.FEATURES))
    assert col["lex"][1] == 1.0 and col["lex_top"].tolist() == [0, 1, 0]
    assert col["cos"].tolist() == pytest.approx([0.5, 1.0, 0.0])
    assert col["cos_gap"][1] == 0.0 and col["cos_gap"][2] == pytest.approx(-0.2)
    assert col["heading"].tolist() == [1, 0, 0] and col["tiny"].tolist() == [0, 0, 0]
    assert col["cue_date"].tolist() == [0, 1, 0]
    assert col["prev_lex"][2] == 1.0 and col["next_lex"][0] == 1.0
    assert col["novel"][0] == 1.0 and 0 < col["novel"][1] < 1  # 富士山 is all new


def test_choose_prefers_the_sentence_with_the_rare_shared_words(tok: Tokenizer) -> None:
    sents = ["最後の噴火", "今日は晴れです。", "最後の噴火は1707年の宝永噴火です。",
             "山頂は寒いです。江戸時代の記録もあります。"]  # fmt: skip
    # The heading restates the question and 晴れ says nothing: the highlight starts at
    # the answer (the next sentence, with a date of its own, may join it).
    assert _choose(tok, "最後の噴火はいつ？", sents, {"噴火": 3.0})[0] == 2


def test_choose_follows_sentence_cosines_across_languages(tok: Tokenizer) -> None:
    sents = [
        "今日は晴れで、風もなく穏やかな一日でした。",
        "宝永噴火は1707年に起きた大きな噴火です。",
    ]
    sims = np.array([0.70, 0.85], dtype=np.float32)
    _, last = _choose(tok, "When was the last eruption?", sents, {}, sims)
    assert last == 1


def test_two_joined_sentences_stay_under_the_bound(tok: Tokenizer) -> None:
    long = "噴火の記録は多く残っています" * 12 + "。"
    sents = [long, long, "最後の噴火は1707年です。", long]
    sims = np.array([0.8, 0.8, 0.8, 0.8], dtype=np.float32)
    spans, at = [], 0
    for s in sents:
        spans.append((at, at + len(s)))
        at += len(s) + 1
    for q in ("噴火の記録は？", "最後の噴火はいつ？"):
        first, last = hl.choose(q, tok.tokens(q), sents, tok.tokens_many(sents), spans,
                                {"噴火": 3.0}, sims, False, tok)  # fmt: skip
        assert last - first <= 1
        assert first == last or spans[last][1] - spans[first][0] <= hl.MAX_CHARS


def test_a_heading_or_label_line_gives_way_to_what_follows(tok: Tokenizer) -> None:
    # The line restating the question introduces the answer: the two items after it.
    sents = [
        "二つのモデルが発表されました：",
        "o1-previewです。",
        "o1-miniです。",
        "価格は未定です。",
    ]
    q = "発表された二つのモデルは？"
    assert _choose(tok, q, sents, {"モデル": 2.0, "発表": 2.0}) == (1, 2)


def test_a_short_best_sentence_takes_the_next_one(tok: Tokenizer) -> None:
    sents = [
        "天気の話です。",
        "噴火は二回ありました。",
        "一回目は864年、二回目は1707年です。",
        "山は高い。",
    ]
    first, last = _choose(tok, "噴火は何回ありましたか？", sents, {"噴火": 3.0})
    assert (first, last) == (1, 2)


def test_a_short_best_sentence_may_take_the_one_before(tok: Tokenizer) -> None:
    sents = ["宝永噴火では江戸にも火山灰が降りました。", "最後の噴火です。", "山頂は寒いです。"]
    assert _choose(tok, "最後の噴火では何が起きましたか？", sents, {"噴火": 3.0}) == (0, 1)


def test_weights_match_the_features() -> None:
    assert set(hl.WEIGHTS) == set(hl.FEATURES) == set(hl.WEIGHTS_CROSS)
    # The cross weights read words too: an English question's tokens carry its rendering.
    for w in (hl.WEIGHTS, hl.WEIGHTS_CROSS):
        assert w["lex"] + w["lex_rest"] > 0


def test_an_english_question_matches_its_rendered_words(tok: Tokenizer) -> None:
    # Same cosines everywhere: the Japanese term of the rendering ("support" -> サポート)
    # finds the sentence; the English words alone match nothing.
    q = "Which features does it not support yet?"
    sents = [
        "価格はとても高く、競合するほかのモデルの三倍近くになっています。",
        "音声はまだサポートしていません。",
        "応答の速度は遅く、長い文章では待ち時間が目立つようになります。",
    ]
    sims = np.array([0.8, 0.8, 0.8], dtype=np.float32)
    spans, at = [], 0
    for s in sents:
        spans.append((at, at + len(s)))
        at += len(s) + 1
    sent_tokens = tok.tokens_many(sents)
    assert "サポート" in sent_tokens[1]
    rendered = [*tok.tokens(q), "サポート"]
    x = hl.features(q, rendered, sents, sent_tokens, {"サポート": 3.0}, sims, True)
    assert int(np.argmax(hl.probabilities(x, hl.WEIGHTS_CROSS))) == 1
    first, last = hl.choose(q, rendered, sents, sent_tokens, spans, {"サポート": 3.0}, sims,
                            True, tok)  # fmt: skip
    assert first <= 1 <= last


def test_highlights_of_real_queries_hold_the_answer(mini: Settings) -> None:
    shelf = Shelf(mini)
    rows = [json.loads(line) for line in (DATA / "mini-qa.jsonl").read_text("utf-8").splitlines()]
    extra = [
        ("登山シーズンはいつですか？", "fuji.md", "7月上旬"),
        ("富士山はいつ世界文化遺産に登録されましたか？", "fuji.md", "2013年"),
        ("How much does a plate cost at a conveyor-belt sushi restaurant?", "sushi.txt", "百円"),
        ("When was nigiri sushi born?", "sushi.txt", "江戸時代"),
    ]
    cases = [(r["question"], r["doc"], r["evidence"][0]) for r in rows] + extra
    for question, doc, answer in cases:
        # The article's best passage (retrieval is not what this test is about).
        hit = next(p for p in shelf.query(question, k=5).passages if p.citation.source == doc)
        assert answer in hit.highlight, (question, hit.highlight)
        assert len(hit.highlight) <= hl.MAX_CHARS


def test_a_heading_after_the_best_sentence_never_joins_it(tok: Tokenizer) -> None:
    # A short best sentence takes a neighbour; a heading after it opens the next section
    # (plain-text articles write headings as short lines after a blank line), a list item
    # or a short line right below it goes on with it.
    q, idf = "噴火は何回ありましたか？", {"噴火": 3.0}
    heading = ["天気の話です。", "噴火は二回ありました。", "2024年の新しい観測体制", "山は高い。"]
    assert hl.opens_section(heading[2], gap=2) and not hl.opens_section(heading[2], gap=1)
    assert hl.opens_section("## 観測体制", gap=1)
    first, last = _choose(tok, q, heading, idf, gaps={2: 2})
    assert first <= 1 <= last < 2
    # No blank line: it may go on (the best sentence alone before it, so the line
    # below is its only neighbour).
    assert _choose(tok, q, heading[1:], idf) == (0, 1)
    assert _choose(tok, q, heading[1:], idf, gaps={1: 2}) == (0, 0)
    items = ["天気の話です。", "噴火は二回ありました。", "* 864年と1707年の噴火", "山は高い。"]
    assert not hl.opens_section(items[2], gap=2)
    assert _choose(tok, q, items, idf, gaps={2: 2}) == (1, 2)


def test_a_section_heading_before_the_best_sentence_never_joins_it(tok: Tokenizer) -> None:
    # A short best sentence takes its neighbour; the heading above it is no answer. An
    # article's "# " title may join (it names the subject a question may ask for).
    q, idf = "噴火は何回ありましたか？", {"噴火": 3.0}
    assert _choose(tok, q, ["山の記録", "噴火は二回ありました。"], idf, gaps={1: 2}) == (1, 1)
    assert _choose(tok, q, ["# 富士山の噴火", "噴火は二回ありました。"], idf, gaps={1: 2}) == (0, 1)


def test_a_title_joins_a_lead_sentence_that_leaves_the_subject_to_it(tok: Tokenizer) -> None:
    # The lead sentence says what, the title says of what: asked for the ship class, the
    # highlight holds the title. A lead that names its subject stands alone.
    q, idf = "総トン数が1万2千トンの貨客船は何級ですか？", {"トン": 3.0, "総": 2.0}
    lead = ["# 天洋丸級貨客船", "総トン数は1万2千トンであった。", "機関にはタービンを採用した。"]
    # (a short lead takes its neighbour too: title, lead and the next line)
    assert _choose(tok, q, lead, idf, gaps={1: 2}) == (0, 2)
    named = ["# 天洋丸級貨客船", "天洋丸級貨客船の総トン数は1万2千トンであった。", "機関は新しい。"]
    assert _choose(tok, q, named, idf, gaps={1: 2})[0] == 1
    # Only a Markdown title: a plain first line is no title.
    plain = ["天洋丸級貨客船", *lead[1:]]
    assert _choose(tok, q, plain, idf, gaps={1: 2})[0] == 1


def test_question_words_next_to_the_question_word_weigh_most(tok: Tokenizer) -> None:
    # 率いる is what is asked about (率いているのは誰), 研究 only qualifies the team.
    near = hl.nearness(tok.tokens("o1の研究チームを率いているのは誰ですか？"))
    assert near["率い"] > near["チーム"] > near["研究"] > 0
    assert hl.nearness(tok.tokens("Who led the research team?"))["led"] == 1.0
    assert hl.nearness(tok.tokens("寿司の起源について")) == {}  # no question word


def test_the_sentence_with_the_asked_predicate_gets_the_word_nearness(tok: Tokenizer) -> None:
    q = "o1の研究チームを率いているのは誰ですか？"
    sents = ["研究チームは数学の問題を例に挙げた。", "チームを率いているのはボブ・マグルーだ。"]
    idf = dict.fromkeys(tok.tokens(q), 0.0) | {"研究": 2.0, "チーム": 2.0, "率い": 2.0}
    x = hl.features(q, tok.tokens(q), sents, tok.tokens_many(sents), idf, None, False)
    near = x[:, hl.FEATURES.index("lex_near")]
    assert near[1] == 1.0 and near[0] < near[1]
    # The same words' plain overlap does not tell the two apart.
    lex = x[:, hl.FEATURES.index("lex")]
    assert lex[0] == lex[1] == 1.0
    # Across languages the question's tokens carry its rendering: no word order, 0.
    xc = hl.features(q, tok.tokens(q), sents, tok.tokens_many(sents), idf, None, True)
    assert not xc[:, hl.FEATURES.index("lex_near")].any()
