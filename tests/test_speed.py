"""Issue 24, the cold query: only the command being run is built."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from bunko.cli import _app_for, app
from bunko.config import Settings


def _names(a: object) -> list[str]:
    return [c.callback.__name__ for c in a.registered_commands]  # type: ignore[attr-defined]


def test_only_the_command_being_run_is_built(mini: Settings) -> None:
    where = ["--corpus", str(mini.corpus), "--index", str(mini.index)]
    lean = _app_for(["-q", "query", "富士山の高さは？", "--no-update", *where])
    assert lean is not app and _names(lean) == ["query"]
    assert _names(app)[:3] != ["query"] and len(_names(app)) > 5  # the app itself is unchanged
    # The lean app answers as the whole one does.
    args = ["query", "富士山の高さは？", "--no-update", "-k", "1", *where]
    got, want = CliRunner().invoke(lean, args), CliRunner().invoke(app, args)
    assert got.exit_code == want.exit_code == 0, got.stderr
    assert got.stdout == want.stdout and "fuji.md" in got.stdout
    # Help, no command, an unknown (misspelt) one, completion: the whole app, same output.
    for argv in (["query", "--help"], ["-h"], [], ["--version"], ["qery", "x"]):
        assert _app_for(argv) is app, argv


def test_the_console_script_runs_the_lean_app(mini: Settings) -> None:
    where = ["--corpus", str(mini.corpus), "--index", str(mini.index)]
    run = subprocess.run(
        [sys.executable, "-m", "bunko", "query", "富士山の高さは？", "--no-update", "-q", *where],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "fuji.md" in run.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "bunko", "qery", "x"], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 2 and "Did you mean 'query'?" in bad.stderr
