"""How serve/MCP/ask read the trust contract (answerable, min_confidence, confidence).

Until the trust branch lands, QueryResult has no such fields: the outputs must leave
them out. With them (here a subclass carries them, standing in for the merged types),
they must pass through, and `ask` must not call the model when answerable is False.
The end-to-end versions of these checks are in test_mcp/test_ask/test_browser, skipped
until the contract is merged.
"""

from __future__ import annotations

import dataclasses

from bunko.answer.ask import answer_from
from bunko.answer.llm import LLMConfig
from bunko.api import Shelf
from bunko.config import Settings
from bunko.jsonout import query_json
from bunko.serve.results import mcp_results
from bunko.types import Passage, QueryResult
from llm_server import scripted_llm


@dataclasses.dataclass(frozen=True)
class _TrustedPassage(Passage):
    confidence: float = 0.0


@dataclasses.dataclass(frozen=True)
class _TrustedResult(QueryResult):
    answerable: bool = True
    min_confidence: float = 0.5


def _fields(obj: object, skip: tuple[str, ...]) -> dict[str, object]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.name not in skip}  # type: ignore[arg-type]


def _trusted(result: QueryResult, answerable: bool) -> QueryResult:
    conf = 0.9 if answerable else 0.1
    passages = tuple(
        _TrustedPassage(**_fields(p, ("confidence",)), confidence=conf)  # type: ignore[arg-type]
        for p in result.passages
    )
    rest = _fields(result, ("passages", "answerable", "min_confidence"))
    return _TrustedResult(  # type: ignore[arg-type]
        **rest, passages=passages, answerable=answerable, min_confidence=0.5
    )


def test_outputs_leave_out_what_the_index_cannot_tell(mini: Settings) -> None:
    result = Shelf(mini).query("富士山の標高は？", k=2)
    if hasattr(result, "answerable"):  # the contract has landed: nothing to check here
        return
    data = query_json(result)
    assert "answerable" not in data and "min_confidence" not in data
    assert all("confidence" not in r for r in data["results"])
    assert "answerable" not in mcp_results(result)
    assert "answerable" not in answer_from(result, None).to_json()


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
