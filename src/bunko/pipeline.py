"""The update pipeline of ``bunko index``, along the data flow.

corpus (what changed on disk, :mod:`bunko.corpus.diff`) -> text (chunks and
tokens, with fresh ids) -> embedding (vectors, reused from the index when the
text was embedded before, :mod:`bunko.embedding.cache`) -> index (one commit,
:mod:`bunko.index.writer`).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bunko.config import DEFAULT_MODEL, Settings
from bunko.corpus.diff import CorpusDiff, chunk_rows, diff_corpus, doc_row, renumber
from bunko.errors import CorpusError, IndexCorruptError, IndexMissingError
from bunko.index.format import (
    FORMAT_VERSION,
    ChunkRow,
    DocRow,
    IndexFormatError,
    read_manifest,
    verify_files,
)
from bunko.index.store import IndexStore
from bunko.index.writer import Changes, IndexWriter
from bunko.types import EmbeddingReport, IndexReport

if TYPE_CHECKING:
    from bunko.embedding import Embedder
    from bunko.index.snapshot import Snapshot
    from bunko.text import Tokenizer

log = logging.getLogger("bunko")

ProgressFn = Callable[[str, int, int], None]

CHUNKER_VERSION = 1
TOKENIZER = {"name": "fugashi-unidic-lite", "mode": "surface", "version": 1}


def chunker_settings(settings: Settings) -> dict[str, Any]:
    return {
        "version": CHUNKER_VERSION,
        "max_tokens": settings.chunk_tokens,
        "overlap": settings.overlap,
        "chunk_vectors": settings.chunk_vectors,
        "sentence_vectors": True,
    }


def requested_model(settings: Settings) -> str | None:
    from bunko.embedding import canonical_name

    return canonical_name(settings.model) if settings.model else None


def engine_for(model: str, settings: Settings, old: Snapshot | None) -> str | None:
    """The engine to embed with: asked for, else the old index's, else the default.

    Only the bundled model has engines; for other models this is None.
    """
    from bunko.config import DEFAULT_ENGINE
    from bunko.embedding import BUNDLED_NAMES, recorded_engine

    if model not in BUNDLED_NAMES:
        return None
    if settings.engine is not None:
        return settings.engine
    if old is not None and old.model == model:
        return recorded_engine(old.meta)
    return DEFAULT_ENGINE


def open_for_update(
    store: IndexStore, settings: Settings, rebuild: bool
) -> tuple[Snapshot | None, str | None]:
    """The live index to update (or to reuse vectors from), and why a full rebuild if so."""
    try:
        old = store.load(eager=False)
    except IndexMissingError:
        return None, "new index"
    except IndexFormatError as exc:
        log.warning("%s: rebuilding it once in format %d", exc, FORMAT_VERSION)
        return None, "index format upgraded"
    except IndexCorruptError as exc:
        log.warning("the index is damaged (%s); rebuilding it from the corpus", exc)
        return None, "damaged index"
    try:
        check_next_id(old.meta)
    except IndexCorruptError as exc:
        log.warning("the index is damaged (%s); rebuilding it from the corpus", exc)
        old.close()
        return None, "damaged index"
    reason = _rebuild_reason(old, settings, rebuild)
    if reason is not None:
        # A rebuild reads the old index as a vector cache: check all of it first (a
        # rebuild costs the whole shelf anyway), so that damage is never copied.
        try:
            verify_files(old.folder, old.meta, segments=True)
        except IndexCorruptError as exc:
            log.warning("the index is damaged (%s); rebuilding it from the corpus", exc)
            old.close()
            return None, "damaged index"
    return old, reason


def check_next_id(meta: dict[str, Any]) -> None:
    """The id the next chunk gets must be above every live chunk's id, or an update
    would reuse ids (and answers would change without a word).

    Raises:
        IndexCorruptError: ``next_id`` is missing, not a number, or too low.
    """
    next_id = meta.get("next_id", 1)
    top = max((int(seg.get("max_id", 0)) for seg in meta["segments"]), default=0)
    if not isinstance(next_id, int) or isinstance(next_id, bool) or next_id <= top:
        raise IndexCorruptError(
            f"meta.json records next_id {next_id!r}, but live chunk ids reach {top}"
        )


def _rebuild_reason(old: Snapshot, settings: Settings, rebuild: bool) -> str | None:
    if rebuild:
        return "--rebuild"
    want = requested_model(settings)
    if want is not None and want != old.model:
        log.warning("model changed from %s to %s: rebuilding the whole index", old.model, want)
        return f"model changed from {old.model} to {want}"
    if old.meta["chunker"] != chunker_settings(settings):
        log.warning(
            "chunk settings changed from %s to %s: rebuilding the whole index",
            old.meta["chunker"],
            chunker_settings(settings),
        )
        return "chunk settings changed"
    if old.meta.get("tokenizer") != TOKENIZER:
        log.warning("the lexical tokenizer changed: rebuilding the whole index")
        return "tokenizer changed"
    return None


def run(
    settings: Settings,
    store: IndexStore,
    rebuild: bool,
    tokenizer: Tokenizer,
    progress: ProgressFn,
    optimize: bool = False,
) -> IndexReport:
    """Open the live index for update and bring it up to date (the lock must be held).

    The live index is opened lazily (a writer reads only what it needs), so
    damage the checksums cannot see may surface half-way; the update then
    starts over as a rebuild from the corpus, as for damage found at open.
    """
    t0 = time.perf_counter()
    old, reason = open_for_update(store, settings, rebuild)
    try:
        return update(settings, store, old, reason, tokenizer, progress, optimize, t0)
    except IndexCorruptError as exc:
        if old is None:
            raise
        log.warning("the index is damaged (%s); rebuilding it from the corpus", exc)
    finally:
        if old is not None:
            old.close()
    return update(settings, store, None, "damaged index", tokenizer, progress, optimize, t0)


def update(
    settings: Settings,
    store: IndexStore,
    old: Snapshot | None,
    reason: str | None,
    tokenizer: Tokenizer,
    progress: ProgressFn,
    optimize: bool = False,
    t0: float | None = None,
) -> IndexReport:
    """Bring the index up to date with the corpus (the store's lock must be held)."""
    from bunko.embedding import get_embedder, recorded_engine
    from bunko.embedding.cache import vectors_for
    from bunko.embedding.executor import make_executor

    t0 = time.perf_counter() if t0 is None else t0
    model = requested_model(settings) or (old.model if old else DEFAULT_MODEL)
    engine = engine_for(model, settings, old)
    embedder = get_embedder(model, engine)
    old_engine = recorded_engine(old.meta) if old is not None else None
    if old is not None and reason is None and old.model == model and old_engine != engine:
        log.warning(
            "engine changed from %s to %s: re-embedding the whole index", old_engine, engine
        )
        reason = f"engine changed from {old_engine} to {engine}"
    if old is not None and reason is None and old.meta["fingerprint"] != embedder.fingerprint:
        log.warning("model %s has changed since the index was built: rebuilding", model)
        reason = "model weights changed"
    full = reason is not None
    same_model = (
        old is not None and old.model == model and old.meta["fingerprint"] == embedder.fingerprint
    )
    old_docs = old.documents() if old is not None else {}
    known_skips = old.meta.get("skipped") if old is not None else None
    diff = diff_corpus(
        settings.corpus, old_docs, full=full,
        known_skips=known_skips if isinstance(known_skips, dict) else None,
    )  # fmt: skip
    if diff.listed == 0:
        raise CorpusError(
            f"the corpus folder {settings.corpus} has no .txt or .md articles; "
            "add some (or `bunko add FILE`), or pass --corpus DIR"
        )
    if not full and not diff.changed and not optimize:
        assert old is not None
        return IndexReport(
            added=0, updated=0, removed=0, unchanged=len(diff.kept) + len(diff.kept_skipped),
            skipped=len(diff.skips), chunks_embedded=0, chunks_total=old.n_chunks,
            seconds=time.perf_counter() - t0,
            skipped_files=tuple(str(s) for s in diff.skips),
            embedding=EmbeddingReport(executor="ray" if settings.ray else "local"),
        )  # fmt: skip

    next_id = int(old.meta.get("next_id", 1)) if old is not None else 1
    rows: list[ChunkRow] = []
    docs: list[DocRow] = []
    work = diff.added + diff.updated
    for i, doc in enumerate(work):
        new = chunk_rows(
            doc, embedder, tokenizer, settings.chunk_tokens, settings.overlap, next_id,
            settings.chunk_vectors,
        )  # fmt: skip
        next_id += len(new)
        rows.extend(new)
        docs.append(doc_row(doc, len(new)))
        progress("chunking", i + 1, len(work))
    carried, next_id = _carry_unreadable(old, diff, full, next_id, embedder, settings)
    rows.extend(carried)
    if full and old is not None:
        docs.extend(old_docs[s] for s in diff.kept_skipped)
    # The executor is told how to build the model, not given it: Ray actors build
    # their own (a Ray cluster is started or joined only if something needs embedding).
    factory = functools.partial(get_embedder, model, engine)
    executor = make_executor(settings.ray, embedder, factory)
    try:
        rows, vectors, n_embedded = vectors_for(
            rows, embedder, old if same_model else None, settings.chunk_vectors, progress,
            executor,
        )  # fmt: skip
    finally:
        executor.close()

    meta = {
        "format": FORMAT_VERSION,
        "model": model,
        "fingerprint": embedder.fingerprint,
        "engine": embedder.engine,
        "dimension": embedder.dim,
        "metric": "inner_product",
        "chunker": chunker_settings(settings),
        "tokenizer": TOKENIZER,
        "next_id": next_id,
        "created": old.meta.get("created") if old is not None and not full else None,
        "corpus": str(settings.corpus.resolve()),
        "corpus_from_index": _relpath(settings.corpus, settings.index),
        "skipped": diff.remembered,
        # issue 24: which candidate embedded passages on this CPU, and every candidate's
        # measured speed and agreement (the onnx engine only; carried when nothing was embedded).
        "engine_choice": getattr(embedder, "measured_choice", None)
        or (old.meta.get("engine_choice") if old is not None and old_engine == engine else None),
    }
    meta["created"] = meta["created"] or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if full:
        changes = Changes(rows=rows, vectors=vectors, upsert_docs=docs)
    else:
        changes = Changes(
            rows=rows,
            vectors=vectors,
            replace=[d.source for d in diff.updated] + diff.removed,
            upsert_docs=docs + diff.touched,
            remove_docs=diff.removed,
        )
    writer = IndexWriter(store, None if full else old, meta, settings.ann_threshold)
    stats = writer.commit(changes, optimize=optimize)
    if stats.merged:
        log.info(
            "merged segments: %s rows rewritten into %d segment(s)",
            sum(stats.merged),
            len(stats.merged),
        )
    total = int(read_manifest(stats.generation)["chunks"])
    # A full rebuild re-chunks every article, but only changed ones count as updated;
    # an unreadable file that keeps its last good version counts as unchanged.
    same = sum(1 for d in diff.updated if old_docs[d.source].sha256 == d.sha256) if full else 0
    return IndexReport(
        added=len(diff.added),
        updated=len(diff.updated) - same,
        removed=len(diff.removed),
        unchanged=len(diff.kept) + len(diff.kept_skipped) + same,
        skipped=len(diff.skips),
        chunks_embedded=n_embedded,
        chunks_total=total,
        seconds=time.perf_counter() - t0,
        rebuilt=full,
        rebuild_reason=reason,
        skipped_files=tuple(str(s) for s in diff.skips),
        embedding=executor.report(),
    )


def _carry_unreadable(
    old: Snapshot | None,
    diff: CorpusDiff,
    full: bool,
    next_id: int,
    embedder: Embedder,
    settings: Settings,
) -> tuple[list[ChunkRow], int]:
    """In a rebuild, the stored chunks of files that can no longer be read.

    They keep their last good version (the same chunks, whatever the new chunk
    settings), with fresh ids; their vectors come from the cache when the model
    is the same, else the stored chunk texts are embedded again.
    """
    if not full or old is None or not diff.kept_skipped:
        return [], next_id
    import dataclasses

    from bunko.embedding.cache import text_hash

    rows: list[ChunkRow] = []
    for i in range(old.segment_count):
        rows += old.live_rows(i, diff.kept_skipped)[0]
    rows.sort(key=lambda r: (r.source, r.char_start, r.id))
    rows = [
        dataclasses.replace(r, hash=text_hash(r.text, settings.chunk_vectors), sentvecs=b"")
        for r in renumber(rows, next_id)
    ]
    log.warning(
        "kept the last good version of %d file(s) that could not be read: %s",
        len(diff.kept_skipped),
        ", ".join(diff.kept_skipped),
    )
    return rows, next_id + len(rows)


def _relpath(path: Path, start: Path) -> str | None:
    """``path`` relative to ``start`` (None across drives): a corpus and index moved together."""
    try:
        return os.path.relpath(path.resolve(), start.resolve())
    except ValueError:
        return None
