"""A damaged index is caught on load; a failed write leaves the previous index live.

Corruption: every kind of damage is detected when the index is opened, `bunko query`
and `bunko status` say `Error: … run bunko index --rebuild` (exit 1, no traceback),
and `bunko index --rebuild` (or plain `bunko index`, which warns) then succeeds.

Disk faults: ENOSPC injected at each write of a commit, a real full tmpfs, a real
read-only mount and a real unreadable corpus file (the last three need a private
mount namespace or a non-root user, and are skipped where neither is available).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bunko.api import Shelf
from bunko.cli import app
from bunko.config import Settings
from bunko.errors import IndexCorruptError
from bunko.index import lexical, segment
from bunko.index.format import GENERATION_FILES, SEGMENT_FILES
from bunko.index.store import IndexStore
from reliability_helpers import (
    articles,
    bunko,
    child_env,
    generations,
    index_file,
    leftovers,
    mini_files,
    snapshot,
    write_corpus,
)

runner = CliRunner()
FILES = GENERATION_FILES + SEGMENT_FILES


def where(s: Settings) -> list[str]:
    return ["--corpus", str(s.corpus), "--index", str(s.index)]


def live(s: Settings) -> Path:
    return s.index / (s.index / "CURRENT").read_text().strip()


# --- corruption ---------------------------------------------------------------


def _flip(path: Path, at: float, n: int = 16) -> None:
    data = bytearray(path.read_bytes())
    i = min(int(len(data) * at), len(data) - n)
    data[i : i + n] = bytes(b ^ 0xFF for b in data[i : i + n])
    path.write_bytes(bytes(data))


def _truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _edit_meta(fn: Callable[[dict[str, Any]], object]) -> Callable[[Path], None]:
    def edit(gen: Path) -> None:
        meta = json.loads(index_file(gen, "meta.json").read_text("utf-8"))
        fn(meta)
        index_file(gen, "meta.json").write_text(json.dumps(meta), "utf-8")

    return edit


def _older_meta(gen: Path) -> None:
    """meta.json of the generation before: a meta that belongs to other files."""
    older = sorted(p for p in gen.parent.glob("gen-*") if p != gen)[-1]
    shutil.copy(older / "meta.json", index_file(gen, "meta.json"))


DAMAGE: dict[str, Callable[[Path], None]] = {
    "faiss truncated to half": lambda g: _truncate(index_file(g, "vectors.faiss"), 0.5),
    "faiss one byte short": lambda g: index_file(g, "vectors.faiss").write_bytes(
        index_file(g, "vectors.faiss").read_bytes()[:-1]
    ),
    "faiss empty": lambda g: index_file(g, "vectors.faiss").write_bytes(b""),
    "faiss header flipped": lambda g: _flip(index_file(g, "vectors.faiss"), 0.0, 4),
    "faiss vectors flipped (same size)": lambda g: _flip(index_file(g, "vectors.faiss"), 0.6),
    "sqlite truncated": lambda g: _truncate(index_file(g, "chunks.sqlite"), 0.5),
    "sqlite empty": lambda g: index_file(g, "chunks.sqlite").write_bytes(b""),
    "sqlite header flipped": lambda g: _flip(index_file(g, "chunks.sqlite"), 0.0),
    "sqlite page flipped (same size)": lambda g: _flip(index_file(g, "chunks.sqlite"), 0.5),
    "sqlite last page flipped": lambda g: _flip(index_file(g, "chunks.sqlite"), 0.99),
    "bm25 npz flipped": lambda g: _flip(index_file(g, "lexical.npz"), 0.5),
    "bm25 terms flipped": lambda g: _flip(index_file(g, "lexical.npz"), 0.93, 2),
    "meta: wrong chunk count": _edit_meta(lambda m: m.update(chunks=m["chunks"] + 1)),
    "meta: wrong dimension, no sizes or sums": _edit_meta(
        lambda m: (m.update(dimension=768), m.pop("files"), m.pop("crc32"))
    ),
    "meta: wrong checksum": _edit_meta(
        lambda m: m["crc32"].update({k: 1 for k in m["crc32"] if k.endswith("vectors.faiss")})
    ),
    "meta: key missing": _edit_meta(lambda m: m.pop("fingerprint")),
    # Defect 7: an edited next_id made the next update reuse chunk ids, unsaid.
    "meta: next_id lowered": _edit_meta(lambda m: m.update(next_id=1)),
    "meta: other format": _edit_meta(lambda m: m.update(format=99)),
    "meta: from the generation before": _older_meta,
    "meta: not an object": lambda g: index_file(g, "meta.json").write_text("[1, 2]", "utf-8"),
    "meta: not JSON": lambda g: index_file(g, "meta.json").write_text('{"format": 1,', "utf-8"),
    **{f"{name} missing": (lambda n: lambda g: index_file(g, n).unlink())(name) for name in FILES},
    "generation folder missing": lambda g: shutil.rmtree(g),
    "CURRENT empty": lambda g: (g.parent / "CURRENT").write_text("", "utf-8"),
    "CURRENT names a path outside": lambda g: (g.parent / "CURRENT").write_text("../x\n"),
    # Defect 4: a non-UTF-8 byte made every command fail with UnicodeDecodeError.
    "CURRENT with a non-UTF-8 byte": lambda g: (g.parent / "CURRENT").write_bytes(
        g.name.encode() + b"\xff\n"
    ),
}


@pytest.fixture(scope="module")
def _built_mini2(_built_mini: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mini2")
    shutil.copytree(_built_mini / "corpus", root / "corpus")
    shutil.copytree(_built_mini / "index", root / "index")
    (root / "corpus" / "extra.md").write_text("# 追加\n\n二つ目の世代の記事です。\n", "utf-8")
    Shelf(Settings.resolve(corpus=root / "corpus", index=root / "index")).index()
    assert len(generations(root / "index")) == 2
    return root


@pytest.fixture
def mini2(tmp_path: Path, _built_mini2: Path) -> Settings:
    """The mini index with a second, older generation beside the live one."""
    shutil.copytree(_built_mini2 / "corpus", tmp_path / "corpus")
    shutil.copytree(_built_mini2 / "index", tmp_path / "index")
    return Settings.resolve(corpus=tmp_path / "corpus", index=tmp_path / "index")


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damage_is_detected_on_load_with_the_fix_named(mini2: Settings, damage: str) -> None:
    DAMAGE[damage](live(mini2))
    with pytest.raises(IndexCorruptError, match="bunko index --rebuild"):
        IndexStore(mini2.index).load()
    for cmd in (["query", "富士山の高さは？"], ["status"]):
        res = runner.invoke(app, [*cmd, *where(mini2)])
        assert res.exit_code == 1, res.output
        assert res.stderr.startswith("Error: ") and "bunko index --rebuild" in res.stderr
        assert res.exception is None or isinstance(res.exception, SystemExit)


# One kind per file by default; all of them with -m slow.
REBUILD_FAST = {
    "faiss truncated to half",
    "sqlite page flipped (same size)",
    "bm25 npz flipped",
    "meta: from the generation before",
    "generation folder missing",
    "CURRENT empty",
    "CURRENT with a non-UTF-8 byte",
}


@pytest.mark.parametrize(
    "damage", [d if d in REBUILD_FAST else pytest.param(d, marks=pytest.mark.slow) for d in DAMAGE]
)
def test_rebuild_after_damage_succeeds(mini2: Settings, damage: str) -> None:
    DAMAGE[damage](live(mini2))
    res = runner.invoke(app, ["index", "--rebuild", "--json", *where(mini2)])
    assert res.exit_code == 0, res.output
    assert set(snapshot(mini2.index).documents) == {*mini_files(), "extra.md"}
    res = runner.invoke(app, ["query", "富士山の高さは？", "--json", *where(mini2)])
    assert res.exit_code == 0 and json.loads(res.stdout)["results"][0]["source"] == "fuji.md"


def test_plain_index_warns_and_rebuilds_a_damaged_index(mini2: Settings) -> None:
    _flip(index_file(live(mini2), "chunks.sqlite"), 0.5)
    res = runner.invoke(app, ["index", "--json", *where(mini2)])
    assert res.exit_code == 0, res.output
    assert "damaged" in res.stderr and json.loads(res.stdout)["rebuilt"] is True
    snapshot(mini2.index)


def test_writer_rebuilds_when_next_id_is_below_live_ids(mini2: Settings) -> None:
    # Defect 7, a manifest without its own checksum (hand-edited, or from before it had
    # one): the writer checks next_id against the segments and rebuilds, saying so.
    _edit_meta(lambda m: (m.update(next_id=1), m.pop("meta_crc32", None)))(live(mini2))
    (mini2.corpus / "more.md").write_text("# 別の記事\n\n三つ目の世代です。\n", "utf-8")
    res = runner.invoke(app, ["index", "--json", *where(mini2)])
    assert res.exit_code == 0, res.output
    assert "next_id" in res.stderr and json.loads(res.stdout)["rebuilt"] is True
    snapshot(mini2.index)  # checks it whole: no duplicate chunk ids


def test_every_flipped_block_and_every_truncation_is_caught_on_load(mini: Settings) -> None:
    """Sweep: 16 bytes flipped every 512 bytes of every index file, and each file cut
    at ten lengths. Each one of these must fail to load, as IndexCorruptError."""
    gen = live(mini)
    pristine = {n: index_file(gen, n).read_bytes() for n in FILES}
    cases = 0
    for name, data in pristine.items():
        edits = [data[:i] + bytes(b ^ 0xFF for b in data[i : i + 16]) + data[i + 16 :]
                 for i in range(0, len(data) - 16, 512)]  # fmt: skip
        edits += [data[: len(data) * k // 10] for k in range(10)]
        for bad in edits:
            index_file(gen, name).write_bytes(bad)
            with pytest.raises(IndexCorruptError):
                IndexStore(mini.index).load().close()
            cases += 1
        index_file(gen, name).write_bytes(data)
    IndexStore(mini.index).load().close()
    print(f"\n[index] {cases} damaged or truncated files, all refused on load")


def test_damage_behind_an_index_without_checksums_never_crashes_a_query(mini: Settings) -> None:
    """Indexes written before checksums (or damage the sums cannot see) still fail with
    IndexCorruptError, not a KeyError or a raw sqlite error, when a query meets it."""
    gen = live(mini)
    meta = json.loads(index_file(gen, "meta.json").read_text("utf-8"))
    meta.pop("crc32")
    index_file(gen, "meta.json").write_text(json.dumps(meta), "utf-8")
    db = index_file(gen, "chunks.sqlite").read_bytes()
    outcomes: dict[str, int] = {}
    corpus_files = {p.name for p in mini.corpus.iterdir()}
    texts = {n: (mini.corpus / n).read_text("utf-8") for n in corpus_files}
    for page in range(len(db) // 4096):
        bad = bytearray(db)
        for i in range(page * 4096 + 100, page * 4096 + 4000):
            bad[i] = (bad[i] * 7 + 13) & 0xFF
        index_file(gen, "chunks.sqlite").write_bytes(bytes(bad))
        try:
            shelf = Shelf(mini)
            answers = [shelf.query(q, k=10, mode="lexical")
                       for q in ("富士山の高さは？", "コーヒー", "sushi")]  # fmt: skip
            status = shelf.status()
            kind = "answered"
        except IndexCorruptError:
            kind = "IndexCorruptError"
        else:
            # What it answered must be true to the files: no garbled passage, no
            # citation pointing elsewhere, no document that is not in the corpus.
            assert set(status.stale_new) <= corpus_files
            for result in answers:
                for p in result.passages:
                    c = p.citation
                    assert c.source in corpus_files, (page, c.source)
                    text = texts[c.source]
                    assert text[c.char_start : c.char_end] == p.text, (page, c)
                    assert text[p.highlight_span[0] : p.highlight_span[1]] == p.highlight
        outcomes[kind] = outcomes.get(kind, 0) + 1
    index_file(gen, "chunks.sqlite").write_bytes(db)
    print(f"\n[index] damaged SQLite pages without checksums: {outcomes}")


# --- disk faults: injected ----------------------------------------------------


def _enospc(*_: object, **__: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _fail_on(
    monkeypatch: pytest.MonkeyPatch, obj: Any, attr: str, name: Callable[[str], bool]
) -> None:
    """``obj.attr`` fails with ENOSPC when called on a path whose file name matches
    ``name`` (the fault is picked by what is written, not by call order)."""
    real = getattr(obj, attr)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # rename/replace: the name it gets (a temp name says nothing of what it is)
        target = args[1] if attr in ("rename", "replace") else args[0]
        if isinstance(target, int):  # an fd (fsync): the file it is open on
            target = os.readlink(f"/proc/self/fd/{target}")
        if name(Path(target).name):
            _enospc()
        return real(*args, **kwargs)

    monkeypatch.setattr(obj, attr, wrapper)


def _half_then_enospc(real: Callable[..., Any]) -> Callable[..., Any]:
    def write(self: Any, folder: Path) -> None:
        real(self, folder)
        _truncate(folder / "lexical.npz", 0.5)
        _enospc()

    return write


def _sqlite_full(*_: object) -> None:
    raise sqlite3.OperationalError("database or disk is full")


FAULTS: dict[str, Callable[[pytest.MonkeyPatch], None]] = {
    "sqlite: database or disk is full": lambda mp: mp.setattr(
        segment, "insert_chunks", _sqlite_full
    ),
    "bm25 written halfway": lambda mp: mp.setattr(
        lexical.Postings, "save", _half_then_enospc(lexical.Postings.save)
    ),
    # Each file of a new segment and of the new generation, then the CURRENT pointer.
    **{f"fsync of {f}": partial(_fail_on, obj=os, attr="fsync", name=f.__eq__) for f in FILES},
    "fsync of the CURRENT pointer": partial(
        _fail_on, obj=os, attr="fsync", name=lambda n: n.startswith(".CURRENT-")
    ),
    "rename of the segment": partial(
        _fail_on, obj=os, attr="rename", name=lambda n: n.startswith("seg-") and "." not in n
    ),
    "rename of the generation": partial(
        _fail_on, obj=os, attr="rename", name=lambda n: n.startswith("gen-")
    ),
    "swap of CURRENT": partial(_fail_on, obj=os, attr="replace", name="CURRENT".__eq__),
    "mkdir of the new segment or generation": partial(
        _fail_on, obj=Path, attr="mkdir", name=lambda n: n.startswith(".tmp-")
    ),
}


SLOW_FAULTS = {f"fsync of {f}" for f in FILES[1:]}


@pytest.mark.parametrize(
    "fault", [pytest.param(f, marks=pytest.mark.slow) if f in SLOW_FAULTS else f for f in FAULTS]
)
def test_write_failure_keeps_the_previous_index(
    mini: Settings, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    before = snapshot(mini.index)
    (mini.corpus / "new.md").write_text("# 新しい\n\n書けない記事です。\n", "utf-8")
    with monkeypatch.context() as mp:
        FAULTS[fault](mp)
        res = runner.invoke(app, ["index", *where(mini)])
    assert res.exit_code == 1, res.output
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: could not write the index"), res.stderr
    assert last.endswith("the previous index is unchanged")
    if "sqlite" not in fault:
        assert "the disk is full" in res.stderr
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert snapshot(mini.index).same_content(before)
    assert not [p for p in leftovers(mini.index) if p.startswith(".tmp-")]
    res = runner.invoke(app, ["index", "--json", *where(mini)])  # the disk has room again
    assert res.exit_code == 0 and json.loads(res.stdout)["added"] == 1
    assert leftovers(mini.index) == [] and len(generations(mini.index)) <= 2


# --- disk faults: real, in a private mount namespace --------------------------


def _unshare_works() -> bool:
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-Urm", "sh", "-c", "mount -t tmpfs none /mnt"],
                           capture_output=True)  # fmt: skip
    return probe.returncode == 0


needs_unshare = pytest.mark.skipif(
    not _unshare_works(), reason="needs `unshare -Urm` (user and mount namespaces)"
)


def _in_namespace(script: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["unshare", "-Urm", "sh", "-ec", script], capture_output=True,
                          text=True, env=child_env(), timeout=timeout)  # fmt: skip


def _cmd(*args: str | Path) -> str:
    return " ".join(f"'{a}'" for a in bunko(*args))


@needs_unshare
@pytest.mark.parametrize(
    "sizes",
    [(0, 16, 1024), pytest.param((4, 8, 12, 20, 24, 28, 32, 40, 48, 64), marks=pytest.mark.slow)],
)
def test_real_full_disk_keeps_the_previous_index(
    mini: Settings, tmp_path: Path, sizes: tuple[int, ...]
) -> None:
    """The index lives on a tmpfs just too small for the next generation: ENOSPC from
    whichever writer hits it first (SQLite, FAISS, numpy, json). Sizes are swept."""
    before = snapshot(mini.index)
    used = sum(p.stat().st_size for p in mini.index.rglob("*") if p.is_file())
    bigger = tmp_path / "bigger"
    write_corpus(bigger, {**mini_files(), **articles(3, 400, "full")})
    outcomes = []
    for extra_kb in sizes:
        size = (used // 4096 + 1) * 4 + 4 * len(FILES) + extra_kb
        mnt, out = tmp_path / f"mnt{extra_kb}", tmp_path / f"out{extra_kb}"
        mnt.mkdir()
        out.mkdir()
        done = _in_namespace(
            f"mount -t tmpfs -o size={size}k tmpfs '{mnt}'; cp -a '{mini.index}' '{mnt}/index'\n"
            # --rebuild: the index belongs to the mini corpus folder; a rebuild for another
            # folder writes a whole generation too.
            f"set +e; {_cmd('index', '--rebuild', '--corpus', bigger, '--index', mnt / 'index')}"
            f" >'{out}/stdout' 2>'{out}/stderr'; echo $? >'{out}/rc'; set -e\n"
            f"cp -a '{mnt}/index' '{out}/index'"
        )
        assert done.returncode == 0, done.stderr
        rc = int((out / "rc").read_text())
        err = (out / "stderr").read_text()
        assert "Traceback" not in err
        snap = snapshot(out / "index")
        if rc == 1:
            assert "Error: could not write the index" in err and "unchanged" in err, err
            assert "disk is full" in err or "database or disk is full" in err, err
            assert snap.same_content(before)
        else:
            assert rc == 0, err
            assert set(snap.documents) == set(mini_files()) | {f"full0{i}.md" for i in range(3)}
        outcomes.append((size, rc, err.strip().splitlines()[-1].split("(")[-1][:40]))
    rcs = [rc for _, rc, _ in outcomes]
    assert 1 in rcs, outcomes
    if sizes[-1] >= 1024:
        assert rcs[-1] == 0, outcomes
    print(f"\n[disk] tmpfs KiB, exit code, reason: {outcomes}")


@needs_unshare
def test_real_read_only_index_folder(mini: Settings) -> None:
    before = snapshot(mini.index)
    (mini.corpus / "new.md").write_text("# 新しい\n\n読み取り専用の時の記事です。\n", "utf-8")
    done = _in_namespace(
        f"mount --bind '{mini.index}' '{mini.index}'\n"
        f"mount -o remount,bind,ro '{mini.index}'\n"
        f'set +e; {_cmd("index", *where(mini))}; echo "rc=$?"; set -e\n'
        f"{_cmd('query', '富士山の高さは？', '--json', *where(mini))}"
    )
    assert done.returncode == 0, done.stderr  # the query on the read-only index worked
    assert "rc=1" in done.stdout
    assert "Error: cannot write to the index folder" in done.stderr, done.stderr
    assert "Read-only file system" in done.stderr and "Traceback" not in done.stderr
    assert '"source": "fuji.md"' in done.stdout
    assert snapshot(mini.index).same_content(before)


# --- an unreadable corpus file, for real --------------------------------------


def test_unreadable_corpus_file_is_skipped_with_a_warning(tmp_path: Path) -> None:
    """chmod 000 on one article. Root reads anything, so as root the run is made in a
    user namespace as an ordinary uid (`unshare --map-user`), where the mode holds."""
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write_corpus(corpus, {**mini_files(), "secret.md": "# 秘密\n\n読めない記事です。\n"})
    (corpus / "secret.md").chmod(0o000)
    args = bunko("index", "--json", "--corpus", corpus, "--index", index)
    if os.geteuid() == 0:
        if shutil.which("unshare") is None:
            pytest.skip("root without unshare: cannot make a file unreadable")
        args = ["unshare", "-U", "--map-user=65534", "--map-group=65534", *args]
    try:
        done = subprocess.run(args, env=child_env(), capture_output=True, text=True, timeout=600)
    finally:
        (corpus / "secret.md").chmod(0o644)
    if "unshare failed" in done.stderr or "unshare:" in done.stderr[:100]:
        pytest.skip(f"no user namespaces here: {done.stderr[:200]}")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["skipped_files"] == ["secret.md: permission denied"]
    assert "skipping secret.md: permission denied" in done.stderr
    assert report["added"] == len(mini_files())
