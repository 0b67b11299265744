"""bunko.serve.updater: a server indexes corpus changes in the background, and answers meanwhile."""

from __future__ import annotations

import signal
import subprocess
import threading
import urllib.parse
from pathlib import Path

import pytest

from bunko.api import Shelf
from bunko.config import Settings
from bunko.retrieval.query import QueryRequest
from bunko.serve.reader import read_lines
from bunko.serve.results import SharedShelf
from serve_helpers import get_json, started

QUESTION = "柘榴の目印はどこ？"
NEW = "# 新しい記事\n\n柘榴の目印です。\n"
HANG_GUARD_S = 120  # only stops a deadlocked test from hanging CI; never asserted on


def test_queries_answer_stale_at_once_while_one_update_runs(
    mini: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Defect 2: the server indexed inside the request, holding the shelf lock, so a
    # big new file stalled that query and queued status and everything else behind it.
    release = threading.Event()
    updates: list[str] = []
    real_index = Shelf.index

    def held_index(self: Shelf, *args: object, **kwargs: object) -> object:
        updates.append(threading.current_thread().name)
        release.wait(HANG_GUARD_S)  # the update is "still running" until released
        return real_index(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Shelf, "index", held_index)
    shared = SharedShelf(Shelf(mini))
    (mini.corpus / "new.md").write_text(NEW, "utf-8")
    try:
        first = shared.query(QueryRequest(QUESTION, 3, "hybrid"))
        assert first.stale and first.pending == ("new: new.md",)
        assert "new.md" not in {p.citation.source for p in first.passages}
        status = shared.status()
        assert status["updating"] is True and list(status["stale_new"]) == ["new.md"]
        assert read_lines(mini.corpus, "new.md").text == NEW
        again = shared.query(QueryRequest(QUESTION, 3, "hybrid"))
        assert again.stale and again.pending == ("new: new.md",)
        assert updates == ["bunko-update"]  # one update, off the request thread
    finally:
        release.set()
        shared.updater.join(HANG_GUARD_S)
    after = shared.query(QueryRequest(QUESTION, 3, "hybrid"))
    assert not after.stale and after.pending == ()
    assert after.passages[0].citation.source == "new.md"
    assert updates == ["bunko-update"]
    assert shared.status()["updating"] is False


def test_a_failed_update_is_not_retried_until_the_corpus_changes_again(
    mini: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bunko.errors import IndexWriteError

    calls: list[int] = []

    def failing(self: Shelf, *args: object, **kwargs: object) -> object:
        calls.append(1)
        raise IndexWriteError("disk full")

    monkeypatch.setattr(Shelf, "index", failing)
    shared = SharedShelf(Shelf(mini))
    (mini.corpus / "new.md").write_text(NEW, "utf-8")
    for _ in range(3):
        assert shared.query(QueryRequest(QUESTION, 3, "hybrid")).stale
        shared.updater.join(HANG_GUARD_S)
    assert calls == [1]
    (mini.corpus / "other.md").write_text("# 別\n\n林檎です。\n", "utf-8")
    assert shared.query(QueryRequest(QUESTION, 3, "hybrid")).stale
    shared.updater.join(HANG_GUARD_S)
    assert calls == [1, 1]


def test_server_answers_during_a_long_update_and_stops_on_sigterm(
    mini: Settings, tmp_path: Path
) -> None:
    # Defect 2 through a real server: a large file dropped into the corpus; /api/query,
    # /api/status and /api/read answer while it is indexed, and SIGTERM stops the server.
    with started(mini) as (port, proc):
        para = "柘榴の目印です。富士山の麓には湖がいくつもあり、季節ごとに景色が変わります。\n\n"
        (mini.corpus / "big.md").write_text("# 大きな記事\n\n" + para * 40_000, "utf-8")
        status, data = get_json(port, "/api/query?" + urllib.parse.urlencode({"q": QUESTION}))
        assert status == 200 and data["stale"] is True and data["pending"] == ["new: big.md"]
        status, data = get_json(port, "/api/status")
        assert status == 200 and data["updating"] is True
        status, data = get_json(port, "/api/read?source=fuji.md")
        assert status == 200 and data["lines"][0] == 1
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(HANG_GUARD_S)
        except subprocess.TimeoutExpired:
            pytest.fail("bunko serve did not stop on SIGTERM")
        assert code is not None
