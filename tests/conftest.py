"""Shared fixtures: every test runs in its own temp folder with BUNKO_* unset."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bunko.api import Shelf
from bunko.config import Settings

DATA = Path(__file__).parent / "data"
MINI = DATA / "mini"


@pytest.fixture(autouse=True)
def _isolate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("BUNKO_CORPUS", "BUNKO_INDEX", "BUNKO_MODEL", "BUNKO_CHUNK_TOKENS", "BUNKO_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def _built_mini(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mini corpus indexed once per session with the real bundled model."""
    root = tmp_path_factory.mktemp("mini-built")
    shutil.copytree(MINI, root / "corpus")
    Shelf(Settings.resolve(corpus=root / "corpus", index=root / "index")).index()
    return root


@pytest.fixture
def mini(tmp_path: Path, _built_mini: Path) -> Settings:
    """A private copy of the indexed mini corpus: tests may change it freely."""
    shutil.copytree(_built_mini / "corpus", tmp_path / "corpus")
    shutil.copytree(_built_mini / "index", tmp_path / "index")
    return Settings.resolve(corpus=tmp_path / "corpus", index=tmp_path / "index")


@pytest.fixture
def mini_unindexed(tmp_path: Path) -> Settings:
    shutil.copytree(MINI, tmp_path / "corpus")
    return Settings.resolve(corpus=tmp_path / "corpus", index=tmp_path / "index")
