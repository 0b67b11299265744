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


def make_long_pdf(path: Path, n_pages: int) -> Path:
    """``n_pages`` pages of Japanese and English prose, each page numbered in its text."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    _font()
    c = canvas.Canvas(str(path), pagesize=A4, invariant=True)
    for i in range(1, n_pages + 1):
        paras = [
            f"第{i}頁の記録である。" + PDF_PAGE1[0],
            PDF_PAGE1[1],
            f"Page {i} of the long report. " + PDF_PAGE2[2],
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
