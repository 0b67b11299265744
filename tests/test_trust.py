"""Answers you can trust: corpus binding, fresh answers, confidence, one passage per place.

All with the real tagger, FAISS and bundled model on the tiny mini corpus.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bunko.api import Shelf
from bunko.cli import app
from bunko.config import Settings
from bunko.errors import CorpusError
from bunko.freshness import corpus_changes
from bunko.retrieval.abstention import auroc
from bunko.retrieval.passages import group_places

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def where(s: Settings) -> list[str]:
    return ["--corpus", str(s.corpus), "--index", str(s.index)]


FUJI = "# 新しい山\n\n御嶽山は長野県と岐阜県の境にある火山で、標高は3067メートルです。\n"


# -- the index belongs to its corpus --------------------------------------------


def test_query_with_another_corpus_is_an_error_naming_both(mini: Settings, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.md").write_text(FUJI, "utf-8")
    code, out, err = run("query", "江戸前寿司とは？", "--corpus", str(other), "--index",
                         str(mini.index))  # fmt: skip
    assert code == 1 and out == ""
    assert err.startswith("Error: ")
    assert str(mini.corpus.resolve()) in err and str(other.resolve()) in err
    assert "--index DIR" in err and "bunko index --rebuild" in err
    # Updating is refused the same way; a rebuild switches the index to the new corpus.
    code, _, err = run("index", "--corpus", str(other), "--index", str(mini.index))
    assert code == 1 and "bunko index --rebuild" in err
    code, _, err = run("index", "--rebuild", "--corpus", str(other), "--index", str(mini.index))
    assert code == 0, err
    code, out, err = run("query", "御嶽山の標高は？", "--json", "--corpus", str(other), "--index",
                         str(mini.index))  # fmt: skip
    assert code == 0, err
    assert {r["source"] for r in json.loads(out)["results"]} == {"a.md"}


def test_missing_corpus_folder_is_an_error(mini: Settings, tmp_path: Path) -> None:
    code, out, err = run("query", "富士山の高さは？", "--corpus", str(tmp_path / "nowhere"),
                         "--index", str(mini.index))  # fmt: skip
    assert code == 1 and out == ""
    assert "nowhere" in err and "does not exist" in err and "Traceback" not in err


def test_index_and_corpus_moved_together_still_match(mini: Settings, tmp_path: Path) -> None:
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(str(mini.corpus), moved / "corpus")
    shutil.move(str(mini.index), moved / "index")
    code, _, err = run("query", "富士山の高さは？", "--corpus", str(moved / "corpus"),
                       "--index", str(moved / "index"))  # fmt: skip
    assert code == 0, err


def test_older_index_without_corpus_record_is_accepted_and_upgraded(mini: Settings) -> None:
    shelf = Shelf(mini)
    meta_path = shelf.loaded().folder / "meta.json"
    shelf.loaded().close()
    meta = json.loads(meta_path.read_text("utf-8"))
    del meta["corpus"], meta["corpus_from_index"]
    meta_path.write_text(json.dumps(meta), "utf-8")
    (mini.corpus / "ontake.md").write_text(FUJI, "utf-8")
    result = Shelf(mini).query("御嶽山の標高は？", k=1)
    assert result.passages[0].citation.source == "ontake.md"
    assert Shelf(mini).loaded().meta["corpus"] == str(mini.corpus.resolve())


# -- fresh answers ------------------------------------------------------------


def test_query_updates_for_new_changed_and_removed_files(mini: Settings) -> None:
    (mini.corpus / "ontake.md").write_text(FUJI, "utf-8")
    code, out, err = run("query", "御嶽山の標高は？", "-k", "1", "--json", *where(mini))
    assert code == 0, err
    assert "1 new (ontake.md)" in err
    assert json.loads(out)["results"][0]["source"] == "ontake.md"

    (mini.corpus / "ontake.md").write_text(FUJI.replace("3067", "4321"), "utf-8")
    code, out, err = run("query", "御嶽山の標高は？", "-k", "1", "--json", *where(mini))
    assert code == 0 and "1 changed (ontake.md)" in err
    assert "4321" in json.loads(out)["results"][0]["text"]

    (mini.corpus / "ontake.md").unlink()
    code, out, err = run("query", "御嶽山の標高は？", "--json", *where(mini))
    assert code == 0 and "1 removed (ontake.md)" in err
    assert all(r["source"] != "ontake.md" for r in json.loads(out)["results"])

    # Nothing changed: no update line, no work.
    code, _, err = run("query", "御嶽山の標高は？", *where(mini))
    assert code == 0 and "changed since" not in err


def test_touched_but_identical_file_is_not_a_change(mini: Settings) -> None:
    f = mini.corpus / "fuji.md"
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    shelf = Shelf(mini)
    assert not corpus_changes(mini.corpus, shelf.loaded().documents())


def test_no_update_answers_from_the_index_as_it_is(mini: Settings) -> None:
    (mini.corpus / "ontake.md").write_text(FUJI, "utf-8")
    code, out, err = run("query", "御嶽山の標高は？", "--no-update", "--json", *where(mini))
    assert code == 0, err
    assert "changed since" not in err
    assert all(r["source"] != "ontake.md" for r in json.loads(out)["results"])
    code, out, _ = run("status", *where(mini))
    assert "ontake.md" in out  # still waiting to be indexed


def test_read_only_index_warns_and_answers(mini: Settings) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes to read-only folders")
    (mini.corpus / "ontake.md").write_text(FUJI, "utf-8")
    os.chmod(mini.index, 0o555)
    try:
        code, out, err = run("query", "富士山の高さは？", "--json", *where(mini))
    finally:
        os.chmod(mini.index, 0o755)
    assert code == 0, err
    assert "answering from the index as it is" in err
    assert json.loads(out)["results"][0]["source"] == "fuji.md"


# -- confidence and abstention --------------------------------------------------


def test_confidence_and_answerable_in_json(mini: Settings) -> None:
    code, out, err = run("query", "富士山の標高は何メートルですか？", "--json", *where(mini))
    assert code == 0, err
    data = json.loads(out)
    assert data["answerable"] is True
    assert 0.0 < data["min_confidence"] < 1.0
    confs = [r["confidence"] for r in data["results"]]
    assert all(0.0 <= c <= 1.0 for c in confs)
    assert confs[0] >= data["min_confidence"]


@pytest.mark.parametrize("question", ["asdfghjkl", "What is the capital of France?"])
def test_obviously_unanswerable_question_is_not_answerable(mini: Settings, question: str) -> None:
    code, out, err = run("query", question, *where(mini))
    assert code == 0, err
    first = out.splitlines()[0]
    assert first.startswith("No passage in the corpus answers this confidently")
    assert "[1]" in out  # the closest passages still follow, under that line
    code, out, _ = run("query", question, "--json", *where(mini))
    data = json.loads(out)
    assert data["answerable"] is False
    assert data["results"][0]["confidence"] < data["min_confidence"]


def test_min_confidence_overrides_the_threshold(mini: Settings) -> None:
    q = "富士山の標高は何メートルですか？"
    code, out, _ = run("query", q, "--json", "--min-confidence", "0", *where(mini))
    assert code == 0 and json.loads(out)["answerable"] is True
    assert json.loads(out)["min_confidence"] == 0.0
    code, out, _ = run("query", q, "--json", "--min-confidence", "1", *where(mini))
    data = json.loads(out)
    assert data["min_confidence"] == 1.0
    assert data["answerable"] is (data["results"][0]["confidence"] >= 1.0)
    code, _, err = run("query", q, "--min-confidence", "1.5", *where(mini))
    assert code == 2 and "between 0 and 1" in err


def test_confidence_is_the_same_for_a_passage_in_every_mode(mini: Settings) -> None:
    shelf = Shelf(mini)
    q = "富士山の標高は何メートルですか？"
    seen: dict[tuple[str, int], float] = {}
    for mode in ("hybrid", "dense", "lexical"):
        for p in shelf.query(q, k=3, mode=mode).passages:  # type: ignore[arg-type]
            key = (p.citation.source, p.citation.char_start)
            assert seen.setdefault(key, p.confidence) == pytest.approx(p.confidence, abs=1e-3)


def test_eval_reports_abstention_per_language(mini: Settings, tmp_path: Path) -> None:
    qa = Path(__file__).parent / "data" / "mini-qa.jsonl"
    f = tmp_path / "qa.jsonl"
    f.write_text(
        qa.read_text("utf-8")
        + json.dumps({"id": "u1", "lang": "en", "question": "asdfghjkl", "answerable": False})
        + "\n"
        + json.dumps(
            {"id": "u2", "lang": "ja", "question": "月の裏側の温度は？", "answerable": False}
        )
        + "\n",
        "utf-8",
    )
    code, out, err = run("eval", str(f), "--json", *where(mini))
    assert code == 0, err
    data = json.loads(out)
    assert set(data["abstention"]) == {"en", "ja", "all"}
    a = data["abstention"]["all"]
    assert a["n_unanswerable"] == 2 and a["n_answerable"] == data["overall"]["n"]
    assert 0.0 <= a["auroc"] <= 1.0
    code, out, _ = run("eval", str(f), *where(mini))
    assert "abstention at min-confidence" in out


def test_auroc_arithmetic() -> None:
    assert auroc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert auroc([0.1], [0.9]) == 0.0
    assert auroc([0.5], [0.5]) == 0.5
    assert auroc([], [0.5]) is None


# -- one passage per place ------------------------------------------------------


def test_results_never_share_text(mini: Settings) -> None:
    shelf = Shelf(mini)
    for q in ("富士山", "coffee roast temperature", "寿司の歴史", "How tall is Mount Fuji?"):
        for mode in ("hybrid", "dense", "lexical"):
            spans: dict[str, list[tuple[int, int]]] = {}
            for p in shelf.query(q, k=10, mode=mode).passages:  # type: ignore[arg-type]
                c = p.citation
                for s, e in spans.get(c.source, []):
                    assert c.char_end < s or e < c.char_start, (q, mode, c)
                spans.setdefault(c.source, []).append((c.char_start, c.char_end))


def test_group_places_merges_neighbours_and_keeps_order() -> None:
    hits = [("a", 0, 10), ("a", 5, 15), ("b", 0, 10), ("a", 40, 50), ("a", 10, 45), ("c", 0, 9)]
    groups = group_places(hits, lambda h: h, 10, max_chars=20)
    # (a,10,45) touches two groups: dropped; (a,5,15) joins (a,0,10).
    assert groups == [[("a", 0, 10), ("a", 5, 15)], [("b", 0, 10)], [("a", 40, 50)], [("c", 0, 9)]]
    assert group_places(hits, lambda h: h, 1, max_chars=20) == [[("a", 0, 10), ("a", 5, 15)]]
    # A merge that would be too long gives the slot away instead.
    assert group_places(hits[:2], lambda h: h, 10, max_chars=12) == [[("a", 0, 10)]]


def test_merged_passage_text_is_the_file_text(mini: Settings) -> None:
    shelf = Shelf(mini)
    for q in ("富士山", "寿司の歴史", "coffee roast temperature"):
        for p in shelf.query(q, k=10).passages:
            c = p.citation
            file_text = (mini.corpus / c.source).read_text("utf-8")
            assert file_text[c.char_start : c.char_end] == p.text
            assert p.highlight in p.text and len(p.text) <= 1500 + 600


def test_corpus_error_from_the_api(mini: Settings, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.md").write_text(FUJI, "utf-8")
    shelf = Shelf(Settings.resolve(corpus=other, index=mini.index))
    with pytest.raises(CorpusError, match="--index DIR"):
        shelf.query("御嶽山", update=False)


def test_locked_index_warns_and_answers(mini: Settings) -> None:
    from bunko.index.store import IndexStore

    (mini.corpus / "ontake.md").write_text(FUJI, "utf-8")
    with IndexStore(mini.index).lock():  # as if a writer were running
        code, out, err = run("query", "富士山の高さは？", "--json", *where(mini))
    assert code == 0, err
    assert "another bunko process is updating" in err
    assert json.loads(out)["results"][0]["source"] == "fuji.md"


def test_unreadable_new_file_is_not_news(mini: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulated (chmod 0 does not stop root): an update would skip the file again,
    # so it must not make every query re-run an update.
    (mini.corpus / "secret.md").write_text(FUJI, "utf-8")
    (mini.corpus / "open.md").write_text(FUJI.replace("新しい山", "開いた山"), "utf-8")
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p).name != "secret.md" and real(p, mode))
    changes = corpus_changes(mini.corpus, Shelf(mini).loaded().documents())
    assert changes.new == ("open.md",)


def test_look_alike_letter_finds_the_corpus_digit_spelling(tmp_path: Path) -> None:
    # The corpus writes the model "01"; the question says "o1". BM25 alone sees only
    # "o" and "1" in the question, which the other articles have.
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "model.md").write_text("# 新モデル\n\n01は推論が得意な新しいモデルです。\n", "utf-8")
    for i, topic in enumerate(["設定", "料理", "天気", "旅行"]):
        (corpus / f"other{i}.md").write_text(
            f"# {topic}\n\n{topic}の版1ではoという記号を使います。\n", "utf-8"
        )
    shelf = Shelf(Settings.resolve(corpus=corpus, index=tmp_path / "index"))
    result = shelf.query("o1とは？", k=1, mode="lexical")
    assert result.passages[0].citation.source == "model.md"


# -- English questions over Japanese text: translated coverage --------------------


def test_jmdict_translates_english_words_to_japanese_terms() -> None:
    from bunko.retrieval.translate import available, translations

    assert available()
    assert "住宅ローン" in translations("mortgage")
    assert "猫" in translations("cats")  # a plural finds its dictionary form
    assert "インフラ" in translations("infrastructure")
    assert translations("qwertyuiopzz") == ()


def test_question_words_keep_names_and_drop_function_words() -> None:
    from bunko.retrieval.confidence import question_words

    words = question_words("Which ChatGPT features does GPT-4.5 not support in the o1 series?")
    assert words == ["ChatGPT", "features", "GPT-4.5", "support", "o1", "series"]


def test_translated_coverage_finds_the_passage_words() -> None:
    from bunko.retrieval.confidence import translated_coverage

    fuji = "富士山は日本で最も高い山で、標高は3776メートルです。"
    tokens = ["富士", "山", "は", "日本", "で", "最も", "高い", "山", "標高", "メートル"]
    # tall: 高い; mountain: 山 (one character: a whole token); Japan: 日本 ("japan" is lacquer)
    assert translated_coverage("How tall is the mountain in Japan?", fuji, tokens) == 1.0
    assert translated_coverage("How tall is the mountain in Japan?", fuji) == 2 / 3
    assert translated_coverage("How do I compare mortgage interest rates?", fuji) == 0.0
    # A name is found as written, a look-alike letter also as its digit ("o1" as "01").
    assert translated_coverage("o1 release", "OpenAI 01 を発表した。") == 0.5


def test_english_question_confidence_follows_what_the_corpus_holds(mini: Settings) -> None:
    shelf = Shelf(mini)
    asked = shelf.query("How tall is Mount Fuji in meters?", k=3)
    unasked = shelf.query("How do I compare mortgage interest rates?", k=3)
    assert asked.passages[0].citation.source == "fuji.md"
    assert asked.passages[0].confidence > unasked.passages[0].confidence
    assert unasked.answerable is False


def test_japanese_question_over_an_english_article(mini: Settings) -> None:
    from bunko.retrieval.confidence import translated_coverage

    coffee = (mini.corpus / "coffee.md").read_text("utf-8")
    # コーヒー: coffee, 最初: first, 度: degree(s), 起こる: happen
    assert translated_coverage("コーヒーの最初のクラックは何度で起こりますか？", coffee) >= 0.5
    assert translated_coverage("住宅ローンの金利を比較する方法は？", coffee) < 0.2
    shelf = Shelf(mini)
    asked = shelf.query("コーヒーの「ファーストクラック」は何度で起こりますか？", k=3)
    assert asked.passages[0].citation.source == "coffee.md"
    assert "196 degrees" in asked.passages[0].text
    assert asked.answerable is True
    assert shelf.query("住宅ローンの金利を比較する方法は？", k=3).answerable is False


def test_unreadable_dictionary_warns_and_confidence_still_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from bunko.retrieval import expansion, translate
    from bunko.retrieval.confidence import translated_coverage

    bad = tmp_path / "jmdict.sqlite"
    bad.write_bytes(b"this is not an SQLite file" * 100)
    monkeypatch.setattr(expansion, "_dictionary", expansion.Dictionary(str(bad)))
    translate.translations.cache_clear()
    translate.glosses.cache_clear()
    try:
        with caplog.at_level("WARNING", logger="bunko"):
            assert translate.translations("mortgage") == ()
            assert not translate.available()
            # Names still match as written; translated words cannot.
            assert translated_coverage("GPT-4.5 mortgage", "GPT-4.5 の料金") == 0.5
        assert sum("reinstall bunko" in r.getMessage() for r in caplog.records) == 1
    finally:
        translate.translations.cache_clear()
        translate.glosses.cache_clear()
