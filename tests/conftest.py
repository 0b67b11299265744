"""Shared fixtures: every test runs in its own temp folder with BUNKO_* unset."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # bunko is imported after pytest_configure: api.py reads BUNKO_* on import
    from bunko.config import Settings

DATA = Path(__file__).parent / "data"
MINI = DATA / "mini"


# One model cache for the whole session: the default onnx engine converts the
# bundled weights once (about 30 s), not once per test. Tests of the cache itself
# point BUNKO_CACHE elsewhere, or unset it to check the per-user default.
_SESSION_CACHE = ""


def pytest_configure(config: pytest.Config) -> None:
    """Drop every BUNKO_* variable of the developer's shell before any fixture is built
    (BUNKO_FAULT, BUNKO_MODEL, thread and ANN settings would change what tests see)."""
    global _SESSION_CACHE
    for var in [v for v in os.environ if v.startswith("BUNKO_")]:
        del os.environ[var]
    _SESSION_CACHE = tempfile.mkdtemp(prefix="bunko-test-cache-")
    os.environ["BUNKO_CACHE"] = _SESSION_CACHE


def pytest_unconfigure(config: pytest.Config) -> None:
    if _SESSION_CACHE:
        shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


@pytest.fixture(autouse=True)
def _isolate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in [v for v in os.environ if v.startswith("BUNKO_")]:  # set by an earlier test
        monkeypatch.delenv(var)
    monkeypatch.setenv("BUNKO_CACHE", _SESSION_CACHE)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def _built_mini(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mini corpus indexed once per session with the real bundled model."""
    from bunko.api import Shelf
    from bunko.config import Settings

    root = tmp_path_factory.mktemp("mini-built")
    shutil.copytree(MINI, root / "corpus")
    Shelf(Settings.resolve(corpus=root / "corpus", index=root / "index")).index()
    return root


@pytest.fixture
def mini(tmp_path: Path, _built_mini: Path) -> Settings:
    """A private copy of the indexed mini corpus: tests may change it freely."""
    from bunko.config import Settings

    shutil.copytree(_built_mini / "corpus", tmp_path / "corpus")
    shutil.copytree(_built_mini / "index", tmp_path / "index")
    return Settings.resolve(corpus=tmp_path / "corpus", index=tmp_path / "index")


@pytest.fixture
def mini_unindexed(tmp_path: Path) -> Settings:
    from bunko.config import Settings

    shutil.copytree(MINI, tmp_path / "corpus")
    return Settings.resolve(corpus=tmp_path / "corpus", index=tmp_path / "index")
