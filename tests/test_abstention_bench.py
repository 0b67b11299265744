"""The abstention benchmark's smoke mode runs end to end and prints its table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.slow
def test_abstention_benchmark_smoke() -> None:
    if not (BENCH.parents[1] / "shared" / "bench-data" / "jsquad-valid-v1.1.json").is_file():
        pytest.skip("JSQuAD is not in ../shared/bench-data")
    done = subprocess.run(
        [sys.executable, "quality.py", "--abstention", "--smoke"],
        cwd=BENCH, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| jsquad-valid-heldout-articles | " in done.stdout
    row = next(r for r in done.stdout.splitlines() if r.startswith("| jsquad-valid-heldout"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert int(cells[1]) > 0 and int(cells[2]) > 0  # both kinds of question were asked
    assert 0.0 <= float(cells[5]) <= 1.0  # an AUROC
