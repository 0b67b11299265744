"""Where a fresh install's time and disk go: per distribution, in a virtual environment.

    python benchmarks/install_size.py --fresh . --label after       # new venv in a temp folder, pip install ., measure
    python benchmarks/install_size.py --venv .venv --label mine     # measure an existing venv

Writes ``benchmarks/results/install.json`` (one entry per label, others kept):
the venv's total size (``du``), the pip install's wall time (``--fresh`` only; the
network and the machine's load make it rough), and the installed size of every
distribution bunko's plain install pulls in (the closure of its requirements, no
extras), largest first. docs/benchmarks.md's install table is generated from it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "install.json"

# Run inside the measured venv: sizes of the distributions bunko needs.
_CLOSURE = r"""
import json, os
from importlib import metadata
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name as canon
dists = {canon(d.metadata["Name"]): d for d in metadata.distributions()}
need, seen, stack = set(), set(), [Requirement("bunko")]
while stack:
    req = stack.pop()
    name = canon(req.name)
    key = (name, frozenset(req.extras))
    if key in seen or name not in dists:
        continue
    seen.add(key)
    need.add(name)
    for r in dists[name].requires or []:
        r = Requirement(r)
        # a requirement of the package itself, or of an extra that was asked for
        if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in {"", *req.extras}):
            stack.append(r)
def size(d):
    total = 0
    for f in d.files or []:
        try:
            total += os.path.getsize(d.locate_file(f))
        except OSError:
            pass
    return total
print(json.dumps({n: size(dists[n]) for n in need}))
"""


def du_mb(path: Path) -> float:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return round(int(out.stdout.split()[0]) / 1024, 1)


def measure(venv: Path) -> dict[str, object]:
    py = venv / "bin" / "python"
    out = subprocess.run([str(py), "-c", _CLOSURE], capture_output=True, text=True, check=True)
    sizes = json.loads(out.stdout)
    per = {n: round(b / 1e6, 1) for n, b in sorted(sizes.items(), key=lambda kv: -kv[1])}
    return {
        "venv_mb": du_mb(venv),
        "distributions": len(per),
        "bunko_closure_mb": round(sum(sizes.values()) / 1e6, 1),
        "per_distribution_mb": per,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--fresh", help="a source to pip install into a new venv (a path or spec)")
    where.add_argument("--venv", type=Path, help="an existing venv to measure")
    ap.add_argument("--label", required=True, help="the entry's name in install.json")
    ap.add_argument("--install-seconds", type=float, help="wall time of the install, if known")
    ap.add_argument("--note", default="", help="what was installed (a commit, say)")
    args = ap.parse_args(argv)
    seconds = args.install_seconds
    with tempfile.TemporaryDirectory(prefix="bunko-install-") as tmp:
        venv = args.venv
        if args.fresh:
            venv = Path(tmp) / "venv"
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            start = time.monotonic()
            subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-cache-dir",
                            args.fresh], check=True)  # fmt: skip
            seconds = round(time.monotonic() - start)
        entry = measure(venv)
    entry = {"install_s": seconds, "note": args.note, **entry}
    data = json.loads(RESULTS.read_text("utf-8")) if RESULTS.exists() else {}
    data[args.label] = entry
    RESULTS.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", "utf-8")
    print(json.dumps({k: v for k, v in entry.items() if k != "per_distribution_mb"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
