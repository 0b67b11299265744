"""How serve/MCP/ask pass the trust contract (answerable, min_confidence, confidence)
through: every output carries it, and `ask` does not call the model when answerable is
False. The end-to-end versions are in test_mcp, test_ask and test_browser."""

from __future__ import annotations

import dataclasses

from bunko.answer.ask import answer_from
from bunko.answer.llm import LLMConfig
from bunko.api import Shelf
from bunko.config import Settings
from bunko.jsonout import query_json
from bunko.serve.results import mcp_results
from bunko.types import QueryResult
from llm_server import scripted_llm


def _trusted(result: QueryResult, answerable: bool) -> QueryResult:
    conf = 0.9 if answerable else 0.1
    passages = tuple(dataclasses.replace(p, confidence=conf) for p in result.passages)
    return dataclasses.replace(result, passages=passages, answerable=answerable, min_confidence=0.5)


def test_outputs_pass_the_contract_through_and_ask_skips_the_model(mini: Settings) -> None:
    base = Shelf(mini).query("富士山の標高は？", k=2)
    yes, no = _trusted(base, True), _trusted(base, False)
    data = query_json(no)
    assert data["answerable"] is False and data["min_confidence"] == 0.5
    assert [r["confidence"] for r in data["results"]] == [0.1, 0.1]
    assert list(data)[:4] == ["query", "mode", "model", "answerable"]
    assert mcp_results(yes)["answerable"] is True
    assert mcp_results(no)["results"][0]["confidence"] == 0.1
    with scripted_llm() as llm:
        cfg = LLMConfig(llm.url, "valid")
        skipped = answer_from(no, cfg).to_json()
        assert llm.calls() == 0
        assert skipped["answerable"] is False and skipped["citations"] == []
        assert skipped["llm"] is None
        answered = answer_from(yes, cfg).to_json()
        assert llm.calls() == 1 and answered["answerable"] is True
        assert answered["citations"][0]["n"] == 1
