"""The documents stay true: generated tables match their JSON, the README's sample
outputs match a real run, links resolve, and CI runs the documented test command."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _script(relative: str) -> ModuleType:
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_tables_match_their_json() -> None:
    tables = _script("benchmarks/docs_tables.py")
    assert tables.main(["--check"]) == 0, "run python benchmarks/docs_tables.py"


def test_a_hand_edited_table_is_caught(tmp_path: Path) -> None:
    tables = _script("benchmarks/docs_tables.py")
    text = (ROOT / "docs" / "benchmarks.md").read_text("utf-8")
    assert "<!-- table:quality -->" in text
    edited = text.replace(
        "| JSQuAD valid | hybrid | 1,000 | ", "| JSQuAD valid | hybrid | 1,000 | 0.999 | ", 1
    )
    assert edited != text and tables.render(edited) == tables.render(text)


def test_readme_is_short() -> None:
    assert len((ROOT / "README.md").read_text("utf-8").splitlines()) <= 500


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text("utf-8"), flags=re.S)
    return {_slug(m) for m in re.findall(r"^#+ (.+)$", text, flags=re.M)}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_between_documents_resolve(doc: Path) -> None:
    text = re.sub(r"```.*?```", "", doc.read_text("utf-8"), flags=re.S)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # a URL
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        missing_anchor = bool(anchor) and path.suffix == ".md" and anchor not in _anchors(path)
        if not path.exists() or missing_anchor:
            broken.append(target)
    assert broken == []


def test_ci_runs_the_documented_test_command() -> None:
    developing = (ROOT / "docs" / "developing.md").read_text("utf-8")
    command = re.search(r"```sh\n(python3 -m venv .*pytest)\n```", developing)
    assert command is not None
    ci = (ROOT / ".ci" / "run").read_text("utf-8")
    install = re.search(r"pip install -e '\.\[test\]'", command.group(1))
    assert install is not None
    assert "pip install -q -e '.[test]'" in ci
    assert re.search(r"^pytest$", ci, flags=re.M)
    assert "docs/developing.md" in ci


@pytest.mark.slow
def test_readme_samples_match_a_real_run() -> None:
    # Builds an index of a copy of the shipped corpus and runs the README's commands.
    samples = _script("tools/readme_samples.py")
    assert samples.main(["--check"]) == 0, "run python tools/readme_samples.py"
