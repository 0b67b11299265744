"""bunko.corpus.paths and bunko.corpus.lines: confinement, opened once, and the one line reader."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bunko.errors import BunkoError, SkipFile, SourceError, SourceNotFoundError
from bunko.ingest import read_document
from bunko.serve.reader import ReadError, read_lines

SECRET = "TOP SECRET launch codes\n"
ATTEMPTS = 10_000


@pytest.fixture
def swapping(tmp_path: Path) -> Iterator[Path]:
    """A corpus whose ``race.txt`` is a link swapped, as fast as a thread can, between
    an article inside the corpus and a secret file outside it (``os.replace``)."""
    corpus, outside = tmp_path / "corpus", tmp_path / "outside"
    corpus.mkdir()
    outside.mkdir()
    (corpus / "inside.txt").write_text("inside the corpus\n", "utf-8")
    (outside / "secret.txt").write_text(SECRET, "utf-8")
    race = corpus / "race.txt"
    os.symlink(corpus / "inside.txt", race)
    stop = threading.Event()
    swaps = [0]

    def swap() -> None:
        targets = (outside / "secret.txt", corpus / "inside.txt")
        tmp = corpus / ".race.tmp"
        while not stop.is_set():
            for target in targets:
                tmp.unlink(missing_ok=True)
                os.symlink(target, tmp)
                os.replace(tmp, race)
                swaps[0] += 1

    thread = threading.Thread(target=swap, daemon=True)
    thread.start()
    try:
        yield corpus
    finally:
        stop.set()
        thread.join()
    assert swaps[0] > 10  # the race really ran


def test_read_lines_never_serves_outside_during_a_link_swap(swapping: Path) -> None:
    # Defect 1: the reader checked where the link pointed, then opened the path again.
    served = refused = 0
    for _ in range(ATTEMPTS):
        try:
            page = read_lines(swapping, "race.txt")
        except ReadError:
            refused += 1
            continue
        assert "SECRET" not in page.text
        served += 1
    assert served + refused == ATTEMPTS
    assert served > 0  # the inside file is still served when the link points inside


def test_ingest_reader_never_reads_outside_during_a_link_swap(swapping: Path) -> None:
    read = skipped = 0
    for _ in range(ATTEMPTS):
        try:
            doc = read_document(swapping / "race.txt", swapping)
        except SkipFile as skip:
            assert "outside" in skip.reason and skip.transient
            skipped += 1
            continue
        assert "SECRET" not in doc.text
        read += 1
    assert read > 0 and skipped > 0


def test_change_check_never_hashes_outside_during_a_link_swap(swapping: Path) -> None:
    # The freshness check hashes a file whose mtime moved: through the same one open.
    import hashlib

    from bunko.corpus.changes import sha256_file

    inside = hashlib.sha256(b"inside the corpus\n").hexdigest()
    hashed = refused = 0
    for _ in range(ATTEMPTS // 10):
        try:
            digest = sha256_file(swapping, swapping / "race.txt")
        except SourceError:
            refused += 1
            continue
        assert digest == inside
        hashed += 1
    assert hashed > 0 and hashed + refused == ATTEMPTS // 10


def test_folder_swapped_for_a_link_is_not_followed(tmp_path: Path) -> None:
    # A folder on the way replaced by a link out, after the listing: refused, not read.
    from bunko.corpus.paths import OutsideCorpus, read_inside

    corpus, outside = tmp_path / "corpus", tmp_path / "outside"
    (corpus / "sub").mkdir(parents=True)
    outside.mkdir()
    (corpus / "sub" / "a.txt").write_text("inside\n", "utf-8")
    (outside / "a.txt").write_text(SECRET, "utf-8")
    assert read_inside(corpus, corpus / "sub" / "a.txt")[0] == b"inside\n"
    os.rename(corpus / "sub", tmp_path / "old-sub")
    os.symlink(outside, corpus / "sub")
    with pytest.raises(OutsideCorpus):
        read_inside(corpus, corpus / "sub" / "a.txt")


@pytest.mark.parametrize("name", ["config.yaml", "credentials", "notes/keys.json", "a.txt.bak"])
def test_read_serves_only_articles(tmp_path: Path, name: str) -> None:
    # Defect 10: any non-hidden file in the corpus folder was served. A file that is no
    # article is "not found" (HTTP 404), as a missing one: its existence is not told.
    (tmp_path / "notes").mkdir()
    (tmp_path / name).write_text("password: hunter2\n", "utf-8")
    (tmp_path / "a.md").write_text("# A\nbody\n", "utf-8")
    with pytest.raises(SourceNotFoundError, match="only articles"):
        read_lines(tmp_path, name)
    assert read_lines(tmp_path, "a.md").text == "# A\nbody\n"


def test_show_reads_through_the_same_module(tmp_path: Path) -> None:
    from bunko.shelfops import show

    (tmp_path / "config.yaml").write_text("password: hunter2\n", "utf-8")
    (tmp_path / "a.md").write_text("# A\r\nbody\nend", "utf-8")
    shown = show("a.md:2-3", tmp_path)
    assert [(ln.number, ln.text) for ln in shown.lines] == [(2, "body"), (3, "end")]
    assert shown.total_lines == 3 and shown.heading == "A"
    with pytest.raises(BunkoError, match="only articles"):
        show("config.yaml", tmp_path)
