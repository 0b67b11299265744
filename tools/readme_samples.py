"""Regenerate the sample outputs in README.md from a real run of ``bunko``.

Each sample sits between ``<!-- sample:NAME -->`` and ``<!-- /sample:NAME -->``. The
script copies the shipped corpus (``corpus/``) to a temporary shelf, builds its
index with the installed ``bunko``, runs each sample's command there and writes its
stdout (plain text: not a terminal, ``NO_COLOR``) into the README:

    python tools/readme_samples.py           # rewrite the samples (about 30 s)
    python tools/readme_samples.py --check   # exit 1 when the README differs

Scores and confidences may differ in the last digit from one CPU to another (int8
matrix products), so ``--check`` (run by ``tests/test_docs.py``) compares them within
0.02 and everything else exactly.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SAMPLES = {
    "query-ja": ["query", "GPT-4.5のAPI料金は？", "-k", "2"],
    "query-en": ["query", "How much does GPT-4.5 cost per million tokens?", "-k", "2"],
}
_MARKED = re.compile(r"<!-- sample:([\w-]+) -->\n.*?<!-- /sample:\1 -->", re.S)
_NUMBER = re.compile(r"(?<=score |dence )-?\d+\.\d+")
TOLERANCE = 0.02


def _env() -> dict[str, str]:
    env = dict(os.environ, NO_COLOR="1", COLUMNS="100")
    for name in ("BUNKO_HOME", "BUNKO_CORPUS", "BUNKO_INDEX"):
        env.pop(name, None)
    return env


def run_samples(bunko: Sequence[str] | None = None) -> dict[str, str]:
    """Each sample's command line and stdout, run on a temporary copy of corpus/."""
    exe = list(bunko or [sys.executable, "-m", "bunko"])
    out = {}
    with tempfile.TemporaryDirectory(prefix="bunko-readme-") as tmp:
        shutil.copytree(ROOT / "corpus", Path(tmp) / "corpus")
        subprocess.run([*exe, "-q", "index"], cwd=tmp, env=_env(), check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        for name, args in SAMPLES.items():
            done = subprocess.run(
                [*exe, *args], cwd=tmp, env=_env(), check=True, capture_output=True, text=True
            )
            shown = " ".join(a if re.fullmatch(r"[\w.-]+", a) else f'"{a}"' for a in args)
            out[name] = f"$ bunko {shown}\n{done.stdout.rstrip()}"
    return out


def render(text: str, samples: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        return f"<!-- sample:{name} -->\n```\n{samples[name]}\n```\n<!-- /sample:{name} -->"

    return _MARKED.sub(one, text)


def same(shown: str, fresh: str) -> bool:
    """Equal but for scores and confidences within TOLERANCE."""
    if _NUMBER.sub("#", shown) != _NUMBER.sub("#", fresh):
        return False
    pairs = zip(_NUMBER.findall(shown), _NUMBER.findall(fresh), strict=True)
    return all(abs(float(a) - float(b)) <= TOLERANCE for a, b in pairs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Regenerate README.md's sample outputs.")
    ap.add_argument("--check", action="store_true", help="exit 1 if the README differs")
    args = ap.parse_args(argv)
    text = README.read_text("utf-8")
    names = set(_MARKED.findall(text))
    if names != set(SAMPLES):
        print(f"README samples {sorted(names)} != {sorted(SAMPLES)}", file=sys.stderr)
        return 1
    new = render(text, run_samples())
    if args.check:
        if not same(text, new):
            print("README.md's samples differ from a real run: python tools/readme_samples.py",
                  file=sys.stderr)  # fmt: skip
            return 1
        return 0
    README.write_text(new, "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
