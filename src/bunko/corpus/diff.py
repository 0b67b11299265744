"""Change detection and chunk id assignment for ``bunko index``.

Change detection is cheap, and decided as in :mod:`bunko.corpus.changes`
(:func:`~bunko.corpus.changes.same_stat`): a file whose size and mtime match
what the index recorded is not read at all; only files whose size or mtime
changed are read and hashed, and a file whose bytes turn out unchanged only
gets its new mtime recorded. Unlike the freshness check, this reads the files
it finds changed (an update needs their text).
"""

from __future__ import annotations

import logging
import os
import stat as stat_mod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bunko.corpus.changes import (
    SkipMemory,
    same_stat,
    skip_key,
    skip_record,
    still_skipped,
)
from bunko.errors import SkipFile
from bunko.index.format import ChunkRow, DocRow

if TYPE_CHECKING:
    from bunko.embedding import Embedder
    from bunko.text import Tokenizer
    from bunko.types import Document

log = logging.getLogger("bunko")


@dataclass
class CorpusDiff:
    """How the corpus differs from the index.

    ``kept_skipped``: indexed files that exist but could not be read this time;
    they keep their last good version.
    """

    added: list[Document] = field(default_factory=list)
    updated: list[Document] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    touched: list[DocRow] = field(default_factory=list)  # same bytes, new mtime
    kept_skipped: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skips: list[SkipFile] = field(default_factory=list)
    read: int = 0  # files read and hashed
    listed: int = 0  # files seen
    # What the next index remembers of skipped files (see corpus.changes.skip_record),
    # and whether that differs from what this one remembers.
    remembered: dict[str, dict[str, Any]] = field(default_factory=dict)
    skips_changed: bool = False

    @property
    def changed(self) -> bool:
        return bool(
            self.added or self.updated or self.removed or self.touched or self.skips_changed
        )


def diff_corpus(
    root: Path,
    indexed: dict[str, DocRow],
    full: bool = False,
    known_skips: SkipMemory | None = None,
) -> CorpusDiff:
    """Compare the corpus folder with the documents the index holds.

    Args:
        root: the corpus folder.
        indexed: the index's documents by source.
        full: every file counts as changed (a rebuild): all are read.
        known_skips: files the index remembers as skipped; one that has not changed
            (size, mtime, reader) is not read again, and not warned about again.

    Raises:
        CorpusError: ``root`` is missing or not a folder.
    """
    from bunko.ingest import list_corpus, read_document, source_of

    out = CorpusDiff()
    seen: set[str] = set()
    skipped: set[str] = set()
    for path in list_corpus(root):
        out.listed += 1
        src = source_of(path, root)
        seen.add(src)
        prev = indexed.get(src)
        known = (known_skips or {}).get(skip_key(src))
        if known is not None and not full:
            try:
                if stat_mod.S_ISREG(path.stat().st_mode) and still_skipped(
                    path, path.stat(), known
                ):
                    out.skips.append(SkipFile(skip_key(src), str(known.get("reason", ""))))
                    out.remembered[skip_key(src)] = dict(known)
                    skipped.add(src)
                    continue
            except OSError:
                pass
        if prev is not None and not full:
            try:
                st = path.stat()
            except OSError:
                st = None
            if (
                st is not None
                and stat_mod.S_ISREG(st.st_mode)
                and same_stat(st, prev)
                # chmod leaves size and mtime alone: an unreadable file is read (and
                # reported as skipped), not silently taken as unchanged.
                and os.access(path, os.R_OK)
                and not _extractor_changed(path, prev)
            ):
                out.kept.append(src)
                continue
        try:
            doc = read_document(path, root)
        except SkipFile as skip:
            log.warning("skipping %s: %s", skip.path, skip.reason)
            out.skips.append(skip)
            skipped.add(skip.path)
            record = None if skip.transient else skip_record(path, skip.reason)
            if record is not None:
                out.remembered[skip_key(src)] = record
            continue
        out.read += 1
        if prev is None:
            out.added.append(doc)
        elif (
            full
            or prev.sha256 != doc.sha256
            or prev.extra.get("extractor") != doc.extra.get("extractor")
        ):
            out.updated.append(doc)  # changed, or its text extractor did
        else:
            out.kept.append(src)
            out.touched.append(
                DocRow(
                    prev.source, prev.title, prev.sha256, doc.size, doc.mtime_ns,
                    prev.encoding, prev.n_chunks, prev.extra,
                )
            )  # fmt: skip
    out.skips_changed = out.remembered != dict(known_skips or {})
    for src in indexed:
        if src in seen and src in skipped:
            out.kept_skipped.append(src)
        elif src not in seen:
            out.removed.append(src)
    return out


def chunk_rows(
    doc: Document,
    embedder: Embedder,
    tokenizer: Tokenizer,
    max_tokens: int,
    overlap: int,
    first_id: int,
    chunk_vectors: str,
) -> list[ChunkRow]:
    """A document's chunks as rows with ids ``first_id``, ``first_id + 1``, ...

    Vectors are not filled in yet (see :func:`bunko.embedding.cache.vectors_for`).
    """
    from bunko.chunking import chunk_document
    from bunko.embedding.cache import text_hash
    from bunko.index.format import pack_sentence_tokens

    chunks = chunk_document(
        doc, embedder.count_tokens, min(max_tokens, embedder.max_tokens), overlap
    )
    toks = tokenizer.tokens_many([c.text for c in chunks])
    # Each sentence's tokens, for the highlight (once per sentence: chunks overlap).
    spans = [
        tuple((s.start, s.end) for s in c.sentences) or ((c.char_start, c.char_end),)
        for c in chunks
    ]
    unique = list(dict.fromkeys(sp for chunk_spans in spans for sp in chunk_spans))
    texts = [doc.text[a:b] for a, b in unique]
    sent_toks = dict(zip(unique, tokenizer.tokens_many(texts), strict=True))
    return [
        ChunkRow(
            id=first_id + i,
            source=c.source,
            title=c.title,
            heading=c.heading,
            text=c.text,
            char_start=c.char_start,
            char_end=c.char_end,
            line_start=c.line_start,
            line_end=c.line_end,
            sentences=tuple((s.start, s.end) for s in c.sentences),
            n_tokens=c.n_tokens,
            hash=text_hash(c.text, chunk_vectors),
            tokens=tuple(t),
            sent_tokens=pack_sentence_tokens([sent_toks[sp] for sp in sp_list], t),
        )
        for i, (c, t, sp_list) in enumerate(zip(chunks, toks, spans, strict=True))
    ]


def doc_row(doc: Document, n_chunks: int) -> DocRow:
    return DocRow(
        doc.source, doc.title, doc.sha256, doc.size, doc.mtime_ns, doc.encoding, n_chunks,
        dict(doc.extra),
    )  # fmt: skip


def renumber(rows: Sequence[ChunkRow], first_id: int) -> list[ChunkRow]:
    """Rows carried into a rebuild, with fresh ids from ``first_id``."""
    import dataclasses

    return [dataclasses.replace(r, id=first_id + i) for i, r in enumerate(rows)]


_EXTRACTORS: dict[tuple[str, object], str] = {}


def _extractor_changed(path: Path, prev: DocRow) -> bool:
    """A file made by a reader (HTML, PDF, EPUB) whose version has changed since: its
    extracted text, which citations point into, may differ, so it is read again."""
    was = prev.extra.get("extractor")
    if was is None:
        return False
    from bunko.readers import extractor, reader_for

    reader = reader_for(path)
    if reader is None:
        return True
    key = (reader.__name__, getattr(reader, "VERSION", 1))
    if key not in _EXTRACTORS:
        _EXTRACTORS[key] = extractor(reader)
    return bool(_EXTRACTORS[key] != was)
