"""Concurrency: one writer at a time, and readers that see whole generations only."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import pytest

from bunko.api import Shelf
from bunko.config import Settings
from bunko.errors import IndexLockedError
from bunko.index import snapshot as snapshot_module
from bunko.index.store import IndexStore
from reliability_helpers import (
    articles,
    bunko,
    child_env,
    generations,
    mini_files,
    snapshot,
    write_corpus,
)


def _lock_held(index: Path) -> bool:
    """Whether some process holds the writer lock (probing never waits)."""
    try:
        fd = os.open(index / ".lock", os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock we may have taken
    return False


def _lines(stream: IO[str] | None) -> queue.Queue[str]:
    """The lines of a child's pipe as they come, read by a thread (so no read blocks us)."""
    assert stream is not None
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)
        lines.put("")  # end of the stream

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _wait_for(lines: queue.Queue[str], text: str, timeout: float = 300) -> str:
    """The first line holding ``text``; fails (never hangs) when it does not come."""
    deadline = time.monotonic() + timeout
    seen = []
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line == "":
            break
        seen.append(line)
        if text in line:
            return line
    raise AssertionError(f"no line with {text!r} in {timeout} s; got {seen}")


def test_second_writer_waits_while_the_lock_is_held(mini: Settings) -> None:
    """A second `bunko index` says it waits, writes nothing meanwhile, then goes on."""
    (mini.corpus / "new.md").write_text("# 新しい記事\n\n待っている間の記事です。\n", "utf-8")
    before = generations(mini.index)
    fd = os.open(mini.index / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # we are "the other update"
    try:
        proc = subprocess.Popen(
            bunko("index", "--json", "--corpus", mini.corpus, "--index", mini.index),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
        )  # fmt: skip
        try:
            err_lines = _lines(proc.stderr)
            line = _wait_for(err_lines, "another bunko process is updating")
            assert "waiting" in line, line
            time.sleep(0.5)
            assert proc.poll() is None  # still waiting
            assert generations(mini.index) == before  # and it wrote nothing
        except BaseException:
            proc.kill()
            raise
    finally:
        os.close(fd)
    assert proc.stdout is not None
    out = proc.stdout.read()
    assert proc.wait(timeout=600) == 0
    assert json.loads(out)["added"] == 1
    assert "new.md" in snapshot(mini.index).documents


def test_lock_without_waiting_says_another_update_is_running(mini: Settings) -> None:
    fd = os.open(mini.index / ".lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with (
            pytest.raises(IndexLockedError, match="another bunko process is updating"),
            IndexStore(mini.index).lock(wait=False),
        ):
            pass
    finally:
        os.close(fd)


def test_two_index_runs_at_once_never_interleave(tmp_path: Path) -> None:
    """Two real `bunko index` runs at once: one does the work, the other waits for it.

    We hold the lock until both say they wait, so they truly overlap; then we let go
    and they race for it.
    """
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write_corpus(corpus, {**mini_files(), **articles(4, 300, "two")})
    index.mkdir()
    fd = os.open(index / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    args = bunko("index", "--json", "--corpus", corpus, "--index", index)
    procs: list[subprocess.Popen[str]] = []
    try:
        for _ in range(2):
            procs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True, env=child_env()))  # fmt: skip
        errs = [_lines(p.stderr) for p in procs]
        for lines in errs:
            _wait_for(lines, "waiting for it")
    except BaseException:
        for p in procs:
            p.kill()
        raise
    finally:
        os.close(fd)
    outs = []
    for p in procs:
        assert p.stdout is not None
        outs.append(p.stdout.read())
        assert p.wait(timeout=600) == 0, "".join(list(errs[len(outs) - 1].queue))
    reports = [json.loads(out) for out in outs]
    snap = snapshot(index)
    # One built everything, the other found it done: no chunk embedded twice, one commit.
    assert sorted(r["chunks_embedded"] for r in reports) == [0, len(snap.vectors)]
    assert sorted(r["added"] for r in reports) == [0, len(snap.documents)]
    assert generations(index) == ["gen-000001"]


WRITER = """
import sys
from pathlib import Path
from bunko.api import Shelf
from bunko.config import Settings
corpus, index, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
shelf = Shelf(Settings.resolve(corpus=corpus, index=index))
for i in range(1, n + 1):
    v = "AB"[i % 2]
    for name in ("flip1.md", "flip2.md"):
        text = f"# {name}\\n\\n版{v}の本文です。{name}は版{v}です。\\n"
        (corpus / name).write_text(text, "utf-8")
    shelf.index()
"""


def _flip_text(name: str, v: str) -> str:
    return f"# {name}\n\n版{v}の本文です。{name}は版{v}です。\n"


def test_queries_during_updates_see_old_or_new_never_a_mix(tmp_path: Path) -> None:
    """A writer flips two files between versions A and B and commits each flip; a reader
    keeps opening and querying. Every index it sees has both files at one version."""
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write_corpus(
        corpus, {**mini_files(), **{n: _flip_text(n, "A") for n in ("flip1.md", "flip2.md")}}
    )
    settings = Settings.resolve(corpus=corpus, index=index)
    Shelf(settings).index()
    sha = {
        (n, v): hashlib.sha256(_flip_text(n, v).encode()).hexdigest()
        for n in ("flip1.md", "flip2.md")
        for v in "AB"
    }
    commits = 8
    log = open(tmp_path / "writer.log", "w+")  # noqa: SIM115 (a pipe nobody reads can fill)
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(corpus), str(index), str(commits)],
        env=child_env(), stderr=log, text=True,
    )  # fmt: skip
    reader = Shelf(settings)  # long-lived, like a server: reopens when CURRENT moves
    seen: set[str] = set()
    reads = 0
    deadline = time.monotonic() + 600
    while writer.poll() is None:
        if time.monotonic() > deadline:
            writer.kill()
            raise AssertionError(f"the writer did not finish {commits} commits in 600 s")
        snap = snapshot(index)  # checks the generation whole
        versions = {v for v in "AB" for n in ("flip1.md", "flip2.md")
                    if snap.documents[n][0] == sha[(n, v)]}  # fmt: skip
        assert len(versions) == 1, f"a mix of versions in {snap.generation}"
        # update=False: this reader only reads; a query that indexed the corpus itself
        # could catch the writer between its two file writes.
        result = reader.query("版の本文", k=10, mode="lexical", update=False)
        letters = {p.text.split("版")[1][0] for p in result.passages if "flip" in p.citation.source}
        assert len(letters) <= 1, f"one query saw versions {letters}"
        seen.add(snap.generation)
        reads += 1
    log.seek(0)
    err = log.read()
    log.close()
    assert writer.wait() == 0, err
    final = snapshot(index)
    assert final.documents["flip1.md"][0] == sha[("flip1.md", "AB"[commits % 2])]
    assert reads >= 3 and len(seen) >= 2, (reads, seen)
    print(f"\n[concurrency] {reads} reads during {commits} commits saw {len(seen)} generations")


def test_reader_survives_its_generation_being_removed_while_it_opens(
    mini: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two commits land while a reader is between reading CURRENT and opening the files
    of that generation, so the collector removes it: the reader opens the newest."""
    real_read = snapshot_module.read_manifest
    opening: list[Path] = []

    def read_manifest(folder: Path) -> dict[str, Any]:
        if not opening:
            opening.append(folder)
            for n in ("一", "二"):
                (mini.corpus / "race.md").write_text(f"# 競争\n\n{n}回目の本文です。\n", "utf-8")
                Shelf(mini).index()
            assert not folder.exists()
        return real_read(folder)

    monkeypatch.setattr(snapshot_module, "read_manifest", read_manifest)
    loaded = IndexStore(mini.index).load()
    assert opening and loaded.folder != opening[0]
    assert loaded.folder.name == generations(mini.index)[-1]
    assert "race.md" in loaded.documents()
