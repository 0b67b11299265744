"""The on-disk index format, in one place: layout, file names, row types, the manifest.

Layout (format 3, segmented)::

    index/
      CURRENT                   name of the live generation, replaced atomically
      gen-000042/               one commit: meta.json (the manifest) and docs.sqlite
      seg-000017/               an immutable segment: chunks.sqlite, vectors.faiss,
                                ids.npy, lexical.npz (postings and sorted terms)
                                (+ vectors.npy, the float vectors, for an ivf-sq8 segment)
      seg-000017.del-000042.npy chunk ids of seg-000017 deleted as of generation 42
      .lock                     held by the process that is writing

The manifest (``gen-*/meta.json``) says how the index was built (model,
fingerprint, chunker, tokenizer), which segments are live with their delete
files, and the size and crc32 of every file it relies on, by path relative to
the index folder. A segment, a delete file and a generation are never modified
once written; a commit adds new ones and swaps CURRENT.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bunko.errors import IndexCorruptError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

FORMAT_VERSION = 3
CURRENT = "CURRENT"
MANIFEST = "meta.json"
DOCS = "docs.sqlite"
CRC_LIMIT = 256 << 20  # bytes: files up to this size are checksummed on every load
# A writer checksums segment files up to this size only: small segments cost little to
# check, and the large ones are checked when a merge or a rebuild reads them whole.
WRITER_CRC_LIMIT = 8 << 20
REBUILD_HINT = "run `bunko index --rebuild` to rebuild it from the corpus"
GENERATION_FILES = (MANIFEST, DOCS)
# Files of a segment; vectors.npy exists only in an ivf-sq8 segment (whose FAISS
# index keeps 8-bit codes, and a merge needs the float vectors).
# lexical.npz holds the postings and the sorted terms; a segment written before the
# terms moved there (no "vocab" key in its manifest entry) has them in LEGACY_VOCAB.
SEGMENT_FILES = ("chunks.sqlite", "vectors.faiss", "ids.npy", "lexical.npz")
LEGACY_VOCAB = "lexical_vocab.json"
TOKEN_SEP = "\x1f"

CHUNKS_SCHEMA = """
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY, source TEXT NOT NULL, title TEXT NOT NULL, heading TEXT,
    text TEXT NOT NULL, char_start INTEGER NOT NULL, char_end INTEGER NOT NULL,
    line_start INTEGER NOT NULL, line_end INTEGER NOT NULL, sentences TEXT NOT NULL,
    n_tokens INTEGER NOT NULL, hash TEXT NOT NULL, tokens TEXT NOT NULL,
    sentvecs BLOB NOT NULL, sent_tokens TEXT NOT NULL DEFAULT ''
);
CREATE INDEX chunks_source ON chunks(source);
CREATE INDEX chunks_hash ON chunks(hash);
"""
DOCS_SCHEMA = """
CREATE TABLE documents (
    source TEXT PRIMARY KEY, title TEXT NOT NULL, sha256 TEXT NOT NULL,
    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, encoding TEXT NOT NULL,
    n_chunks INTEGER NOT NULL, extra TEXT NOT NULL DEFAULT '{}'
);
"""
CHUNK_COLUMNS = (
    "id, source, title, heading, text, char_start, char_end, line_start, line_end, "
    "sentences, n_tokens, hash, tokens, sentvecs, sent_tokens"
)
# A segment written before the sentence tokens were stored (no "sent_tokens" key in
# its manifest entry) has no such column: it is read as empty (the highlight then
# tokenises the sentences it shows, as before).
CHUNK_COLUMNS_BEFORE_SENT_TOKENS = CHUNK_COLUMNS.replace("sent_tokens", "''")
DOC_COLUMNS = "source, title, sha256, size, mtime_ns, encoding, n_chunks, extra"


@dataclass(frozen=True)
class ChunkRow:
    """A chunk as stored in a segment's chunk table."""

    id: int
    source: str
    title: str
    heading: str | None
    text: str
    char_start: int
    char_end: int
    line_start: int
    line_end: int
    sentences: tuple[tuple[int, int], ...]
    n_tokens: int
    hash: str
    tokens: tuple[str, ...]
    sentvecs: bytes = b""  # one packed vector per sentence (see pack_vectors)
    # The lexical tokens of each sentence, as the highlight reads them (see
    # pack_sentence_tokens); "" where the index predates them.
    sent_tokens: str = ""

    @classmethod
    def from_sql(cls, row: Sequence[Any]) -> ChunkRow:
        return cls(
            row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8],
            tuple(tuple(s) for s in json.loads(row[9])), row[10], row[11],
            tuple(row[12].split(TOKEN_SEP)) if row[12] else (), row[13], row[14],
        )  # fmt: skip

    def to_sql(self) -> tuple[Any, ...]:
        return (
            self.id, self.source, self.title, self.heading, self.text, self.char_start,
            self.char_end, self.line_start, self.line_end, json.dumps(self.sentences),
            self.n_tokens, self.hash, TOKEN_SEP.join(self.tokens), self.sentvecs,
            self.sent_tokens,
        )  # fmt: skip

    def sentence_spans(self) -> tuple[tuple[int, int], ...]:
        """The char spans the highlight chooses from: the sentences, or the whole chunk."""
        return self.sentences or ((self.char_start, self.char_end),)

    def sentence_tokens(self) -> list[list[str]] | None:
        """The lexical tokens of each of :meth:`sentence_spans`, as stored at indexing
        (:func:`pack_sentence_tokens`); None where they were not (an index written
        before they were) or do not fit the row."""
        packed = self.sent_tokens
        out: list[list[str]]
        try:
            if packed.startswith(_COUNTS):
                counts = [int(n) for n in packed[1:].split(",")]
                if sum(counts) != len(self.tokens) or min(counts) < 0:
                    return None
                ends = list(accumulate(counts))
                out = [list(self.tokens[e - n : e]) for n, e in zip(counts, ends, strict=True)]
            elif packed.startswith("["):
                out = json.loads(packed)
                if not all(isinstance(s, list) and all(isinstance(t, str) for t in s)
                           for s in out):  # fmt: skip
                    return None
            else:
                return None
        except ValueError:
            return None
        return out if len(out) == len(self.sentence_spans()) else None


@dataclass(frozen=True)
class DocRow:
    """A document as the index knows it; ``extra`` is free-form JSON kept unchanged."""

    source: str
    title: str
    sha256: str
    size: int
    mtime_ns: int
    encoding: str
    n_chunks: int
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_sql(cls, row: Sequence[Any]) -> DocRow:
        extra = json.loads(row[7]) if row[7] else {}
        if not isinstance(extra, dict):
            raise ValueError("extra is not a JSON object")
        return cls(row[0], row[1], row[2], row[3], row[4], row[5], row[6], extra)

    def to_sql(self) -> tuple[Any, ...]:
        return (
            self.source, self.title, self.sha256, self.size, self.mtime_ns, self.encoding,
            self.n_chunks, json.dumps(self.extra, ensure_ascii=False, sort_keys=True),
        )  # fmt: skip


_COUNTS = "#"


def pack_sentence_tokens(per_sentence: Sequence[Sequence[str]], tokens: Sequence[str]) -> str:
    """Each sentence's tokens, stored with the chunk row so that a query's highlight
    need not tokenise the sentences it shows again (issue 24).

    Almost always the sentences' tokens, one after another, are the chunk's own
    (``tokens``, tokenised whole for BM25): then only the counts are stored
    (``#12,8,15``). MeCab reads context, so now and then a word splits differently
    in a sentence alone (about 2 % of JSQuAD chunks); those rows store the lists
    as JSON.
    """
    if [t for s in per_sentence for t in s] == list(tokens):
        return _COUNTS + ",".join(str(len(s)) for s in per_sentence)
    return json.dumps([list(s) for s in per_sentence], ensure_ascii=False)


def pack_vectors(vecs: npt.NDArray[np.float32]) -> bytes:
    """Unit vectors as int8 with a float32 scale each: 4 + dim bytes per vector.

    Sentence vectors are only used to re-rank a few candidates and to pick the
    highlight, so 8 bits (cosine error about 0.002) is plenty and keeps the
    chunk table small.
    """
    import numpy as np

    if len(vecs) == 0:
        return b""
    scale = np.abs(vecs).max(axis=1, keepdims=True).astype(np.float32) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(np.rint(vecs / scale), -127, 127).astype(np.int8)
    return b"".join(s.tobytes() + v.tobytes() for s, v in zip(scale, q, strict=True))


def unpack_vectors(blob: bytes, dim: int) -> npt.NDArray[np.float32]:
    """The inverse of :func:`pack_vectors`: an (n, dim) float32 array."""
    import numpy as np

    width = 4 + dim
    n = len(blob) // width
    raw = np.frombuffer(blob, dtype=np.uint8, count=n * width).reshape(n, width)
    scale = raw[:, :4].copy().view(np.float32)
    return raw[:, 4:].copy().view(np.int8).astype(np.float32) * scale


def segment_name(number: int) -> str:
    return f"seg-{number:06d}"


def generation_name(number: int) -> str:
    return f"gen-{number:06d}"


def delete_file_name(segment: str, generation: str) -> str:
    return f"{segment}.del-{generation[4:]}.npy"


class IndexFormatError(IndexCorruptError):
    """The index was written by an older bunko in a format this one does not read."""


META_SUM = "meta_crc32"


def meta_sum(meta: dict[str, Any]) -> int:
    """The checksum a manifest records of itself: crc32 of its canonical JSON
    without this field, so that an edit (``next_id`` lowered, say) is damage."""
    body = {k: v for k, v in meta.items() if k != META_SUM}
    canon = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return zlib.crc32(canon.encode("utf-8"))


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a generation folder, checked for the keys every reader needs.

    Raises:
        IndexFormatError: an index of an older format (``bunko index`` upgrades it).
        IndexCorruptError: the manifest is missing, not JSON or lacks a key.
    """
    path = folder / MANIFEST
    try:
        meta = json.loads(path.read_text("utf-8"))
    except FileNotFoundError as exc:
        raise IndexCorruptError(f"index file {path} is missing; {REBUILD_HINT}") from exc
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"{path} is not valid JSON ({exc}); {REBUILD_HINT}") from exc
    if isinstance(meta, dict) and meta.get("format") in (1, 2):
        raise IndexFormatError(
            f"the index in {folder.parent} is in format {meta['format']} of an older bunko; "
            "run `bunko index` to upgrade it (one rebuild)"
        )
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
        raise IndexCorruptError(
            f"{path} is not a bunko index of format {FORMAT_VERSION}; {REBUILD_HINT}"
        )
    recorded = meta.get(META_SUM)
    if recorded is not None and recorded != meta_sum(meta):
        raise IndexCorruptError(f"{path} does not match its checksum; {REBUILD_HINT}")
    for key in ("model", "fingerprint", "dimension", "chunker", "chunks", "segments"):
        if key not in meta:
            raise IndexCorruptError(f"{path} lacks {key!r}; {REBUILD_HINT}")
    segs = meta["segments"]
    if not isinstance(segs, list) or not all(
        isinstance(s, dict) and isinstance(s.get("name"), str) and isinstance(s.get("n"), int)
        for s in segs
    ):
        raise IndexCorruptError(f"{path} has a malformed segment list; {REBUILD_HINT}")
    for s in segs:
        names = [s["name"], s.get("deletes") or s["name"]]
        if any("/" in n or not n.startswith("seg-") for n in names):
            raise IndexCorruptError(f"{path} names a file outside the index; {REBUILD_HINT}")
    return meta


def crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            crc = zlib.crc32(block, crc)
    return crc


def verify_files(folder: Path, meta: dict[str, Any], segments: bool | set[str] = True) -> None:
    """Check the size (and crc32, for files up to :data:`CRC_LIMIT`) the manifest records.

    Sizes miss damage in place (a bad disk block, a stray write), and SQLite
    reads only the pages a query touches, so such damage would surface later as
    wrong text or a crash. crc32 runs at GB/s, but reading a multi-GB index on
    every query would undo memory-mapping: large files get the size check only.

    ``segments``: whose segment files get their checksum read (True: all; the
    others only when under :data:`WRITER_CRC_LIMIT`). A writer reads only a few
    rows of most segments; it checks the segments it merges, small files, and
    sizes for the rest, so that an update costs what it changes.
    """
    if meta.get("generation", folder.name) != folder.name:
        raise IndexCorruptError(
            f"the manifest in {folder} belongs to {meta['generation']}; {REBUILD_HINT}"
        )
    sizes = meta.get("files", {})
    sums = meta.get("crc32", {})
    for name in dict.fromkeys([DOCS, *sizes]):
        # Segments and delete files lie beside the generations; docs.sqlite inside.
        path = folder.parent / name if name.startswith("seg-") else folder / name
        if not path.is_file():
            raise IndexCorruptError(f"index file {path} is missing; {REBUILD_HINT}")
        want = sizes.get(name)
        if want is not None and path.stat().st_size != want:
            raise IndexCorruptError(
                f"index file {path} has the wrong size (truncated or altered); {REBUILD_HINT}"
            )
        crc = sums.get(name)
        seg = name.split("/")[0] if "/" in name else None
        chosen = segments is True or (isinstance(segments, set) and seg in segments)
        if seg is not None and not chosen and (want or 0) > WRITER_CRC_LIMIT:
            crc = None
        if crc is not None and (want or 0) <= CRC_LIMIT and crc32(path) != crc:
            raise IndexCorruptError(
                f"index file {path} is damaged (checksum mismatch); {REBUILD_HINT}"
            )
