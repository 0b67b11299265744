"""Tests for bunko.ingest: real files in tmp_path, odd encodings and odd folders."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path

import pytest

from bunko import ingest
from bunko.errors import CorpusError, SkipFile
from bunko.ingest import (
    SUPPORTED_SUFFIXES,
    corpus_listing,
    list_corpus,
    load_corpus,
    read_document,
    source_of,
)
from bunko.types import Document

# A copy of the shipped articles: users edit corpus/, tests must not depend on it.
ARTICLES = Path(__file__).parent / "data" / "articles"

JA = (
    "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。"
    "何でも薄暗いじめじめした所でニャーニャー泣いていた事だけは記憶している。\n"
    "検索拡張生成（RAG）は、質問に関係する文書を探し出し、その内容をもとに回答を作る技術です。"
    "東京の図書館で、カタカナ語や漢字、ひらがなが混じった文章を読みました。\n"
)
JA_SHORT = ["日本語の文章です。", "今日は良い天気ですね。", "人工知能", "こんにちは", "カタカナ"]


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_bytes(content.encode("utf-8"))
    else:
        path.write_bytes(content)
    return path


def read(folder: Path, name: str, content: str | bytes) -> Document:
    return read_document(write(folder, name, content), folder)


def skip_reason(folder: Path, name: str, content: str | bytes) -> str:
    with pytest.raises(SkipFile) as info:
        read(folder, name, content)
    assert info.value.path == name
    return info.value.reason


# --- encodings ---------------------------------------------------------------


def test_utf8_plain_and_record_fields(tmp_path: Path) -> None:
    data = ("# 見出し\n\n" + JA).encode("utf-8")
    path = write(tmp_path, "sub/a.md", data)
    doc = read_document(path, tmp_path)
    assert doc.text == "# 見出し\n\n" + JA
    assert doc.encoding == "utf-8"
    assert doc.source == "sub/a.md"
    assert doc.path == str(path)
    assert doc.sha256 == hashlib.sha256(data).hexdigest()
    assert doc.size == len(data)
    assert doc.mtime_ns == path.stat().st_mtime_ns
    assert doc.body_start == 0
    assert doc.title == "見出し"


def test_utf8_bom_is_stripped(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbf" + "# タイトル\n本文です。\n".encode()
    doc = read(tmp_path, "bom.txt", data)
    assert doc.encoding == "utf-8-sig"
    assert doc.text == "# タイトル\n本文です。\n"
    assert doc.headings[0].start == 0
    assert doc.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(("codec", "bom"), [("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff")])
def test_utf16_with_bom(tmp_path: Path, codec: str, bom: bytes) -> None:
    doc = read(tmp_path, "u16.txt", bom + JA.encode(codec))
    assert doc.encoding == codec
    assert doc.text == JA


@pytest.mark.parametrize(
    ("codec", "bom"), [("utf-32-le", b"\xff\xfe\x00\x00"), ("utf-32-be", b"\x00\x00\xfe\xff")]
)
def test_utf32_with_bom(tmp_path: Path, codec: str, bom: bytes) -> None:
    # Defect 8: UTF-32-LE was read as UTF-16-LE (NUL-filled garbage), -BE was skipped unsaid.
    doc = read(tmp_path, "u32.txt", bom + JA.encode(codec))
    assert doc.encoding == codec
    assert doc.text == JA


@pytest.mark.parametrize("codec", ["cp932", "euc_jp"])
@pytest.mark.parametrize("text", [JA, *JA_SHORT])
def test_legacy_japanese_encodings(tmp_path: Path, codec: str, text: str) -> None:
    doc = read(tmp_path, "legacy.txt", text.encode(codec))
    assert doc.encoding == codec
    assert doc.text == text


def test_undecodable_is_skipped(tmp_path: Path) -> None:
    assert "cannot decode" in skip_reason(tmp_path, "bad.txt", b"abc \xff\xff\xff def")
    assert "cannot decode" in skip_reason(tmp_path, "bad16.txt", b"\xff\xfe\x00\xd8")


def test_binary_is_skipped(tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
    assert "binary" in skip_reason(tmp_path, "image.txt", png)


@pytest.mark.parametrize("content", [b"", b" \n\t\r\n", "\u3000\n".encode(), b"\xef\xbb\xbf"])
def test_empty_or_whitespace_is_skipped(tmp_path: Path, content: bytes) -> None:
    assert skip_reason(tmp_path, "empty.txt", content) == "empty file"


# --- front matter and titles ---------------------------------------------------


def test_front_matter_title_wins(tmp_path: Path) -> None:
    text = "---\ntitle: '  前付けの題 '\nlang: ja\n---\n# 見出しの題\n本文。\n"
    doc = read(tmp_path, "fm.md", text)
    assert doc.title == "前付けの題"
    assert doc.body_start == text.index("# 見出し")
    assert doc.headings[0].start == doc.body_start


def test_front_matter_dots_close_and_crlf(tmp_path: Path) -> None:
    text = "---\r\ntitle: Dots\r\n...\r\nBody line.\r\n"
    doc = read(tmp_path, "dots.md", text)
    assert doc.title == "Dots"
    assert doc.text[doc.body_start :] == "Body line.\r\n"


@pytest.mark.parametrize(
    ("body", "title"),
    [("# 見出しの題\n本文。\n", "見出しの題"), ("\n最初の行です。\n次。\n", "最初の行です。")],
)
def test_malformed_yaml_is_ignored_but_still_front_matter(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, body: str, title: str
) -> None:
    text = "---\ntitle: [unclosed\ndate: 2024-02-30\n---\n" + body
    with caplog.at_level(logging.WARNING, logger="bunko"):
        doc = read(tmp_path, "bad_yaml.md", text)
    assert doc.title == title
    assert doc.body_start == text.index(body)
    assert "malformed YAML" in caplog.text


def test_invalid_date_in_yaml_is_ignored(tmp_path: Path) -> None:
    """An impossible date does not throw the front matter away: its title still wins."""
    doc = read(tmp_path, "date.md", "---\ntitle: T\ndate: 2024-02-30\n---\nbody\n")
    assert doc.title == "T"
    assert doc.body_start == len("---\ntitle: T\ndate: 2024-02-30\n---\n")


@pytest.mark.parametrize(
    "text", ["---\ntitle: Only\n---\n", "---\ntitle: Only\n---", "---\ntitle: Only\n---\n\n  \n"]
)
def test_front_matter_only_is_skipped(tmp_path: Path, text: str) -> None:
    assert skip_reason(tmp_path, "only.md", text) == "front matter only, no body"


def test_prose_between_rules_is_not_front_matter(tmp_path: Path) -> None:
    doc = read(tmp_path, "rules.md", "---\nJust a paragraph.\n---\nMore.\n")
    assert doc.body_start == 0
    assert doc.title == "Just a paragraph."


def test_heading_title_strips_closing_hashes(tmp_path: Path) -> None:
    assert read(tmp_path, "a.md", "intro line\n## Second ##\n# First\n").title == "Second"
    assert read(tmp_path, "b.md", "# C#  \ntext\n").title == "C#"


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("\n\n  最初の行  \n二行目\n", "最初の行"),
        ("**Bold title**\nbody\n", "Bold title"),
        ("> quoted start\nbody\n", "quoted start"),
        ("- list item\n", "list item"),
        ("***\n\n本当の一行目\n", "本当の一行目"),
        ("#hashtag is not a heading\n", "hashtag is not a heading"),
    ],
)
def test_first_line_title(tmp_path: Path, text: str, title: str) -> None:
    assert read(tmp_path, "f.txt", text).title == title


def test_first_line_title_is_truncated(tmp_path: Path) -> None:
    assert read(tmp_path, "long.txt", "あ" * 500).title == "あ" * 50 + "…"


def test_stem_is_the_last_resort(tmp_path: Path) -> None:
    assert read(tmp_path, "記事 one.md", "***\n---\n").title == "記事 one"


# --- headings and line endings --------------------------------------------------


def test_headings_levels_offsets_and_code_fences(tmp_path: Path) -> None:
    text = (
        "---\ntitle: T\n---\n"
        "# One\n"
        "para #not heading\n"
        "```python\n# comment, not a heading\n```\n"
        "## Two ##\n"
        "~~~~\n# also code\n~~~\n# still code\n~~~~\n"
        "###### Six\n"
        "####### seven hashes is text\n"
        "#\n"
        "### Three\n"
    )
    doc = read(tmp_path, "h.txt", text)
    assert [(h.level, h.text) for h in doc.headings] == [
        (1, "One"),
        (2, "Two"),
        (6, "Six"),
        (3, "Three"),
    ]
    for h in doc.headings:
        assert doc.text[h.start :].startswith("#" * h.level + " " + h.text)
        assert h.start == 0 or doc.text[h.start - 1] == "\n"


@pytest.mark.parametrize("eol", ["\r\n", "\r"])
def test_line_endings_are_kept(tmp_path: Path, eol: str) -> None:
    lines = ["---", "title: 題", "---", "# 一", "本文。", "## 二", "終わり。", ""]
    text = eol.join(lines)
    doc = read(tmp_path, "eol.txt", text.encode("utf-8"))
    assert doc.text == text
    assert doc.title == "題"
    assert doc.body_start == text.index("# 一")
    assert [h.text for h in doc.headings] == ["一", "二"]
    assert [doc.text[h.start :].startswith("#") for h in doc.headings] == [True, True]


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("あ" * 1_000_000, "あ" * 50 + "…"),
        ("x" + " " * 1_000_000 + "y", "x"),  # no regex backtracking over the run
        ("# h" + " " * 1_000_000 + "#\n", "h"),
    ],
)
def test_one_megabyte_line(tmp_path: Path, text: str, title: str) -> None:
    start = time.perf_counter()
    doc = read(tmp_path, "line.txt", text)
    assert doc.text == text
    assert doc.title == title
    assert time.perf_counter() - start < 5


@pytest.mark.slow
def test_fifty_megabyte_file(tmp_path: Path) -> None:
    para = ("## 節\n" + JA + "```\n# code\n```\n") * 10
    text = "---\ntitle: Big\n---\n" + para * (50_000_000 // len(para.encode()))
    start = time.perf_counter()
    doc = read(tmp_path, "big.md", text)
    assert doc.title == "Big" and len(doc.text) == len(text)
    assert len(doc.headings) == text.count("## 節")
    assert time.perf_counter() - start < 30


# --- listing -------------------------------------------------------------------


def test_list_corpus_sorted_nested_hidden_and_odd_names(tmp_path: Path) -> None:
    for name in [
        "b.txt",
        "a.md",
        "c.markdown",
        "UPPER.MD",
        "with space.txt",
        "日本語の記事.txt",
        "-dash.txt",
        "sub/deeper/x.txt",
        ".hidden.txt",
        ".git/config.txt",
        "sub/.secret/y.md",
        "notes.docx",  # no reader for this suffix
        "README",
    ]:
        write(tmp_path, name, "x\n")
    sources = [source_of(p, tmp_path) for p in list_corpus(tmp_path)]
    expected = [
        "-dash.txt",
        "UPPER.MD",
        "a.md",
        "b.txt",
        "c.markdown",
        "sub/deeper/x.txt",
        "with space.txt",
        "日本語の記事.txt",
    ]
    assert sources == expected
    assert sources == sorted(sources)
    assert SUPPORTED_SUFFIXES[:3] == (".txt", ".md", ".markdown")  # then bunko.readers' suffixes
    assert read_document(tmp_path / "-dash.txt", tmp_path).source == "-dash.txt"


def test_deeply_nested_folders(tmp_path: Path) -> None:
    deep = Path(*["d"] * 200)
    write(tmp_path, str(deep / "deep.txt"), "深い\n")
    (found,) = list_corpus(tmp_path)
    assert source_of(found, tmp_path) == "d/" * 200 + "deep.txt"


def test_symlinks_followed_once_and_loops_do_not_hang(tmp_path: Path) -> None:
    root, outside = tmp_path / "corpus", tmp_path / "outside"
    write(root, "real/a.txt", "a\n")
    write(outside, "o.txt", "o\n")
    os.symlink(root, root / "real" / "loop")
    os.symlink(root / "real", root / "a_link_to_real")
    os.symlink(outside, root / "linked")
    os.symlink(root / "real" / "a.txt", root / "file_link.txt")
    os.symlink(root / "missing.txt", root / "broken.txt")
    listing = corpus_listing(root)
    sources = [source_of(p, root) for p in listing.files]
    # A link that leaves the corpus is never followed: nothing outside it is read.
    # A link to a listed article is an alias: the file is listed once, by its real path.
    assert sources == ["real/a.txt"]
    assert listing.aliases == {"file_link.txt": "real/a.txt"}
    assert listing.outside == ("linked",)
    assert read_document(root / "file_link.txt", root).text == "a\n"


def test_fifo_is_not_listed_or_read(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    os.mkfifo(tmp_path / "pipe.txt")
    assert list_corpus(tmp_path) == []
    with pytest.raises(SkipFile, match="not a regular file"):
        read_document(tmp_path / "pipe.txt", tmp_path)


def test_missing_or_non_folder_corpus(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"does not exist") as info:
        list_corpus(tmp_path / "nope")
    assert "--" not in str(info.value)  # library errors name no CLI flags (the CLI adds them)
    with pytest.raises(CorpusError, match="not a folder"):
        load_corpus(write(tmp_path, "file.txt", "x"))


# --- bad files and the whole corpus -------------------------------------------------


def test_vanished_file_is_skipped(tmp_path: Path) -> None:
    path = write(tmp_path, "gone.txt", "x\n")
    (listed,) = list_corpus(tmp_path)
    path.unlink()
    with pytest.raises(SkipFile, match="vanished"):
        read_document(listed, tmp_path)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (PermissionError(13, "Permission denied"), "permission denied"),
        (OSError(5, "I/O error"), "I/O"),
    ],
)
def test_unreadable_file_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: OSError, reason: str
) -> None:
    # Simulated: chmod 0 does not stop root, and these tests may run as root.
    path = write(tmp_path, "secret.txt", "x\n")

    def fail(root: Path, path: Path) -> tuple[bytes, os.stat_result]:
        raise error

    monkeypatch.setattr(ingest, "read_inside", fail)
    with pytest.raises(SkipFile, match=reason):
        read_document(path, tmp_path)


def test_load_corpus_skips_bad_and_keeps_good(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, "good1.txt", "# 良い\n本文。\n")
    write(tmp_path, "bin.txt", b"\x00\x01\x02")
    write(tmp_path, "empty.md", "")
    write(tmp_path, "only.md", "---\ntitle: x\n---\n")
    write(tmp_path, "z/good2.md", JA.encode("euc_jp"))
    with caplog.at_level(logging.WARNING, logger="bunko"):
        docs, skipped = load_corpus(tmp_path)
    assert [d.source for d in docs] == ["good1.txt", "z/good2.md"]
    assert docs[1].text == JA
    assert sorted(s.path for s in skipped) == ["bin.txt", "empty.md", "only.md"]
    for name in ("bin.txt", "empty.md", "only.md"):
        assert name in caplog.text
    assert load_corpus(tmp_path / "z") == (
        [read_document(tmp_path / "z/good2.md", tmp_path / "z")],
        [],
    )


def test_empty_corpus_is_empty_lists(tmp_path: Path) -> None:
    assert load_corpus(tmp_path) == ([], [])


def test_shipped_articles() -> None:
    docs, skipped = load_corpus(ARTICLES)
    assert skipped == []
    assert len(docs) == 5
    by_source = {d.source: d for d in docs}
    first = by_source["000_015106a12a270a7a.txt"]
    assert first.title == "ChatGPTリリース以降のAI技術の進歩"
    assert first.text.startswith("---\n")
    assert first.text[first.body_start :].lstrip().startswith("2022年11月30日")
    assert by_source["004_1006b7ce7855f27c.txt"].title == "GPT-4.5:OpenAIの最も興味深いモデルとは?"
    for doc in docs:
        assert doc.encoding == "utf-8"
        assert doc.title and len(doc.title) <= 120
        assert doc.size == (ARTICLES / doc.source).stat().st_size


def test_links_outside_are_said_once_per_change(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Smaller defect: every request re-logged each skipped link.
    root, outside = tmp_path / "corpus", tmp_path / "outside"
    write(root, "a.txt", "a\n")
    write(outside, "o.txt", "o\n")
    os.symlink(outside / "o.txt", root / "out1.txt")
    with caplog.at_level(logging.WARNING, logger="bunko"):
        for _ in range(3):
            list_corpus(root)
    assert caplog.text.count("out1.txt: it links outside") == 1
    os.symlink(outside / "o.txt", root / "out2.txt")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bunko"):
        for _ in range(3):
            list_corpus(root)
    assert caplog.text.count("links outside") == 1 and "out2.txt" in caplog.text
