"""Compare PDF text extractors on Japanese PDFs made with reportlab.

Candidates: pypdfium2 (PDFium), pdfminer.six and pypdf, each with its plain text
call, plus bunko's own PDF reader (pypdfium2 with line re-joining and vertical
text ordering). For every fixture it reports:

- ``exact``: how many of the fixture's paragraphs appear whole and in order once
  whitespace is removed (so a reader is not punished for line breaks);
- ``sim``: difflib similarity of the whitespace-free output to the expected text;

then extraction speed on a long PDF (pages per wall second and per CPU second,
best of ``--repeat``; the CPU figure is steadier on a shared machine) and each
library's installed size.

Then it measures bunko's reader alone: peak memory (max RSS) extracting a
``--memory-pages`` PDF, against a process that only loads the same bytes, and the
speed of the HTML and EPUB readers on the test fixtures.

    python benchmarks/pdf_readers.py            # full: 200-page speed run, 500-page memory
    python benchmarks/pdf_readers.py --smoke    # tiny, for the test suite
"""

from __future__ import annotations

import argparse
import difflib
import importlib.metadata
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import format_files as ff

_WS = re.compile(r"\s+")


def _pdfium(path: Path) -> str:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(path))
    try:
        out = []
        for i in range(len(doc)):
            page = doc[i]
            tp = page.get_textpage()
            out.append(tp.get_text_range())
            tp.close()
            page.close()
        return "\n".join(out)
    finally:
        doc.close()


def _pdfminer(path: Path) -> str:
    from pdfminer.high_level import extract_text

    return str(extract_text(str(path)))


def _pypdf(path: Path) -> str:
    from pypdf import PdfReader

    return "\n".join(p.extract_text() or "" for p in PdfReader(str(path)).pages)


def _bunko(path: Path) -> str:
    from bunko.readers import pdf

    return pdf.read(path.read_bytes(), path.name).text


READERS: dict[str, tuple[str, Callable[[Path], str]]] = {
    "pypdfium2": ("pypdfium2", _pdfium),
    "pdfminer.six": ("pdfminer.six", _pdfminer),
    "pypdf": ("pypdf", _pypdf),
    "bunko (pypdfium2)": ("pypdfium2", _bunko),
}


def _truncated(d: Path) -> Path:
    """The report with its cross-reference table and trailer cut off, as a broken
    download leaves it."""
    data = ff.make_report_pdf(d / "full.pdf").read_bytes()
    path = d / "truncated.pdf"
    path.write_bytes(data[: data.rindex(b"xref")])
    return path


def _installed_mb(dist: str) -> float:
    files = importlib.metadata.distribution(dist).files or []
    total = 0
    for f in files:
        p = Path(str(f.locate()))
        if p.is_file():
            total += p.stat().st_size
    return total / 1e6


def _score(text: str, paras: list[str]) -> tuple[int, float]:
    got = _WS.sub("", text)
    want = [_WS.sub("", p) for p in paras]
    exact, at = 0, 0
    for w in want:
        found = got.find(w, at)
        if found >= 0:
            exact += 1
            at = found + len(w)
    sim = difflib.SequenceMatcher(None, got, "".join(want), autojunk=False).ratio()
    return exact, sim


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny run for the test suite")
    ap.add_argument("--pages", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--memory-pages", type=int, default=500)
    args = ap.parse_args(argv)
    pages = 3 if args.smoke else args.pages
    repeat = 1 if args.smoke else args.repeat
    only = ["pypdfium2", "bunko (pypdfium2)"] if args.smoke else list(READERS)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        fixtures = {
            "report (2 pages, ja+en)": (
                ff.make_report_pdf(d / "report.pdf"),
                ff.PDF_PAGE1 + ff.PDF_PAGE2,
            ),
            "two columns": (
                ff.make_two_column_pdf(d / "cols.pdf"),
                ff.COLUMN_LEFT + ff.COLUMN_RIGHT,
            ),
            "vertical (縦書き)": (ff.make_vertical_pdf(d / "vert.pdf"), ff.VERTICAL),
            "truncated (no xref)": (_truncated(d), ff.PDF_PAGE1 + ff.PDF_PAGE2),
        }
        long_pdf = ff.make_long_pdf(d / "long.pdf", pages)
        print(
            f"| reader | {' | '.join(fixtures)} | pages/s ({pages} pages) | pages/CPU-s "
            "| installed MB |"
        )
        print("|---|" + "---|" * (len(fixtures) + 3))
        for name in only:
            dist, fn = READERS[name]
            cells = []
            for path, paras in fixtures.values():
                try:
                    exact, sim = _score(fn(path), paras)
                except Exception as exc:  # a candidate failing is a result, not a crash
                    cells.append(f"fails ({type(exc).__name__})")
                    continue
                cells.append(f"{exact}/{len(paras)} whole, sim {sim:.2f}")
            best = cpu = float("inf")
            for _ in range(repeat):
                t0, c0 = time.perf_counter(), time.process_time()
                fn(long_pdf)
                best = min(best, time.perf_counter() - t0)
                cpu = min(cpu, time.process_time() - c0)
            print(
                f"| {name} | {' | '.join(cells)} | {pages / best:.0f} | {pages / cpu:.0f} "
                f"| {_installed_mb(dist):.1f} |"
            )
        n_mem = 5 if args.smoke else args.memory_pages
        _memory(ff.make_long_pdf(d / "memory.pdf", n_mem), n_mem)
        _other_formats(d, 2 if args.smoke else 50)
    return 0


_RSS = (
    "import resource, sys, pathlib; import pypdfium2; from bunko.readers import pdf;"
    "data = pathlib.Path(sys.argv[1]).read_bytes();"
    "{work};"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)"
)


def _memory(path: Path, n_pages: int) -> None:
    """Peak RSS of extracting ``path`` against a process that only loads its bytes."""
    peaks = {}
    for label, work in (("load only", "pass"), ("extract", "t = pdf.read(data, 'x').text")):
        out = subprocess.run(
            [sys.executable, "-c", _RSS.format(work=work), str(path)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        peaks[label] = int(out.stdout.split()[-1])
    size = path.stat().st_size / 1e6
    print(
        f"\n{n_pages}-page PDF ({size:.1f} MB): peak RSS {peaks['extract']} MB extracting, "
        f"{peaks['load only']} MB just loading it (+{peaks['extract'] - peaks['load only']} MB)"
    )


def _other_formats(d: Path, repeat: int) -> None:
    from bunko.readers import epub, html

    for name, path, reader in (
        ("HTML (trafilatura)", ff.make_html(d / "page.html"), html),
        ("EPUB (ebooklib)", ff.make_epub(d / "book.epub"), epub),
    ):
        data = path.read_bytes()
        reader.read(data, path.name)  # warm: imports
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(repeat):
            reader.read(data, path.name)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(
            f"{name}: {repeat / wall:.0f} files/s, {repeat / cpu:.0f} files/CPU-s "
            f"({len(data)} bytes each)"
        )


if __name__ == "__main__":
    raise SystemExit(main())
