"""Everyday use on the real CLI in a temporary shelf: add/remove/show, shelf lookup,
--source, help, plain vs coloured output, progress, wording, titles, the Python API."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bunko.cli import app
from bunko.config import Settings
from bunko.types import Citation

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def where(s: Settings) -> list[str]:
    return ["--corpus", str(s.corpus), "--index", str(s.index)]


def corpus_files(s: Settings) -> set[str]:
    return {p.relative_to(s.corpus).as_posix() for p in s.corpus.rglob("*") if p.is_file()}


def status(s: Settings) -> dict:  # type: ignore[type-arg]
    code, out, err = run("status", "--json", *where(s))
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


# --- add --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("binary.md", b"# x\n\x00\x01\x02 bytes", "binary"),
        ("empty.md", b"", "empty"),
        ("blank.txt", "  \n\t\n\u3000\n".encode(), "empty"),
    ],
)
def test_add_refuses_what_indexing_would_skip(
    mini: Settings, tmp_path: Path, name: str, data: bytes, reason: str
) -> None:
    bad = tmp_path / "incoming" / name
    bad.parent.mkdir()
    bad.write_bytes(data)
    good = tmp_path / "incoming" / "good.md"
    good.write_text("# 良い記事\n\n本文です。\n", "utf-8")
    before = corpus_files(mini)
    code, out, err = run("add", str(good), str(bad), *where(mini))
    assert code == 1
    assert err.startswith("Error: ") and name in err and reason in err
    assert "nothing was added" in err and "Added" not in out
    assert corpus_files(mini) == before  # not even the good file was copied


def test_add_folder_recursively_keeps_subfolders(mini: Settings, tmp_path: Path) -> None:
    src = tmp_path / "incoming" / "2024"
    (src / "sub").mkdir(parents=True)
    (src / "a.md").write_text("# 抹茶\n\n抹茶は粉末状の緑茶です。\n", "utf-8")
    (src / "sub" / "b.txt").write_text("Ramen is a noodle soup from Japan.\n", "utf-8")
    (src / "sub" / "bad.md").write_bytes(b"\x00\x00binary")
    (src / ".hidden.md").write_text("secret", "utf-8")
    (src / "notes.pdf.tmp").write_text("ignored", "utf-8")
    code, out, err = run("add", str(src), "--json", *where(mini))
    assert code == 0, err
    data = json.loads(out)
    assert data["copied"] == ["2024/a.md", "2024/sub/b.txt"]
    binary = "binary file (NUL bytes), not text"
    assert data["skipped"] == [{"source": "2024/sub/bad.md", "reason": binary}]
    assert data["index"]["added"] == 2
    assert (mini.corpus / "2024" / "sub" / "b.txt").read_text("utf-8").startswith("Ramen")
    assert not (mini.corpus / "2024" / ".hidden.md").exists()
    assert not (mini.corpus / "2024" / "sub" / "bad.md").exists()
    # Again: everything is already there; the text output says so.
    code, out, err = run("add", str(src), *where(mini))
    assert code == 0, err
    assert "Already in the corpus: 2024/a.md" in out and "Skipped 2024/sub/bad.md: binary" in out
    # A changed file of the same name is refused without --force, and nothing changes.
    (src / "a.md").write_text("# 抹茶\n\n違う本文。\n", "utf-8")
    code, _, err = run("add", str(src), *where(mini))
    assert code == 1 and "--force" in err
    assert "粉末" in (mini.corpus / "2024" / "a.md").read_text("utf-8")


def test_add_never_writes_through_a_symlinked_subfolder(mini: Settings, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (mini.corpus / "2024").symlink_to(outside, target_is_directory=True)
    src = tmp_path / "incoming" / "2024"
    src.mkdir(parents=True)
    (src / "a.md").write_text("本文。\n", "utf-8")
    code, _, err = run("add", str(src), *where(mini))
    assert code == 1 and "symbolic link" in err
    assert list(outside.iterdir()) == []


# --- remove -------------------------------------------------------------------------------


def test_remove_deletes_and_updates_the_index(mini: Settings) -> None:
    assert status(mini)["documents"] == 3
    code, out, err = run("remove", "coffee.md", *where(mini))
    assert code == 0, err
    assert "Removed coffee.md" in out and "removed 1" in out
    assert not (mini.corpus / "coffee.md").exists()
    s = status(mini)
    assert s["documents"] == 2 and not s["stale_removed"]


@pytest.mark.parametrize("target", ["../x", "../corpus/fuji.md", "/etc/passwd", "sub/../../x"])
def test_remove_refuses_anything_outside_the_corpus(
    mini: Settings, tmp_path: Path, target: str
) -> None:
    (tmp_path / "x").write_text("outside", "utf-8")
    before = corpus_files(mini)
    code, _out, err = run("remove", target, *where(mini))
    assert code == 1
    assert err.startswith("Error: ") and "not inside the corpus" in err
    assert corpus_files(mini) == before and (tmp_path / "x").exists()


def test_remove_glob_and_no_match(mini: Settings) -> None:
    code, _, err = run("remove", "*.md", "nothing-*", *where(mini))
    assert code == 1 and "matches 'nothing-*'" in err
    assert (mini.corpus / "fuji.md").exists()  # all or nothing
    code, out, err = run("remove", "*.md", "--json", *where(mini))
    assert code == 0, err
    assert json.loads(out)["removed"] == ["coffee.md", "fuji.md"]
    assert corpus_files(mini) == {"sushi.txt"}
    code, _, err = run("remove", "*", *where(mini))
    assert code == 1 and "every article" in err and (mini.corpus / "sushi.txt").exists()


# --- show ------------------------------------------------------------------------------------


def test_show_prints_exactly_the_cited_lines(mini: Settings) -> None:
    lines = (mini.corpus / "fuji.md").read_text("utf-8").split("\n")
    code, out, err = run("show", "fuji.md:6-8", *where(mini)[:2])
    assert code == 0, err
    head, where_line, *body = out.rstrip("\n").split("\n")
    assert head.startswith("富士山の基礎知識")
    assert where_line.startswith("fuji.md:6-8")
    assert [b.split(" │ ", 1)[1] for b in body] == lines[5:8]
    assert [int(b.split(" │ ", 1)[0]) for b in body] == [6, 7, 8]


def test_show_opens_a_citation_from_query(mini: Settings) -> None:
    code, out, _ = run("query", "富士山はいつ世界遺産になった？", "-k", "1", "--json", *where(mini))
    assert code == 0
    r = json.loads(out)["results"][0]
    a, b = r["lines"]
    code, out, err = run("show", f"{r['source']}:{a}-{b}", "--json", "--corpus", str(mini.corpus))
    assert code == 0, err
    shown = json.loads(out)
    assert [t["line"] for t in shown["text"]] == list(range(a, b + 1))
    text = "\n".join(t["text"] for t in shown["text"])
    assert r["text"].strip() in text and shown["heading"] == r["heading"]


def test_show_crlf_and_errors(mini: Settings) -> None:
    (mini.corpus / "crlf.txt").write_bytes("一行目\r\n二行目\r\n三行目\r\n".encode())
    code, out, err = run("show", "crlf.txt:2", "--json", "--corpus", str(mini.corpus))
    assert code == 0, err
    assert json.loads(out)["text"] == [{"line": 2, "text": "二行目"}]
    bad = [("nope.md", "no article"), ("../fuji.md", "not inside"),
           ("fuji.md:99", "past its end"), ("fuji.md:5-3", "bad line range")]  # fmt: skip
    for target, msg in bad:
        code, _, err = run("show", target, "--corpus", str(mini.corpus))
        assert code == 1 and msg in err, (target, err)


# --- query --source -------------------------------------------------------------------------


def test_query_source_limits_results(mini: Settings) -> None:
    code, out, err = run("query", "富士山の高さは？", "--source", "sushi*", "--json", *where(mini))
    assert code == 0, err
    results = json.loads(out)["results"]
    assert results and {r["source"] for r in results} == {"sushi.txt"}
    code, out, _ = run("query", "富士山", "--source", "sushi.txt", "--source", "coffee.md",
                       "-k", "10", "--json", *where(mini))  # fmt: skip
    assert {r["source"] for r in json.loads(out)["results"]} <= {"sushi.txt", "coffee.md"}
    code, _, err = run("query", "富士山", "--source", "../*", *where(mini))
    assert code == 1 and "not inside the corpus" in err
    code, _, err = run("query", "富士山", "--source", "2099/*", *where(mini))
    assert code == 1 and "no indexed article matches" in err


# --- shelf lookup ------------------------------------------------------------------------------


def test_works_from_a_subfolder_of_the_shelf(
    mini: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = tmp_path / "corpus" / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    code, out, err = run("status", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["documents"] == 3 and data["corpus"] == str(tmp_path / "corpus")
    code, out, err = run("query", "富士山の高さは？", "-k", "1", "--json")
    assert code == 0, err
    assert json.loads(out)["results"][0]["source"] == "fuji.md"


def test_bunko_toml_marks_a_shelf_and_home_overrides(
    mini: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "deep").mkdir(parents=True)
    (elsewhere / "bunko.toml").write_text("", "utf-8")
    monkeypatch.chdir(elsewhere / "deep")
    code, _, err = run("status")
    assert code == 0
    assert str(elsewhere / "corpus") in err  # the shelf found, named in the message
    monkeypatch.setenv("BUNKO_HOME", str(tmp_path))
    code, out, err = run("status", "--json")
    assert code == 0 and json.loads(out)["documents"] == 3


def test_outside_any_shelf_errors_name_the_folder(tmp_path: Path) -> None:
    nowhere = tmp_path / "nowhere"
    nowhere.mkdir()
    os.chdir(nowhere)
    code, _out, err = run("index")
    assert code == 1 and "Traceback" not in err
    assert f"no bunko shelf in {nowhere} or any folder above it" in err and "bunko init" in err


def test_library_errors_do_not_mention_flags(tmp_path: Path) -> None:
    from bunko import CorpusError, Shelf

    with pytest.raises(CorpusError) as info:
        Shelf.open(tmp_path / "none").index()
    assert "--" not in str(info.value) and str(tmp_path / "none" / "corpus") in str(info.value)


# --- help, errors, completion ----------------------------------------------------------------

COMMANDS = ["index", "query", "add", "remove", "show", "status", "eval"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_flags_as_flags_and_examples(command: str) -> None:
    code, out, _ = run(command, "--help")
    assert code == 0
    assert "<bool>" not in out and "╭" not in out
    options = out.split("Options:", 1)[1]
    assert not re.search(r"--\S+ <(bool|str)>", options)  # flags are flags, --mode lists choices
    examples = out.split("Examples:", 1)[1]
    assert f"bunko {command}" in examples
    assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", examples)  # Japanese
    assert re.search(r"#\s*[A-Za-z]|[A-Za-z]{4,} [a-z]{3,}", examples)  # English


def test_mode_lists_choices_and_usage_errors_are_plain() -> None:
    _, out, _ = run("query", "--help")
    assert "hybrid|dense|lexical" in out
    code, out, err = run("query", "x", "--mode", "fuzzy")
    assert code == 2 and "Error: " in err and "╭" not in err
    code, _, err = run("query")
    assert code == 2 and "Error: Missing argument" in err


def test_completion_is_available() -> None:
    _code, out, _ = run("--help")
    assert "--install-completion" in out and "--show-completion" in out
    env = {**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "bunko", "--show-completion", "bash"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 0 and "complete" in proc.stdout and "bunko" in proc.stdout


# --- colour: terminal only, NO_COLOR honoured ------------------------------------------------


def _in_terminal(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run bunko with stdout on a pseudo-terminal; return what it printed."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bunko", *args], stdout=slave, stderr=subprocess.PIPE,
        env=env, cwd=cwd,
    )  # fmt: skip
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(master)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    return b"".join(chunks).decode("utf-8")


def test_colour_only_on_a_terminal_and_never_with_no_color(mini: Settings) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    args = ["show", "fuji.md:6-8", "--corpus", str(mini.corpus)]
    coloured = _in_terminal(args, env, mini.corpus)
    assert "\x1b[" in coloured and "fuji.md:6-8" in ANSI.sub("", coloured)
    assert "\x1b[" not in _in_terminal(args, {**env, "NO_COLOR": "1"}, mini.corpus)
    piped = subprocess.run([sys.executable, "-m", "bunko", *args], capture_output=True,
                           text=True, env=env, check=True)  # fmt: skip
    assert "\x1b[" not in piped.stdout
    assert piped.stdout.replace("\r", "") == ANSI.sub("", coloured).replace("\r", "")


def test_query_output_is_plain_keeps_line_breaks_and_strips_emphasis(mini: Settings) -> None:
    (mini.corpus / "bold.md").write_text(
        "# 強調の記事\n\n## 要点\n\n**抹茶ラテ**は東京で人気です。\n甘さは控えめです。\n", "utf-8"
    )
    assert run("index", *where(mini))[0] == 0
    code, out, err = run("query", "抹茶ラテはどこで人気？", "-k", "1", *where(mini))
    assert code == 0, err
    assert "\x1b[" not in out and "**" not in out
    assert "[1] 強調の記事 › 要点" in out  # the title is not repeated in the heading path
    body = out.split("\n")
    assert any(line.strip() == "## 要点" for line in body)  # the heading keeps its own line
    assert any(line.strip().startswith("抹茶ラテは東京で人気です。") for line in body)


def test_citation_never_repeats_the_title() -> None:
    c = Citation(1, "入門", "a.md", "入門 > 特徴", 3, 4, 10, 20)
    assert c.render() == "[1] 入門 › 特徴 — a.md:3-4"
    assert Citation(1, "入門", "a.md", "入門", 3, 4, 10, 20).render() == "[1] 入門 — a.md:3-4"


# --- progress and wording ----------------------------------------------------------------------


def test_progress_plain_lines_and_quiet(mini_unindexed: Settings) -> None:
    code, out, err = run("index", *where(mini_unindexed))
    assert code == 0, err
    assert "embedding sentences" in err and "reading articles" in err
    assert len(err.strip().splitlines()) <= 8  # a few lines, not one per batch
    assert out.startswith("Built the index: added 3,")  # a first build is "Built"
    code, out, err = run("--quiet", "index", "--rebuild", *where(mini_unindexed))
    assert code == 0 and err == ""
    assert out.startswith("Rebuilt the index (--rebuild): added 0, updated 0,")
    assert "unchanged 3" in out


def test_one_chunk_is_singular(mini: Settings) -> None:
    (mini.corpus / "tiny.txt").write_text("小さな記事です。\n", "utf-8")
    code, out, _ = run("index", *where(mini))
    assert code == 0 and "embedded 1 chunk," in out


def test_status_lists_skipped_files_apart(mini: Settings) -> None:
    (mini.corpus / "broken.md").write_bytes(b"\x00\x01\x02")
    (mini.corpus / "new.md").write_text("新しい記事。\n", "utf-8")
    s = status(mini)
    assert s["stale_new"] == ["new.md"]
    assert s["skipped"] == [{"source": "broken.md", "reason": "binary file (NUL bytes), not text"}]
    assert run("index", *where(mini))[0] == 0
    _code, out, _ = run("status", *where(mini))
    assert "Not yet indexed" not in out and "up to date" in out
    assert "Skipped, cannot be indexed" in out and "broken.md: binary" in out


# --- titles ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("見出し画像\n\n本当の題名\n\n本文です。\n", "本当の題名"),
        ("![cover](img/a.png)\n[link](https://x.y)\nhttps://example.com\n題\n", "題"),
        ("前置きの行\n\n# 見出しの題\n\n本文。\n", "見出しの題"),
        ("# ![](a.png)\n\n短い一行目\n", "短い一行目"),
        ("A short first line\n\n" + "long " * 40 + "\n", "A short first line"),
    ],
)  # fmt: skip
def test_title_rules(mini: Settings, text: str, title: str) -> None:
    (mini.corpus / "t.md").write_text(text, "utf-8")
    code, out, err = run("show", "t.md:1", "--json", "--corpus", str(mini.corpus))
    assert code == 0, err
    got = json.loads(out)["title"]
    assert got == title


def test_long_first_line_title_is_capped_at_a_soft_break(mini: Settings) -> None:
    line = (
        "本記事は長い説明文で始まり、読点で区切られながら、とても長く続いていく一文であり、"
        "題名には向かないので、短く切られるはずのもの"
    )
    (mini.corpus / "t.md").write_text(line + "\n\n本文。\n", "utf-8")
    code, out, _ = run("show", "t.md", "--json", "--corpus", str(mini.corpus))
    title = json.loads(out)["title"]
    assert code == 0 and title.endswith("…") and len(title) <= 51
    assert line.startswith(title[:-1]) and line[len(title) - 1] == "、"
    # A first sentence that fits is taken whole, without its full stop.
    (mini.corpus / "t.md").write_text("短い一文です。" + "続き" * 40 + "\n", "utf-8")
    code, out, _ = run("show", "t.md", "--json", "--corpus", str(mini.corpus))
    assert json.loads(out)["title"] == "短い一文です"


# --- eval set and Python API -----------------------------------------------------------------


def test_shipped_eval_sets_parse_and_unanswerable_rows_are_skipped(
    mini: Settings, tmp_path: Path
) -> None:
    from bunko.api import load_eval

    assert len(load_eval(REPO / "eval" / "dev-qa.jsonl")) == 30
    unanswerable = load_eval(REPO / "eval" / "dev-unanswerable.jsonl")
    assert len(unanswerable) == 20 and all(i["answerable"] is False for i in unanswerable)
    mixed = tmp_path / "mixed.jsonl"
    qa = (REPO / "tests" / "data" / "mini-qa.jsonl").read_text("utf-8")
    mixed.write_text(qa + '{"question": "月の石の値段は？", "answerable": false}\n', "utf-8")
    code, out, err = run("eval", str(mixed), "--json", *where(mini))
    assert code == 0, err
    n_answerable = len([ln for ln in qa.splitlines() if ln.strip()])
    assert json.loads(out)["overall"]["n"] == n_answerable


def test_python_api_is_lazy_and_works(mini: Settings) -> None:
    code = (
        "import sys, bunko\n"
        "assert 'bunko.api' not in sys.modules and 'faiss' not in sys.modules\n"
        "from bunko import Shelf, QueryResult, BunkoError\n"
        f"shelf = Shelf.open({str(mini.corpus.parent)!r})\n"
        "r = shelf.query('富士山の高さは？', k=2, sources=['fuji.md'])\n"
        "assert isinstance(r, QueryResult)\n"
        "print(r.passages[0].citation.render())\n"
        "print(shelf.show(r.passages[0].citation.source + ':1-2').title)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=mini.corpus.parent)  # fmt: skip
    first, title = out.stdout.splitlines()
    assert first.startswith("[1] 富士山の基礎知識") and "fuji.md:" in first
    assert title == "富士山の基礎知識"
