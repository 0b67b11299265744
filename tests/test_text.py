"""Tests for bunko.text: sentence splitting, line numbers and the fugashi tokenizer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bunko.text import Tokenizer, line_of, line_starts, nfkc, split_sentences
from bunko.types import Span


def sentences(text: str, start: int = 0, end: int | None = None) -> list[str]:
    return [text[s.start : s.end] for s in split_sentences(text, start, end)]


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer()


@pytest.fixture(scope="module")
def lemma_tok() -> Tokenizer:
    return Tokenizer("lemma")


# --- split_sentences -----------------------------------------------------------------


def test_japanese_terminators() -> None:
    assert sentences("今日は晴れ。明日は雨！本当？うん") == [
        "今日は晴れ。",
        "明日は雨！",
        "本当？",
        "うん",
    ]


def test_terminator_runs_and_closing_brackets_stay_with_sentence() -> None:
    assert sentences("本当に！？はい。（注意。）次") == ["本当に！？", "はい。", "（注意。）", "次"]


def test_no_split_inside_japanese_quotes() -> None:
    text = "「そうか。わかった。」と彼は言った。『本。「中。」』だ。次。"
    assert sentences(text) == [
        "「そうか。わかった。」と彼は言った。",
        "『本。「中。」』だ。",
        "次。",
    ]


def test_line_break_ends_sentence_even_inside_unclosed_quote() -> None:
    text = "「閉じない。引用\n次の行。まだ続く。"
    assert sentences(text) == ["「閉じない。引用", "次の行。", "まだ続く。"]


def test_every_line_break_kind_splits() -> None:
    assert sentences("一\r\n二\r三\n四\n\n\r\n五") == ["一", "二", "三", "四", "五"]


def test_english_sentences() -> None:
    text = "He left. Did she? Yes! It costs $4.50 today.\tNext"
    assert sentences(text) == ["He left.", "Did she?", "Yes!", "It costs $4.50 today.", "Next"]


def test_numbers_versions_and_abbreviations_not_split() -> None:
    text = "GPT-4.5 beat v1.2.3, e.g. on U.S. tests. Mr. Smith agreed. 値段は４．５円．次"
    assert sentences(text) == [
        "GPT-4.5 beat v1.2.3, e.g. on U.S. tests.",
        "Mr. Smith agreed.",
        "値段は４．５円．",
        "次",
    ]


def test_ascii_question_mark_in_japanese_and_in_urls() -> None:
    text = "すごい!次は?答え https://example.com/?q=1&x=2 です"
    assert sentences(text) == ["すごい!", "次は?", "答え https://example.com/?q=1&x=2 です"]


def test_spans_are_trimmed_including_ideographic_space() -> None:
    text = "\u3000 前置き。\u3000\t本文。  \n   \n\u3000"
    spans = split_sentences(text)
    assert [text[s.start : s.end] for s in spans] == ["前置き。", "本文。"]
    assert spans[0].start == 2


def test_start_and_end_bound_the_region_with_absolute_offsets() -> None:
    text = "---\ntitle: x\n---\n本文。二文目。末尾"
    body = text.index("本文")
    spans = split_sentences(text, body, len(text) - 2)
    assert [text[s.start : s.end] for s in spans] == ["本文。", "二文目。"]
    assert spans[0].start == body


def test_long_line_without_punctuation_is_one_sentence() -> None:
    text = "あ" * 1_000_000
    assert split_sentences(text) == [Span(0, len(text))]


def test_empty_and_blank_text() -> None:
    assert split_sentences("") == []
    assert split_sentences(" \n\u3000\r\n") == []


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from("あ漢a1 .。！？!?「」『』\n\r\u3000"), max_size=80))
def test_spans_are_ordered_trimmed_and_never_cross_a_line_break(text: str) -> None:
    prev = 0
    for s in split_sentences(text):
        piece = text[s.start : s.end]
        assert prev <= s.start < s.end
        assert piece == piece.strip()
        assert "\n" not in piece and "\r" not in piece
        prev = s.end
    # Every non-space char belongs to some sentence.
    covered = sum(len("".join(text[s.start : s.end].split())) for s in split_sentences(text))
    assert covered == len("".join(text.split()))


# --- line numbers --------------------------------------------------------------------


def test_line_starts_and_line_of() -> None:
    text = "a\r\nb\rc\nd"
    starts = line_starts(text)
    assert starts == [0, 3, 5, 7]
    assert [line_of(starts, text.index(c)) for c in "abcd"] == [1, 2, 3, 4]
    assert line_of(starts, 1) == 1  # the "\r" of "\r\n" is still on line 1


def test_line_of_agrees_with_splitlines_on_ordinary_text() -> None:
    text = "一行目\n二行目\r\n\n四行目\r五行目\n"
    starts = line_starts(text)
    offset = 0
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        for i in range(offset, offset + len(line)):
            assert line_of(starts, i) == number
        offset += len(line)


# --- Tokenizer -----------------------------------------------------------------------


def test_nfkc() -> None:
    assert nfkc("ＧＰＴ－４．５ ｶﾀｶﾅ") == "GPT-4.5 カタカナ"


def test_tokens_japanese_query(tok: Tokenizer) -> None:
    tokens = tok.tokens("GPT-4.5のAPI料金は？")
    assert tokens[:2] == ["gpt", "4.5"]
    assert "api" in tokens and "料金" in tokens
    assert "？" not in tokens and "?" not in tokens and "-" not in tokens


def test_gpt_version_tokens_match_between_query_and_text(tok: Tokenizer) -> None:
    in_text = tok.tokens("OpenAIがGPT-4.5を発表しました。")
    for query in ("GPT-4.5", "gpt-4.5", "ＧＰＴ－４．５"):
        assert tok.tokens(query) == ["gpt", "4.5"]
        assert "gpt" in in_text and "4.5" in in_text
    assert tok.tokens("GPT-4") == ["gpt", "4"]
    assert tok.tokens("1.2.3 and 4 . 5") == ["1.2.3", "and", "4", "5"]


def test_punctuation_symbols_and_whitespace_dropped(tok: Tokenizer) -> None:
    tokens = tok.tokens("「東京」、（大阪）…　100%！\n- * #")
    assert tokens == ["東京", "大阪", "100"]


def test_english_words_whole_and_lowercased(tok: Tokenizer) -> None:
    assert tok.tokens("Transformers use Self-Attention.") == [
        "transformers",
        "use",
        "self",
        "attention",
    ]


def test_lemma_mode(lemma_tok: Tokenizer) -> None:
    assert "走る" in lemma_tok.tokens("走った")
    assert "使う" in lemma_tok.tokens("スペースを使いました")
    # Loanword lemmas lose UniDic's "-space" gloss; proper nouns keep their kanji.
    assert "スペース" in lemma_tok.tokens("スペース")
    assert lemma_tok.tokens("東京") == ["東京"]


def test_drop_function_words() -> None:
    assert Tokenizer(drop_function_words=True).tokens("東京に住んでいます") == [
        "東京",
        "住ん",
        "い",
    ]


def test_tokens_many_and_empty(tok: Tokenizer) -> None:
    assert tok.tokens_many(["猫です", "", "dog"]) == [["猫", "です"], [], ["dog"]]


def test_unknown_mode_rejected() -> None:
    with pytest.raises(ValueError):
        Tokenizer("stem")  # type: ignore[arg-type]
