"""Real PDF, HTML and EPUB files for the format tests and benchmarks/pdf_readers.py.

PDFs are drawn with reportlab's built-in CID font HeiseiKakuGo-W5 (no font file
needed; the glyphs are not embedded, so readers must map them through the
Adobe-Japan1 CMaps, as with many real Japanese PDFs). Lines are wrapped by hand so
that paragraphs span several lines and the reader has to rejoin them.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

JA_FONT = "HeiseiKakuGo-W5"
JA_FONT_V = "HeiseiMin-W3"

# Facts each fixture holds; a test asks a question and expects the passage at rank 1.
PDF_PAGE1 = [
    "日本茶の市場は、ここ十年で大きく姿を変えた。急須で淹れる家庭は減り、ペットボトル飲料"
    "と粉末茶が消費の中心になっている。一方で、産地を指定した高級茶の需要は都市部で根強い。",
    "本報告は、静岡・鹿児島・京都の三つの産地を対象に、生産者と問屋への聞き取りをまとめた"
    "ものである。数字はすべて二〇二五年の速報値である。",
    "聞き取りは二〇二五年の四月から九月にかけて行い、生産者四十二軒と問屋十一社から回答を"
    "得た。価格は問屋の仕入れ値を、生産量は各県の統計をもとにしている。",
    "第一章では産地ごとの概況を、第二章では価格と生産量の動きを述べる。最後に、今後の課題と"
    "して後継者不足と輸出の伸びを取り上げる。",
]
PDF_PAGE2 = [
    "玉露の平均卸売価格は、二〇二五年に一キログラムあたり三万八千四百円となり、前年より"
    "一割ほど上がった。被覆栽培の手間と人手不足が価格を押し上げている。",
    "鹿児島県の荒茶生産量は二年続けて静岡県を上回り、全国一位となった。平坦な茶園で大型の"
    "乗用摘採機が使えることが強みである。",
    "The Uji tasting panel awarded its gold prize to a kabusecha blend from Okabe, praising "
    "its deep umami and the bright green colour of the liquor after the second infusion.",
]
PDF_TITLE = "日本茶市場報告二〇二五"

COLUMN_LEFT = [
    "左の段の文章である。抹茶の輸出額は二〇二五年に過去最高を更新し、北米向けが全体の"
    "四割を占めた。",
]
COLUMN_RIGHT = [
    "右の段の文章である。ほうじ茶は焙煎の香りが好まれ、若い世代の間で人気が広がっている。",
]
VERTICAL = [
    "縦書きの段落である。茶摘みは八十八夜の頃に始まり、一番茶がもっとも香り高いとされる。",
    "二つ目の段落である。新茶の季節には各地で茶市が開かれる。",
]


def _wrap(text: str, width: int) -> list[str]:
    """Hard-wrap a paragraph: Japanese at ``width`` chars, English at word boundaries."""
    if text.isascii():
        return textwrap.wrap(text, width * 2)
    return [text[i : i + width] for i in range(0, len(text), width)]


def _font() -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont

    if JA_FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(JA_FONT))
        pdfmetrics.registerFont(UnicodeCIDFont(JA_FONT_V, isVertical=True))


def _paragraphs(
    c: object, paras: list[str], x: float, y: float, width: int, size: float = 11
) -> float:
    """Draw wrapped paragraphs from (x, y) down; return the next y."""
    for para in paras:
        for line in _wrap(para, width):
            c.setFont(JA_FONT, size)  # type: ignore[attr-defined]
            c.drawString(x, y, line)  # type: ignore[attr-defined]
            y -= size * 1.5
        y -= size * 1.5  # a blank line between paragraphs
    return y


def make_pdf(path: Path, pages: list[list[str]], title: str | None = None) -> Path:
    """A PDF with one list of paragraphs per page."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    _font()
    c = canvas.Canvas(str(path), pagesize=A4, invariant=True)
    if title:
        c.setTitle(title)
    for paras in pages:
        _paragraphs(c, paras, 60, A4[1] - 80, 38)
        c.showPage()
    c.save()
    return path


def make_report_pdf(path: Path) -> Path:
    """The two-page report whose facts are on page 2."""
    return make_pdf(path, [PDF_PAGE1, PDF_PAGE2], title=PDF_TITLE)


def make_two_column_pdf(path: Path) -> Path:
    """Two columns side by side: reading order is the whole left column, then the right."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    _font()
    c = canvas.Canvas(str(path), pagesize=A4, invariant=True)
    _paragraphs(c, COLUMN_LEFT, 40, A4[1] - 80, 18)
    _paragraphs(c, COLUMN_RIGHT, 310, A4[1] - 80, 18)
    c.showPage()
    c.save()
    return path


def make_vertical_pdf(path: Path) -> Path:
    """縦書き: columns run top to bottom, and follow each other from right to left."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    _font()
    c = canvas.Canvas(str(path), pagesize=A4, invariant=True)
    size = 12
    x = A4[0] - 60
    for para in VERTICAL:
        for line in _wrap(para, 30):
            c.setFont(JA_FONT_V, size)
            c.drawString(x, A4[1] - 60, line)
            x -= size * 1.6
        x -= size * 1.6
    c.showPage()
    c.save()
    return path


def make_long_pdf(path: Path, n_pages: int, extra: dict[int, str] | None = None) -> Path:
    """``n_pages`` pages of Japanese and English prose, each page numbered in its text;
    ``extra`` adds a paragraph to some pages (by page number)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    _font()
    c = canvas.Canvas(str(path), pagesize=A4, invariant=True)
    for i in range(1, n_pages + 1):
        paras = [
            f"第{i}頁の記録である。" + PDF_PAGE1[0],
            PDF_PAGE1[1],
            f"Page {i} of the long report. " + PDF_PAGE2[2],
            *([extra[i]] if extra and i in extra else []),
        ]
        _paragraphs(c, paras, 60, A4[1] - 80, 38)
        c.showPage()
    c.save()
    return path


def make_blank_pdf(path: Path, n_pages: int = 1) -> Path:
    """Pages with a drawn shape and no text layer, like a scan."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4, invariant=True)
    for _ in range(n_pages):
        c.rect(100, 100, 300, 500, fill=1)
        c.showPage()
    c.save()
    return path


# -- HTML ----------------------------------------------------------------------

HTML_URL = "https://example.jp/articles/matcha-history"
HTML_NOISE = ["ニュース一覧", "ログイン", "クッキーを使用", "人気記事ランキング",
              "プライバシーポリシー"]  # fmt: skip
HTML_PAGE = """<!DOCTYPE html>
<html lang="ja"><head><meta charset="utf-8">
<title>抹茶の歴史と製法 | お茶ニュース</title>
<link rel="canonical" href="{url}">
<meta property="og:url" content="https://example.jp/og-url-is-second-choice">
</head><body>
<header><nav><ul><li><a href="/">ホーム</a></li><li><a href="/news">ニュース一覧</a></li>
<li><a href="/login">ログイン</a></li></ul></nav></header>
<div class="cookie-banner" id="cookie-consent">当サイトはクッキーを使用しています。
<button>同意する</button></div>
<main><article>
<h1>抹茶の歴史と製法</h1>
<p>抹茶は碾茶を石臼で挽いた粉末である。鎌倉時代に栄西が宋から茶の種と飲み方を持ち帰った
ことが始まりとされる。</p>
<h2>碾茶の栽培</h2>
<p>碾茶は摘採前の約二十日間、茶園を黒い覆いで遮光して育てる。遮光によってテアニンが増え、
渋みが減る。</p>
<h2>石臼挽き</h2>
<p>花崗岩の石臼一台で一時間に挽ける抹茶は、わずか四十グラムほどである。</p>
<p>Stone mills turn slowly, at about one revolution per second, so that the leaf does not heat
up and lose its aroma.</p>
</article></main>
<aside><h3>人気記事ランキング</h3><ol><li><a href="/a">1位 緑茶と健康</a></li>
<li><a href="/b">2位 急須の選び方</a></li></ol></aside>
<footer><p>Copyright 2025 お茶ニュース</p><a href="/about">会社概要</a>
<a href="/privacy">プライバシーポリシー</a></footer>
</body></html>
"""

SJIS_PAGE = """<html><head>
<meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS">
<title>煎茶の淹れ方</title></head><body>
<div id="main"><h1>煎茶の淹れ方</h1>
<p>上級の煎茶を淹れる湯の温度は七十度から八十度がよい。熱湯を使うとカテキンが多く溶け出し、
苦みが強くなる。</p>
<p>茶葉の量は一人分で約三グラム、浸出時間は一分ほどが目安である。二煎目は少し熱めの湯で
短く淹れる。</p></div></body></html>
"""

NO_BODY_PAGE = """<html><head><title>Menu</title></head><body>
<nav><a href="/">Home</a> <a href="/a">About</a></nav><footer>© 2025</footer></body></html>
"""


def make_html(path: Path) -> Path:
    path.write_text(HTML_PAGE.format(url=HTML_URL), "utf-8")
    return path


def make_sjis_html(path: Path) -> Path:
    path.write_bytes(SJIS_PAGE.encode("cp932"))
    return path


# -- EPUB ----------------------------------------------------------------------

EPUB_CHAPTERS = [
    ("序章", "chap1.xhtml", True,
     "<p>この本は、宇治の茶師の一年を追った記録である。春の摘採から冬の口切りまでを描く。</p>"),
    ("口切りの儀", "chap2.xhtml", False,
     "<p>宇治の茶師は、毎年十一月に茶壺の封を切る口切りを行う。"
     "夏の間に熟成させた碾茶を、その日に初めて石臼で挽く。</p>"
     "<p>The opening of the jars is followed by a tea gathering for the growers' families.</p>"),
]  # fmt: skip


def make_epub(path: Path, broken_spine: bool = False) -> Path:
    """An EPUB of two chapters; the second has no heading of its own (the TOC names it).

    ``broken_spine`` adds a spine entry whose item is missing from the manifest.
    """
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("bunko-test-epub")
    book.set_title("宇治茶師の一年")
    book.set_language("ja")
    chapters = []
    for title, name, with_heading, body in EPUB_CHAPTERS:
        ch = epub.EpubHtml(title=title, file_name=name, lang="ja")
        ch.content = (f"<h1>{title}</h1>" if with_heading else "") + body
        book.add_item(ch)
        chapters.append(ch)
    book.toc = [epub.Link(c.file_name, c.title, c.file_name) for c in chapters]
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *chapters]
    epub.write_epub(str(path), book)
    if broken_spine:
        _break_spine(path)
    return path


def _break_spine(path: Path) -> None:
    """Rewrite the OPF so that the spine names an item the manifest does not have."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        items = {n: z.read(n) for n in z.namelist()}
    opf = next(n for n in items if n.endswith(".opf"))
    text = items[opf].decode("utf-8")
    text = text.replace("<spine", "<spine", 1).replace(
        "</spine>", '<itemref idref="missing-chapter"/></spine>', 1
    )
    items[opf] = text.encode("utf-8")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", items.pop("mimetype"), compress_type=zipfile.ZIP_STORED)
        for n, data in items.items():
            z.writestr(n, data, compress_type=zipfile.ZIP_DEFLATED)


# -- damaged and hostile PDFs --------------------------------------------------

MIXED_FACT = "茶園の霜害を防ぐ防霜ファンは、高さ約六メートルの柱の上で暖かい空気を送る。"


def make_mixed_pdf(path: Path) -> Path:
    """Page 1 text, page 2 no text layer (a scan), page 3 only "(cid:NNN)" garbage,
    page 4 text with a fact: pages 2 and 3 are skipped, page 4 keeps its number."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    _font()
    c = canvas.Canvas(str(path), pagesize=A4, invariant=True)
    _paragraphs(c, PDF_PAGE1[:1], 60, A4[1] - 80, 38)
    c.showPage()
    c.rect(100, 100, 300, 500, fill=1)
    c.showPage()
    c.setFont("Helvetica", 11)
    for i in range(20):
        c.drawString(60, A4[1] - 80 - 15 * i, "".join(f"(cid:{i * 7 + j})" for j in range(8)))
    c.showPage()
    _paragraphs(c, [MIXED_FACT], 60, A4[1] - 80, 38)
    c.showPage()
    c.save()
    return path


def make_encrypted_pdf(path: Path) -> Path:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    _font()
    c = canvas.Canvas(str(path), pagesize=A4, invariant=True, encrypt="secret")
    _paragraphs(c, PDF_PAGE1, 60, A4[1] - 80, 38)
    c.showPage()
    c.save()
    return path


def make_zero_page_pdf(path: Path) -> Path:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument.new()
    doc.save(str(path))
    doc.close()
    return path


def make_damaged_pdf(path: Path) -> Path:
    head = b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >>\n"
    path.write_bytes(head + bytes(range(256)) * 8)
    return path
