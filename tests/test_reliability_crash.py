"""Crash safety: kill a real `bunko index` (SIGKILL, SIGINT) and check what is left.

Each trial starts from a committed index of corpus S0, points `bunko index` at
corpus S1 (articles added, one changed, one removed) and stops it:

* by time: SIGKILL (or SIGINT) after a delay spread over the whole run;
* by hook: ``BUNKO_FAULT=<point>`` makes store.commit kill itself at a named
  point (after the SQLite file, after FAISS, after the rename, between the
  pointer file and the CURRENT swap, ...), where a time-based kill rarely lands.

After each trial the index must be exactly S0's or exactly S1's (checked whole,
see reliability_helpers.snapshot), `bunko query` must work on it, and the next
`bunko index` must complete and hold the same content (documents, chunk spans and
texts, vectors) and give the same query results as a clean rebuild of S1.

The default run is a fast subset on a small update (5 of the 10 kill points, 2 of
the 4 Ctrl-C points, 3 timed kills, 1 timed Ctrl-C); the slow tests add the rest and
the full count on a larger update (30 timed kills, 8 timed Ctrl-Cs). Run with ``-s``
to see what each trial found.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bunko.api import Shelf
from bunko.cli import app
from bunko.config import Settings
from reliability_helpers import (
    Snapshot,
    articles,
    bunko,
    child_env,
    generations,
    leftovers,
    mini_files,
    snapshot,
    write_corpus,
)

QUESTIONS = ("目印の文", "How tall is Mount Fuji?")
FAULT_POINTS = (
    "commit-begin",
    "commit-sqlite",
    "commit-faiss",
    "commit-lexical",
    "commit-meta",
    "commit-fsync",
    "commit-rename",
    "commit-pointer",
    "commit-swap",
    "commit-collect",
)
LIVE_AFTER = {"commit-swap", "commit-collect"}  # CURRENT already names the new generation
# The default run kills at the points where the on-disk state differs in kind; the
# others (more files written into the same temporary folder) run with -m slow.
FAST_POINTS = {"commit-sqlite", "commit-rename", "commit-pointer", "commit-swap", "commit-collect"}
runner = CliRunner()


@dataclass(frozen=True)
class Scenario:
    corpus: Path  # S1
    base: Path  # a committed index of S0, with an older generation beside it
    old: Snapshot
    new: Snapshot  # a clean rebuild of S1
    answers: dict[str, list[tuple[str, int, int]]]  # the clean rebuild's results
    seconds: float  # how long `bunko index` takes from S0 to S1, start to exit


def _answers(corpus: Path, index: Path) -> dict[str, list[tuple[str, int, int]]]:
    shelf = Shelf(Settings.resolve(corpus=corpus, index=index))
    out = {}
    for q in QUESTIONS:
        res = shelf.query(q, k=5)
        out[q] = [(p.citation.source, p.citation.char_start, p.citation.char_end)
                  for p in res.passages]  # fmt: skip
    return out


def _build(root: Path, n_new: int, chars: int) -> Scenario:
    s0 = {**mini_files(), "changed.md": "# 変わる記事\n\n変更前の本文です。\n",
          "gone.md": "# 消える記事\n\n消える前の本文です。\n"}  # fmt: skip
    s1 = {k: v for k, v in s0.items() if k != "gone.md"}
    s1["changed.md"] = "# 変わる記事\n\n変更後の本文です。新しい文も足しました。\n"
    s1.update(articles(n_new, chars, "new"))
    base = root / "base"
    # Two commits, so the base has an older generation for the collector to delete.
    # S0 is written into the S1 folder first: an index belongs to one corpus folder.
    write_corpus(root / "s1", {k: v for k, v in s0.items() if k != "changed.md"})
    Shelf(Settings.resolve(corpus=root / "s1", index=base)).index()
    write_corpus(root / "s1", s0)
    Shelf(Settings.resolve(corpus=root / "s1", index=base)).index()
    assert len(generations(base)) == 2
    write_corpus(root / "s1", s1)
    clean = root / "clean"
    Shelf(Settings.resolve(corpus=root / "s1", index=clean)).index()
    # One uninterrupted run: its length spreads the kill times, and incremental
    # S0 -> S1 must already equal the clean rebuild.
    timed = root / "timed"
    shutil.copytree(base, timed)
    start = time.monotonic()
    done = subprocess.run(bunko("index", "--corpus", root / "s1", "--index", timed, "--json"),
                          capture_output=True, text=True, env=child_env(), timeout=600)  # fmt: skip
    seconds = time.monotonic() - start
    assert done.returncode == 0, done.stderr
    new = snapshot(clean)
    assert snapshot(timed).same_content(new)
    return Scenario(root / "s1", base, snapshot(base), new, _answers(root / "s1", clean), seconds)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """A small update (one new article): for the hook trials, which run it whole."""
    return _build(tmp_path_factory.mktemp("crash-small"), 1, 200)


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """Twenty new articles: the run lasts a few seconds, for the timed trials."""
    return _build(tmp_path_factory.mktemp("crash-large"), 20, 300)


@dataclass
class Outcome:
    label: str
    returncode: int
    state: str  # "old" or "new": which committed index was left
    stderr: str
    elapsed: float  # seconds from start to exit


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _stop(
    sc: Scenario,
    index: Path,
    *,
    fault: str | None = None,
    delay: float | None = None,
    sig: int = signal.SIGKILL,
    after_start: bool = False,
) -> Outcome:
    """Run `bunko index` from S0 to S1 and stop it; check the index left behind."""
    shutil.copytree(sc.base, index)
    env = child_env(**({"BUNKO_FAULT": fault} if fault else {}))
    args = bunko("index", "--corpus", sc.corpus, "--index", index, "--json")
    start = time.monotonic()
    # A shell starts background jobs with SIGINT ignored, and Python keeps an ignored
    # SIGINT ignored; give the child the default a user's terminal would.
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, preexec_fn=_default_sigint)  # fmt: skip
    lines: list[str] = []
    started = threading.Event()

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "chunking" in line:
                started.set()
        started.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    if delay is not None:
        if after_start:  # Ctrl-C "during indexing": once chunking has begun
            started.wait(timeout=600)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(sig)
    proc.wait(timeout=600)
    elapsed = time.monotonic() - start
    reader.join(timeout=60)
    assert proc.stdout is not None
    proc.stdout.close()
    err = "".join(lines)
    label = fault or f"{delay:.2f}s"
    snap = snapshot(index)  # raises if the index cannot be opened or is inconsistent
    if snap.same_content(sc.old):
        state = "old"
    elif snap.same_content(sc.new):
        state = "new"
    else:
        raise AssertionError(f"{label}: the index is neither S0's nor S1's\n{err}")
    return Outcome(label, proc.returncode, state, err, elapsed)


def _query_and_resume(sc: Scenario, index: Path, state: str) -> None:
    """`bunko query` works on what was left; the next `bunko index` equals a clean rebuild."""
    where = ["--corpus", str(sc.corpus), "--index", str(index)]
    # --no-update: query what was left (a plain query would index S1 first).
    res = runner.invoke(app, ["query", "富士山の高さは？", "--json", "--no-update", *where])
    assert res.exit_code == 0, res.output
    sources = {r["source"] for r in json.loads(res.stdout)["results"]}
    assert sources <= set((sc.old if state == "old" else sc.new).documents)
    res = runner.invoke(app, ["index", "--json", *where])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    after = snapshot(index)
    assert after.same_content(sc.new)
    if report["added"] or report["updated"] or report["removed"]:  # it committed
        assert leftovers(index) == []
        assert len(generations(index)) <= 2, generations(index)
    assert _answers(sc.corpus, index) == sc.answers


# --- SIGKILL at named points in the commit ----------------------------------------


@pytest.mark.parametrize(
    "point",
    [p if p in FAST_POINTS else pytest.param(p, marks=pytest.mark.slow) for p in FAULT_POINTS],
)
def test_sigkill_at_commit_point(small: Scenario, tmp_path: Path, point: str) -> None:
    out = _stop(small, tmp_path / "index", fault=point)
    assert out.returncode == -signal.SIGKILL, out.stderr
    assert out.state == ("new" if point in LIVE_AFTER else "old")
    _query_and_resume(small, tmp_path / "index", out.state)
    print(f"[crash] SIGKILL at {point}: left the {out.state} index; resume == clean rebuild")


# --- SIGKILL at times spread over the run ----------------------------------------


def _timed_kills(sc: Scenario, tmp_path: Path, n: int) -> list[Outcome]:
    """``n`` SIGKILLs that land while `bunko index` runs, at times spread over the run.

    Delays are stratified fractions of the run's length. The machine is shared, so
    that length drifts: a run that ends before its kill is still checked (and
    reported) but does not count, and its own duration becomes the new estimate.
    """
    outcomes: list[Outcome] = []
    finished = 0
    scale = sc.seconds
    while len(outcomes) < n and finished < n:
        i = len(outcomes)
        delay = (i + 0.5) / n * scale
        index = tmp_path / f"index{i}-{finished}"
        out = _stop(sc, index, delay=delay)
        assert out.returncode in (0, -signal.SIGKILL), out.stderr
        assert "Traceback" not in out.stderr
        _query_and_resume(sc, index, out.state)
        shutil.rmtree(index)
        if out.returncode == 0:
            finished += 1
            scale = min(scale, out.elapsed)
        else:
            outcomes.append(out)
    states = [o.state for o in outcomes]
    print(f"\n[crash] {len(outcomes)} SIGKILLs at {', '.join(o.label for o in outcomes)} "
          f"into runs of about {scale:.1f} s: {states.count('old')} left S0, "
          f"{states.count('new')} left S1; {finished} more runs ended before their kill; "
          "every resume equalled a clean rebuild")  # fmt: skip
    assert len(outcomes) == n, f"only {len(outcomes)} kills landed before {n} runs finished"
    return outcomes


def test_sigkill_at_times_fast_subset(small: Scenario, tmp_path: Path) -> None:
    _timed_kills(small, tmp_path, 3)


@pytest.mark.slow
def test_sigkill_at_times_30_trials(large: Scenario, tmp_path: Path) -> None:
    _timed_kills(large, tmp_path, 30)


# --- Ctrl-C ---------------------------------------------------------------------


def _check_interrupt(out: Outcome) -> None:
    assert "Traceback" not in out.stderr, out.stderr
    if out.returncode == 0:  # it finished before the signal
        assert out.state == "new"
        return
    assert out.returncode == 130, (out.returncode, out.stderr)
    last = out.stderr.strip().splitlines()[-1]
    assert last == "Interrupted; the index is unchanged or fully updated.", out.stderr


@pytest.mark.parametrize(
    ("point", "state"),
    [pytest.param("commit-sqlite", "old", marks=pytest.mark.slow), ("commit-rename", "old"),
     pytest.param("commit-pointer", "old", marks=pytest.mark.slow), ("commit-swap", "new")],
)  # fmt: skip
def test_sigint_at_commit_point(small: Scenario, tmp_path: Path, point: str, state: str) -> None:
    out = _stop(small, tmp_path / "index", fault=f"{point}:INT")
    assert out.returncode == 130
    _check_interrupt(out)
    assert out.state == state
    _query_and_resume(small, tmp_path / "index", out.state)
    print(f"[crash] SIGINT at {point}: exit 130, left the {out.state} index")


def _timed_interrupts(sc: Scenario, tmp_path: Path, n: int) -> None:
    states = []
    for i in range(n):
        delay = (i + 0.5) / n * sc.seconds * 0.8
        out = _stop(sc, tmp_path / f"index{i}", delay=delay, sig=signal.SIGINT, after_start=True)
        _check_interrupt(out)
        _query_and_resume(sc, tmp_path / f"index{i}", out.state)
        shutil.rmtree(tmp_path / f"index{i}")
        states.append((out.returncode, out.state))
    print(f"\n[crash] {n} timed Ctrl-Cs during indexing: (exit code, index left) = {states}")


def test_sigint_during_indexing_fast_subset(small: Scenario, tmp_path: Path) -> None:
    _timed_interrupts(small, tmp_path, 1)


@pytest.mark.slow
def test_sigint_during_indexing_8_trials(large: Scenario, tmp_path: Path) -> None:
    _timed_interrupts(large, tmp_path, 8)
