"""HTML, PDF and EPUB articles end to end: real files made here, the real model and
index, through the CLI. Facts are found at rank 1 with the right page or URL, the
boilerplate stays out, and citations point into the extracted text."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest
from typer.testing import CliRunner

import format_files as ff
from bunko import readers
from bunko.cli import app
from bunko.ingest import read_document
from bunko.readers import html as html_reader
from bunko.readers import pdf as pdf_reader

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()

GOOD = ("report.pdf", "columns.pdf", "vertical.pdf", "mixed.pdf", "matcha.html",
        "sencha-sjis.html", "book.epub", "broken-spine.epub")  # fmt: skip
BAD = {
    "encrypted.pdf": "encrypted",
    "damaged.pdf": "damaged or not a PDF",
    "empty.pdf": "no pages",
    "scan.pdf": "no text layer on any of its 2 pages (a scan?); OCR is not supported",
    "nobody.html": "no article text",
    "notzip.epub": "cannot read this EPUB file",
}


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def make_corpus(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    ff.make_report_pdf(folder / "report.pdf")
    ff.make_two_column_pdf(folder / "columns.pdf")
    ff.make_vertical_pdf(folder / "vertical.pdf")
    ff.make_mixed_pdf(folder / "mixed.pdf")
    ff.make_html(folder / "matcha.html")
    ff.make_sjis_html(folder / "sencha-sjis.html")
    ff.make_epub(folder / "book.epub")
    ff.make_epub(folder / "broken-spine.epub", broken_spine=True)
    ff.make_encrypted_pdf(folder / "encrypted.pdf")
    ff.make_damaged_pdf(folder / "damaged.pdf")
    ff.make_zero_page_pdf(folder / "empty.pdf")
    ff.make_blank_pdf(folder / "scan.pdf", n_pages=2)
    (folder / "nobody.html").write_text(ff.NO_BODY_PAGE, "utf-8")
    (folder / "notzip.epub").write_bytes(b"PK\x03\x04 this is not really a zip file")
    (folder / "notes.md").write_text("# メモ\n\n急須は常滑焼を使っている。\n", "utf-8")
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], dict[str, object], str]:
    root = tmp_path_factory.mktemp("formats")
    corpus = make_corpus(root / "corpus")
    where = ["--corpus", str(corpus), "--index", str(root / "index")]
    code, out, err = run("index", "--json", *where)
    assert code == 0, err
    return where, json.loads(out), err


def ask(where: list[str], question: str, k: int = 3) -> list[dict[str, object]]:
    code, out, err = run("query", question, "-k", str(k), "--json", *where)
    assert code == 0, err
    results: list[dict[str, object]] = json.loads(out)["results"]
    return results


def corpus_of(where: list[str]) -> Path:
    return Path(where[1])


def test_bad_files_are_skipped_with_a_warning_naming_them(
    built: tuple[list[str], dict[str, object], str],
) -> None:
    _, report, err = built
    assert report["added"] == len(GOOD) + 1  # + notes.md
    assert report["skipped"] == len(BAD)
    for name, reason in BAD.items():
        line = next((ln for ln in err.splitlines() if name in ln), "")
        assert reason in line, (name, err)
    assert "mixed.pdf: page 2 skipped: no text layer; OCR is not supported" in err
    assert "mixed.pdf: page 3 skipped: unreadable text" in err
    assert "broken-spine.epub: spine entry 'missing-chapter' is not in the manifest" in err
    assert "Traceback" not in err


FACTS = [
    # question, file, words of the answer, the page they are printed on, url
    ("玉露の平均卸売価格は一キログラムあたりいくらですか", "report.pdf", "三万八千四百円", 2,
     None),
    ("Which blend won the gold prize of the Uji tasting panel?", "report.pdf",
     "kabusecha blend from Okabe", 2, None),
    ("荒茶の生産量が全国一位になった県はどこですか", "report.pdf", "鹿児島県の荒茶生産量", 2, None),
    ("抹茶の輸出額で北米向けは全体の何割ですか", "columns.pdf", "北米向けが全体の四割", 1, None),
    ("茶摘みはいつ頃始まりますか", "vertical.pdf", "茶摘みは八十八夜の頃に始まり", 1, None),
    ("防霜ファンの柱の高さは？", "mixed.pdf", "高さ約六メートル", 4, None),
    ("石臼一台で一時間に挽ける抹茶の量は？", "matcha.html", "四十グラム", None, ff.HTML_URL),
    ("How fast do stone mills for matcha turn?", "matcha.html", "one revolution per second",
     None, ff.HTML_URL),
    ("煎茶を淹れる湯の温度は何度がよいですか", "sencha-sjis.html", "七十度から八十度", None, None),
    ("茶壺の口切りは毎年何月に行われますか", "book.epub", "毎年十一月に茶壺の封を切る", None, None),
]  # fmt: skip


@pytest.mark.parametrize(("question", "source", "answer", "page", "url"), FACTS)
def test_fact_found_at_rank_1_with_page_and_url(
    built: tuple[list[str], dict[str, object], str],
    question: str,
    source: str,
    answer: str,
    page: int | None,
    url: str | None,
) -> None:
    where = built[0]
    top = ask(where, question)[0]
    assert top["source"] == source, top
    assert answer in str(top["text"])
    assert top["url"] == url
    if page is None:
        assert top["page"] is None
    else:
        # The passage's pages cover the page the answer is printed on, and the
        # stored page offsets put the answer there.
        first, last = top["page"]  # type: ignore[misc]
        assert first <= page <= last
        doc = read_document(corpus_of(where) / source, corpus_of(where))
        at = doc.text.index(answer)
        assert readers.page_range(doc.extra["pages"], at, at + len(answer)) == (page, page)
        want = f" p.{first}" if first == last else f" pp.{first}-{last}"
        assert f"{source}:" in str(top["citation"]) and want in str(top["citation"])
    if url is not None:
        link = str(top["link"])
        assert link.startswith(url + "#:~:text=")
        start = unquote(link.split("#:~:text=", 1)[1].split(",")[0])
        assert start in " ".join(str(top["highlight"]).split())
        assert link in str(top["citation"])
    else:
        assert top["link"] is None


def test_citations_point_into_the_extracted_text(
    built: tuple[list[str], dict[str, object], str],
) -> None:
    """text == extracted[chars], and the cited lines of the extracted text (what
    `bunko show` prints) hold the passage."""
    where = built[0]
    corpus = corpus_of(where)
    seen = set()
    for question, *_ in FACTS:
        for r in ask(where, question, k=5):
            source = str(r["source"])
            seen.add(source)
            doc = read_document(corpus / source, corpus)
            a, z = r["chars"]  # type: ignore[misc]
            assert doc.text[a:z] == r["text"]
            l0, l1 = r["lines"]  # type: ignore[misc]
            cited = "\n".join(doc.text.splitlines()[l0 - 1 : l1])
            assert str(r["text"]).strip() in cited
    assert {"report.pdf", "matcha.html", "book.epub"} <= seen


def test_boilerplate_is_absent_from_passages(
    built: tuple[list[str], dict[str, object], str],
) -> None:
    where = built[0]
    corpus = corpus_of(where)
    text = read_document(corpus / "matcha.html", corpus).text
    for noise in ff.HTML_NOISE:
        assert noise not in text
        for r in ask(where, noise, k=5):
            if r["source"] == "matcha.html":
                assert noise not in str(r["text"])


def test_facts_on_page_2_are_cited_as_page_2(
    built: tuple[list[str], dict[str, object], str],
) -> None:
    for question in ("玉露の平均卸売価格は一キログラムあたりいくらですか",
                     "Which blend won the gold prize of the Uji tasting panel?"):  # fmt: skip
        top = ask(built[0], question)[0]
        # The passage may be merged with its neighbour on page 1 (one passage per
        # place), but it always reaches page 2, where the fact is.
        assert top["source"] == "report.pdf" and top["page"] in ([2, 2], [1, 2])


def test_titles_headings_and_metadata(built: tuple[list[str], dict[str, object], str]) -> None:
    corpus = corpus_of(built[0])
    page = read_document(corpus / "matcha.html", corpus)
    assert page.title == "抹茶の歴史と製法"  # without "| お茶ニュース"
    assert [h.text for h in page.headings] == ["抹茶の歴史と製法", "碾茶の栽培", "石臼挽き"]
    assert page.extra["url"] == ff.HTML_URL and "trafilatura" in page.extra["extractor"]
    sjis = read_document(corpus / "sencha-sjis.html", corpus)
    assert sjis.encoding == "cp932" and "七十度から八十度" in sjis.text
    report = read_document(corpus / "report.pdf", corpus)
    assert report.title == ff.PDF_TITLE
    pages = report.extra["pages"]
    assert len(pages) == 2 and report.text[pages[1] :].startswith("玉露の平均卸売価格")
    book = read_document(corpus / "book.epub", corpus)
    assert book.title == "宇治茶師の一年"
    # The second chapter has no heading of its own: its TOC title becomes one.
    assert [h.text for h in book.headings] == ["序章", "口切りの儀"]
    hit = ask(built[0], "茶壺の口切りは毎年何月に行われますか")[0]
    assert hit["heading"] == "口切りの儀"


def test_pdf_lines_rejoined_and_reading_order(tmp_path: Path) -> None:
    report = pdf_reader.read(ff.make_report_pdf(tmp_path / "r.pdf").read_bytes(), "r.pdf")
    paras = report.text.split("\n\n")
    # Japanese lines join with no space; English lines with one.
    assert paras == [*ff.PDF_PAGE1, *ff.PDF_PAGE2]
    cols = pdf_reader.read(ff.make_two_column_pdf(tmp_path / "c.pdf").read_bytes(), "c.pdf")
    assert cols.text.split("\n\n") == ff.COLUMN_LEFT + ff.COLUMN_RIGHT
    vert = pdf_reader.read(ff.make_vertical_pdf(tmp_path / "v.pdf").read_bytes(), "v.pdf")
    assert vert.text.split("\n\n") == ff.VERTICAL


@pytest.mark.slow
def test_500_page_pdf_streams_with_right_pages(tmp_path: Path) -> None:
    path = ff.make_long_pdf(tmp_path / "long.pdf", 500)
    got = pdf_reader.read(path.read_bytes(), "long.pdf")
    assert got.pages is not None and len(got.pages) == 500
    for n in (1, 2, 377, 500):
        at = got.text.index(f"第{n}頁の記録である。")
        assert readers.page_range(got.pages, at, at + 10) == (n, n)


def test_changed_pdf_reembeds_only_changed_chunks(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    where = ["--corpus", str(corpus), "--index", str(tmp_path / "index")]
    ff.make_long_pdf(corpus / "doc.pdf", 12)
    code, out, err = run("index", "--json", *where)
    assert code == 0, err
    first = json.loads(out)
    assert first["chunks_total"] >= 6
    fact = "宇治の品評会では、岡部のかぶせ茶が農林水産大臣賞を受けた。"
    ff.make_long_pdf(corpus / "doc.pdf", 12, extra={9: fact})
    code, out, err = run("index", "--json", *where)
    assert code == 0, err
    second = json.loads(out)
    assert second["updated"] == 1
    assert 1 <= second["chunks_embedded"] <= 3 < second["chunks_total"]
    top = ask(where, "品評会で農林水産大臣賞を受けたのはどこのかぶせ茶ですか")[0]
    assert fact in str(top["text"])
    # The passage holds page 9 (merged passages may start a page or two before it).
    assert top["page"][0] <= 9 <= top["page"][1]  # type: ignore[index]


def test_new_extractor_version_reextracts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    where = ["--corpus", str(corpus), "--index", str(tmp_path / "index")]
    ff.make_html(corpus / "matcha.html")
    ff.make_report_pdf(corpus / "report.pdf")
    assert run("index", *where)[0] == 0
    monkeypatch.setattr(html_reader, "VERSION", html_reader.VERSION + 1)
    code, out, err = run("index", "--json", *where)
    assert code == 0, err
    report = json.loads(out)
    assert (report["updated"], report["unchanged"]) == (1, 1)


def test_add_accepts_new_formats(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    where = ["--corpus", str(corpus), "--index", str(tmp_path / "index")]
    files = [ff.make_html(tmp_path / "matcha.html"), ff.make_report_pdf(tmp_path / "report.pdf"),
             ff.make_epub(tmp_path / "book.epub")]  # fmt: skip
    code, out, err = run("add", *map(str, files), "--json", *where)
    assert code == 0, err
    assert sorted(json.loads(out)["copied"]) == ["book.epub", "matcha.html", "report.pdf"]
    (tmp_path / "x.docx").write_bytes(b"PK")
    code, _, err = run("add", str(tmp_path / "x.docx"), *where)
    assert code == 1 and ".pdf" in err and ".html" in err


def test_text_mode_shows_page_and_link(built: tuple[list[str], dict[str, object], str]) -> None:
    where = built[0]
    code, out, err = run("query", "玉露の平均卸売価格は一キログラムあたりいくらですか", "-k", "1",
                         *where)  # fmt: skip
    assert code == 0, err
    assert "report.pdf:" in out and (" p.2 " in out or " pp.1-2 " in out)
    code, out, err = run("query", "石臼一台で一時間に挽ける抹茶の量は？", "-k", "1", *where)
    assert code == 0, err
    assert ff.HTML_URL + "#:~:text=" in out


# -- units -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "site", "want"),
    [
        ("抹茶の歴史 | お茶ニュース", None, "抹茶の歴史"),
        ("抹茶の歴史｜お茶ニュース", None, "抹茶の歴史"),
        ("Matcha, explained - The Tea Times", "The Tea Times", "Matcha, explained"),
        ("The Tea Times | A very long article title about matcha", "The Tea Times",
         "A very long article title about matcha"),
        ("No separator here", None, "No separator here"),
    ],
)  # fmt: skip
def test_strip_site(title: str, site: str | None, want: str) -> None:
    assert html_reader.strip_site(title, site) == want


def test_page_range_with_empty_pages() -> None:
    pages = (0, 10, 10, 30)  # page 2 has no text: page 3 starts where it does
    assert readers.page_range(pages, 0, 5) == (1, 1)
    assert readers.page_range(pages, 12, 20) == (3, 3)
    assert readers.page_range(pages, 5, 35) == (1, 4)
    assert readers.page_range(None, 0, 5) is None


def test_text_fragment_encodes_terms() -> None:
    url = "https://example.jp/a#top"
    assert readers.text_fragment(url, "well-known tea") == (
        "https://example.jp/a#:~:text=well%2Dknown%20tea"
    )
    long_ja = "花崗岩の石臼一台で一時間に挽ける抹茶は、わずか四十グラムほどである。" * 5
    link = readers.text_fragment(url, long_ja + "\n\n次の段落。")
    start, end = (unquote(p) for p in link.split("=", 1)[1].split(","))
    assert start == "花崗岩の石臼一台で一時間に挽ける抹茶は、"
    assert end == "わずか四十グラムほどである。"
    # Only the first line: a fragment cannot span blocks reliably.
    two = readers.text_fragment(url, "First line here.\n\nSecond line.")
    assert unquote(two.split("=", 1)[1]) == "First line here."


def test_meta_charset_decides_the_encoding() -> None:
    text, codec = html_reader.decode(ff.SJIS_PAGE.encode("cp932"))
    assert codec == "cp932" and "煎茶の淹れ方" in text


def test_registry_lists_every_reader_module() -> None:
    assert {".html", ".htm", ".pdf", ".epub"} <= set(readers.suffixes())
    assert readers.reader_for(Path("a.PDF")) is pdf_reader
    assert readers.reader_for(Path("a.md")) is None


def test_extraction_libraries_are_not_imported_until_needed() -> None:
    code = (
        "import sys, bunko.cli, bunko.api, bunko.ingest, bunko.readers;"
        "print([m for m in ('trafilatura', 'pypdfium2', 'ebooklib', 'lxml', 'reportlab')"
        " if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_pdf_benchmark_smoke() -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "pdf_readers.py"), "--smoke"],
        capture_output=True,
        text=True,
        check=True,
    )
    n = len(ff.PDF_PAGE1 + ff.PDF_PAGE2)
    row = next(ln for ln in out.stdout.splitlines() if ln.startswith("| bunko (pypdfium2) |"))
    assert row.count("whole, sim 1.00") == 4 and f"{n}/{n} whole" in row  # 4 fixtures


def test_line_breaks_inside_a_paragraph() -> None:
    page = (
        "<html><head><title>t</title></head><body><article>"
        "<p>" + "茶の葉は<br>蒸してから揉む。" * 12 + "</p>"
        "<p>" + "Leaves are steamed<br>and rolled by hand. " * 12 + "</p>"
        "</article></body></html>"
    )
    text = html_reader.read(page.encode(), "p.html").text
    assert "茶の葉は蒸してから揉む。" in text
    assert "steamed and rolled" in text


def test_epub_zip_bomb_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import zipfile

    from bunko.errors import SkipFile
    from bunko.readers import epub as epub_reader

    monkeypatch.setattr(epub_reader, "_MAX_UNPACKED", 16 << 20)  # 1 GB in use; cheaper here
    path = tmp_path / "bomb.epub"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("mimetype", "application/epub+zip")
        with z.open("big.xhtml", "w", force_zip64=True) as f:
            block = b"\0" * (1 << 20)
            for _ in range(20):
                f.write(block)
    assert path.stat().st_size < 1 << 20
    with pytest.raises(SkipFile, match="unpacks to"):
        epub_reader.read(path.read_bytes(), "bomb.epub")
