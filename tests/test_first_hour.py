"""A newcomer's first hour: `bunko init`, paths as the shell completes them, clear errors
without a shelf, `serve` on a busy port and Ctrl-C, help that reads as the README says."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bunko.cli import app
from bunko.config import Settings
from conftest import MINI
from serve_helpers import free_port

runner = CliRunner()


def _bunko(*args: str) -> tuple[int, str, str]:
    r = runner.invoke(app, list(args))
    return r.exit_code, r.stdout, r.stderr


def test_init_add_query_show_remove_with_shell_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """init → add → query → show (paths as Tab completes them) → remove, in a temp folder."""
    mine = tmp_path / "mine"
    (mine / "batch").mkdir(parents=True)
    for name in ("fuji.md", "coffee.md"):
        (mine / name).write_bytes((MINI / name).read_bytes())
    (mine / "batch" / "sushi.txt").write_bytes((MINI / "sushi.txt").read_bytes())
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    monkeypatch.chdir(shelf)

    code, out, err = _bunko("add", str(mine / "fuji.md"))
    assert code == 1 and "bunko init" in err and err.count("\n") == 1, err

    code, out, err = _bunko("init")
    assert code == 0 and (shelf / "corpus").is_dir() and (shelf / "bunko.toml").is_file()
    assert "bunko add" in out
    code, out, _ = _bunko("init")
    assert code == 0 and "already a shelf" in out

    code, out, err = _bunko("add", str(mine / "fuji.md"), str(mine / "coffee.md"),
                            str(mine / "batch"))  # fmt: skip
    assert code == 0, err
    assert sorted(p.name for p in (shelf / "corpus").rglob("*.*")) == [
        "coffee.md", "fuji.md", "sushi.txt"
    ]  # fmt: skip

    code, out, err = _bunko("query", "富士山の高さは？", "--json", "-k", "1")
    assert code == 0, err
    assert json.loads(out)["results"][0]["source"] == "fuji.md"

    # From the shelf's root, the path Tab completes: corpus/fuji.md.
    code, out, err = _bunko("show", "corpus/fuji.md:1-2")
    assert code == 0 and "fuji.md:1-2" in out, err
    # An absolute path inside the corpus.
    code, out, err = _bunko("show", f"{shelf}/corpus/batch/sushi.txt")
    assert code == 0 and "batch/sushi.txt" in out, err
    # From inside corpus/batch/, the bare file name.
    monkeypatch.chdir(shelf / "corpus" / "batch")
    code, out, err = _bunko("show", "sushi.txt:1")
    assert code == 0 and "batch/sushi.txt:1-1" in out, err
    # A miss names the closest article.
    code, out, err = _bunko("show", "fuj.md")
    assert code == 1 and "did you mean fuji.md?" in err, err
    code, out, err = _bunko("remove", "batch/sushi.md")
    assert code == 1 and "did you mean batch/sushi.txt?" in err, err

    monkeypatch.chdir(shelf)
    code, out, err = _bunko("remove", f"{shelf}/corpus/coffee.md")
    assert code == 0, err
    assert not (shelf / "corpus" / "coffee.md").exists()
    code, out, err = _bunko("remove", "corpus/batch/sushi.txt", "--json")
    assert code == 0, err
    assert json.loads(out)["removed"] == ["batch/sushi.txt"]
    code, out, err = _bunko("query", "コーヒー", "--json", "--source", "corpus/fuji.md")
    assert code == 0, err
    assert {r["source"] for r in json.loads(out)["results"]} == {"fuji.md"}


def test_without_a_shelf_every_command_names_init(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for args in (["status"], ["query", "x"], ["show", "a.md"], ["remove", "a.md"], ["index"]):
        code, out, err = _bunko(*args)
        assert code == 1, (args, err)
        assert err.startswith("Error: no bunko shelf in") and "bunko init" in err, err
        assert err.count("\n") == 1 and out == "", (args, err)
    assert not (tmp_path / "index").exists()


def test_a_bunko_toml_shelf_gets_its_corpus_on_add(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shelf = tmp_path / "notes"
    (shelf / "2024").mkdir(parents=True)
    (shelf / "bunko.toml").write_text("", "utf-8")
    monkeypatch.chdir(shelf / "2024")  # found upwards, as git finds .git
    code, _, err = _bunko("add", str(MINI / "fuji.md"))
    assert code == 0, err
    assert (shelf / "corpus" / "fuji.md").is_file()


def test_init_refuses_a_file_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "corpus").write_text("not a folder", "utf-8")
    code, _, err = _bunko("init", str(tmp_path))
    assert code == 1 and "is not a folder" in err and "Traceback" not in err


def test_global_flags_anywhere_and_usage_errors_show_usage(mini: Settings) -> None:
    where = ["--corpus", str(mini.corpus), "--index", str(mini.index)]
    code, out, err = _bunko("query", "富士山", "-q", "--json", *where)
    assert code == 0 and err == "", err
    assert json.loads(out)["results"]
    for bad in (["query", "  ", *where], ["query", "x", "-k", "0", *where]):
        code, out, err = _bunko(*bad)
        assert code == 2, err
        lines = err.splitlines()
        assert lines[0] == "Usage: bunko query [OPTIONS] QUESTION", err
        assert lines[-1].startswith("Error: "), err


def test_help_uses_one_placeholder_style_and_full_descriptions() -> None:
    code, out, _ = _bunko("--help")
    assert code == 0 and "..." not in out.split("Commands:")[1].replace("FILE...", "")
    usages = {
        "query": "Usage: bunko query [OPTIONS] QUESTION",
        "ask": "Usage: bunko ask [OPTIONS] QUESTION",
        "add": "Usage: bunko add [OPTIONS] FILE...",
        "remove": "Usage: bunko remove [OPTIONS] SOURCE...",
        "eval": "Usage: bunko eval [OPTIONS] FILE",
        "init": "Usage: bunko init [OPTIONS] [DIR]",
    }
    for command, usage in usages.items():
        code, out, _ = _bunko(command, "--help")
        assert code == 0 and out.splitlines()[0] == usage, out
        assert "{" not in out.splitlines()[0] and "\\" not in out
    code, out, _ = _bunko("query", "--help")
    assert "[default: 0.5]" in " ".join(out.split())
    code, out, _ = _bunko("ask", "--help")
    assert "hybrid|dense|lexical" in out


def _serve(*args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUNKO_") or k == "BUNKO_CACHE"}
    return subprocess.Popen(
        [sys.executable, "-m", "bunko", "serve", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_serve_on_a_busy_port_and_ctrl_c(mini: Settings) -> None:
    where = ["--corpus", str(mini.corpus), "--index", str(mini.index)]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _serve("--port", str(port), *where)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert err.strip() == f"Error: port {port} is in use (try --port {port + 1})", err

    port = free_port()
    proc = _serve("--port", str(port), *where)
    assert proc.stderr is not None
    line = proc.stderr.readline()  # "bunko: serving http://127.0.0.1:PORT/ (Ctrl-C to stop)"
    assert f":{port}/" in line, line
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert err.strip() == "Stopped.", err
