"""`bunko ask`: the real openai client against a scripted OpenAI-compatible server."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from bunko.answer.ask import ask
from bunko.answer.citations import MarkerStream, check_answer, normalise_markers
from bunko.answer.llm import LLMConfig
from bunko.api import Shelf
from bunko.cli import app
from bunko.config import Settings
from bunko.types import QueryResult
from llm_server import ScriptedLLM, scripted_llm

HAS_TRUST = "answerable" in getattr(QueryResult, "__dataclass_fields__", {})
QUESTION = "富士山の標高は何メートルですか？"
runner = CliRunner()


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedLLM]:
    for var in ("BUNKO_LLM_URL", "BUNKO_LLM_MODEL", "BUNKO_LLM_API_KEY", "OPENAI_API_KEY",
                "BUNKO_LLM_TIMEOUT"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    with scripted_llm() as server:
        yield server


def _use(llm: ScriptedLLM, model: str) -> list[str]:
    return ["--llm-url", llm.url, "--llm-model", model]


def _ask(s: Settings, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    where = ["--corpus", str(s.corpus), "--index", str(s.index)]
    r = runner.invoke(app, ["ask", *args, *where], env=env)
    return r.exit_code, r.stdout, r.stderr


def _query(s: Settings, q: str) -> dict[str, object]:
    where = ["--corpus", str(s.corpus), "--index", str(s.index)]
    r = runner.invoke(app, ["query", q, "--json", *where])
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def test_ask_resolves_valid_citations_to_the_query_passages(
    mini: Settings, llm: ScriptedLLM
) -> None:
    code, out, err = _ask(mini, QUESTION, "--json", *_use(llm, "valid"))
    assert code == 0, err
    data = json.loads(out)
    assert set(data) >= {"question", "answer", "citations", "dropped", "model", "llm"}
    assert (
        data["answer"]
        == "富士山の標高は3776メートルです[1]。2013年に世界文化遺産に登録されました[2]。"
    )
    assert data["llm"] == {"url": llm.url, "model": "valid"}
    assert data["dropped"] == [] and data["unverified_quotes"] == []
    # [n] is the n-th passage of `bunko query`, with its exact citation.
    q = _query(mini, QUESTION)
    results = q["results"]
    assert isinstance(results, list)
    assert [c["n"] for c in data["citations"]] == [1, 2]
    for c in data["citations"]:
        r = results[c["n"] - 1]
        assert (c["source"], c["lines"], c["chars"], c["title"]) == (
            r["source"], r["lines"], r["chars"], r["title"])  # fmt: skip
        assert c["citation"] == r["citation"]
    # The prompt numbered the passages in that same order, and asked for Japanese.
    sent = llm.requests[-1]["body"]
    assert sent["model"] == "valid" and not sent.get("stream")
    user = sent["messages"][-1]["content"]
    positions = [user.index(f"[{i}] ") for i in range(1, len(results) + 1)]
    assert positions == sorted(positions)
    first = results[0]
    assert f"{first['source']}:{first['lines'][0]}-{first['lines'][1]}" in user.split("[2] ")[0]
    assert "Answer in Japanese" in user


def test_ask_normalises_full_width_markers_and_drops_unknown_ones(
    mini: Settings, llm: ScriptedLLM
) -> None:
    code, out, err = _ask(mini, QUESTION, "--json", *_use(llm, "fullwidth"))
    assert code == 0, err
    data = json.loads(out)
    assert data["answer"] == "富士山の標高は3776メートルです[1]。世界文化遺産です[2]。"
    assert [c["n"] for c in data["citations"]] == [1, 2]

    code, out, err = _ask(mini, QUESTION, "--json", *_use(llm, "unknown"))
    assert code == 0, err
    data = json.loads(out)
    assert data["answer"] == "富士山の標高は3776メートルです[1]。"
    assert data["dropped"] == ["[99]"]
    assert [c["n"] for c in data["citations"]] == [1]
    assert "removed citation [99]" in err


def test_ask_reports_quotes_missing_from_the_cited_passage(
    mini: Settings, llm: ScriptedLLM
) -> None:
    code, out, err = _ask(mini, QUESTION, "--json", *_use(llm, "quotes"))
    assert code == 0, err
    data = json.loads(out)
    assert data["unverified_quotes"] == ["標高は5000メートル"]
    assert "標高は5000メートル" in err and "標高は3776メートル" not in err


def test_ask_streams_with_markers_already_checked(mini: Settings, llm: ScriptedLLM) -> None:
    shelf = Shelf(mini)
    for model, expected in [
        ("fullwidth", "富士山の標高は3776メートルです[1]。世界文化遺産です[2]。"),
        ("unknown", "富士山の標高は3776メートルです[1]。"),
    ]:
        pieces: list[str] = []
        r = ask(shelf, QUESTION, llm=LLMConfig(llm.url, model), on_delta=pieces.append)
        assert llm.requests[-1]["body"]["stream"] is True
        assert len(pieces) > 3  # it really streamed
        assert r.answer == expected
        # What a terminal saw is the checked answer (no 【】, no [99]).
        assert "".join(pieces).replace(" ", "") == expected


def test_ask_in_english_and_plain_text_output(mini: Settings, llm: ScriptedLLM) -> None:
    q = "At what temperature does the first crack happen?"
    code, out, err = _ask(mini, q, *_use(llm, "english"))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == 'The first crack happens at "about 196 degrees" [1].'
    assert any(
        line.startswith("[1] Coffee Roasting Basics") and "coffee.md:" in line for line in lines
    )
    assert "Answer in English" in llm.requests[-1]["body"]["messages"][-1]["content"]
    assert "quote not found" not in err


def test_ask_without_an_llm_answers_extractively(mini: Settings, llm: ScriptedLLM) -> None:
    code, out, err = _ask(mini, QUESTION, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["llm"] is None
    assert "3776" in data["answer"].splitlines()[0] and data["answer"].splitlines()[0].endswith(
        "[1]"
    )
    assert data["citations"][0]["source"] == "fuji.md"
    hint = [line for line in err.splitlines() if "BUNKO_LLM_URL" in line]
    assert len(hint) == 1 and "ollama" in hint[0].lower()  # one line on how to configure
    assert llm.calls() == 0

    code, out, err = _ask(mini, QUESTION)
    assert code == 0 and "[1] 富士山の基礎知識" in out and "BUNKO_LLM_URL" in err


def test_ask_slow_reply_within_and_past_the_timeout(mini: Settings, llm: ScriptedLLM) -> None:
    args = [QUESTION, "--json", *_use(llm, "slow")]
    code, out, err = _ask(mini, *args, env={"BUNKO_LLM_TIMEOUT": "30"})
    assert code == 0, err
    assert json.loads(out)["answer"] == "富士山の標高は3776メートルです[1]。"
    before = llm.calls()
    code, out, err = _ask(mini, *args, env={"BUNKO_LLM_TIMEOUT": "1"})
    # A slow model costs the prose, not the answer: the extractive one, with its citations.
    assert code == 0, err
    data = json.loads(out)
    assert data["llm"] is None and "no reply within 1 s" in data["llm_error"]
    assert data["citations"] and data["citations"][0]["source"] == "fuji.md"
    assert "no reply within 1 s" in err and "BUNKO_LLM_TIMEOUT" in err
    assert "Traceback" not in err
    code, out, err = _ask(mini, *args, "--require-llm", env={"BUNKO_LLM_TIMEOUT": "1"})
    assert code == 1 and "no reply within 1 s" in err
    # One request per ask: a retry would double the wait past the timeout the user set.
    assert llm.calls() - before == 2


@pytest.mark.parametrize(
    ("model", "expect"),
    [
        ("http401", "BUNKO_LLM_API_KEY"),
        ("http404", "ollama pull"),
        ("http500", "HTTP 500: scripted http500"),
        ("no-such-model", "no model 'no-such-model'"),
    ],
)
def test_ask_http_errors_say_what_to_do(
    mini: Settings, llm: ScriptedLLM, model: str, expect: str
) -> None:
    code, out, err = _ask(mini, QUESTION, "--llm-url", llm.url, "--llm-model", model)
    assert code == 0 and "[1] 富士山の基礎知識" in out, (out, err)
    assert expect in err, err
    assert "Traceback" not in err
    code, out, err = _ask(mini, QUESTION, "--require-llm", *_use(llm, model))
    assert code == 1 and expect in err, err


def test_ask_unreachable_endpoint_and_missing_model(mini: Settings, llm: ScriptedLLM) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the block ends: nothing listens there
    code, out, err = _ask(
        mini, QUESTION, "--llm-url", f"http://127.0.0.1:{port}/v1", "--llm-model", "m"
    )
    assert code == 0 and "cannot reach the LLM" in err and "ollama serve" in err
    assert "[1] 富士山の基礎知識" in out and "富士山" in out.splitlines()[0]
    code, out, err = _ask(
        mini, QUESTION, "--require-llm", "--llm-url", f"http://127.0.0.1:{port}/v1",
        "--llm-model", "m",
    )  # fmt: skip
    assert code == 1 and "cannot reach the LLM" in err
    code, _, err = _ask(mini, QUESTION, "--llm-url", llm.url)
    assert code == 1 and "BUNKO_LLM_MODEL" in err
    code, _, err = _ask(mini, "  ")
    assert code == 2


def test_ask_sends_the_api_key(mini: Settings, llm: ScriptedLLM) -> None:
    env = {"BUNKO_LLM_URL": llm.url, "BUNKO_LLM_MODEL": "valid", "BUNKO_LLM_API_KEY": "sk-test"}
    code, _, err = _ask(mini, QUESTION, "--json", env=env)
    assert code == 0, err
    assert llm.requests[-1]["auth"] == "Bearer sk-test"


@pytest.mark.skipif(not HAS_TRUST, reason="needs the trust contract (QueryResult.answerable)")
def test_ask_does_not_call_the_model_when_the_corpus_has_no_answer(
    mini: Settings, llm: ScriptedLLM
) -> None:
    q = "火星の首都の人口は何人ですか？"
    code, out, err = _ask(mini, q, "--json", *_use(llm, "valid"))
    assert code == 0, err
    data = json.loads(out)
    assert data["answerable"] is False
    assert data["citations"] == [] and data["llm"] is None
    assert "見つかりませんでした" in data["answer"]
    assert llm.calls() == 0


def test_check_answer_markers_and_quotes() -> None:
    passages = ["富士山の標高は3776メートルです。", "The first crack happens at about 196 degrees."]
    c = check_answer(
        "高さは3776メートル【1】、温度は196度［２］と[3]。「標高は３７７６メートル」[1]。", passages
    )
    assert c.answer == "高さは3776メートル[1]、温度は196度[2]と。「標高は３７７６メートル」[1]。"
    assert c.cited == (1, 2) and c.dropped == ("[3]",)
    assert [(q.text, q.verified) for q in c.quotes] == [("標高は３７７６メートル", True)]
    # A quote checked against the wrong passage is unverified.
    c = check_answer('It says "about 196 degrees" [1].', passages)
    assert c.quotes[0].verified is False and c.quotes[0].cited == (1,)
    assert normalise_markers("a [1, 2] b【1・5】", 2)[0] == "a [1][2] b[1]"


def test_marker_stream_handles_markers_split_across_pieces() -> None:
    text = "答え【1】と[99]と［2］。[x] ok [12"
    for step in (1, 2, 3, 5):
        s = MarkerStream(k=2)
        shown = "".join(s.feed(text[i : i + step]) for i in range(0, len(text), step)) + s.flush()
        assert shown == "答え[1]と と[2]。[x] ok [12".replace(" と", "と"), step
