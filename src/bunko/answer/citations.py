"""Check a generated answer's citations against the passages it was given.

Markers ``[n]``, ``【n】`` and ``［n］`` are all recognised and normalised to ``[n]``; a
marker that names no retrieved passage is removed and reported. Quotes (「…」, "…",
“…”) are checked against the passages their sentence cites, after NFKC.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Several numbers in one marker ([1, 2], 【1・3】) are split into one marker each.
MARKER = re.compile(r"[\[【［]\s*(\d{1,4}(?:\s*[,，、・]\s*\d{1,4})*)\s*[\]】］]")
_QUOTE = re.compile(r"「([^「」]{2,400})」|\"([^\"\n]{2,400})\"|“([^“”\n]{2,400})”")
_SENTENCE_END = re.compile(r"[。！？!?\n]|\.(?=\s)")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class QuoteCheck:
    """A quoted string of the answer and whether a cited passage contains it."""

    text: str
    cited: tuple[int, ...]  # the markers of the quote's sentence ([] = checked against all)
    verified: bool


@dataclass(frozen=True)
class CheckedAnswer:
    answer: str  # markers normalised to [n], unknown ones removed
    cited: tuple[int, ...]  # kept passage numbers, in order of first use
    dropped: tuple[str, ...]  # markers removed, as the model wrote them
    quotes: tuple[QuoteCheck, ...]


def _norm(text: str) -> str:
    return _SPACE.sub("", unicodedata.normalize("NFKC", text))


def normalise_markers(text: str, k: int) -> tuple[str, list[int], list[str]]:
    """Rewrite every marker as ``[n]``; drop those outside 1..k.

    Returns:
        The rewritten text, the kept numbers in order of first use, and the dropped markers.
    """
    cited: list[int] = []
    dropped: list[str] = []

    def repl(m: re.Match[str]) -> str:
        keep = []
        parts = re.split(r"[,，、・]", m.group(1))
        for part in parts:
            n = int(part.strip())
            if 1 <= n <= k:
                keep.append(f"[{n}]")
                if n not in cited:
                    cited.append(n)
            else:
                dropped.append(m.group(0) if len(parts) == 1 else f"[{n}]")
        return "".join(keep)

    out = MARKER.sub(repl, text)
    if dropped:
        out = re.sub(r"[ \t]+([。、.,!?！？])", r"\1", out)  # "text [99]." -> "text."
        out = re.sub(r"[ \t]{2,}", " ", out)
    return out, cited, dropped


def check_answer(answer: str, passages: list[str]) -> CheckedAnswer:
    """Normalise and resolve an answer's markers, and verify its quotes.

    Args:
        answer: the model's text.
        passages: the passage texts, passage ``n`` at index ``n - 1``.
    """
    text, cited, dropped = normalise_markers(answer, len(passages))
    quotes: list[QuoteCheck] = []
    for m in _QUOTE.finditer(text):
        quoted = next(g for g in m.groups() if g is not None)
        # The quote's sentence: from the previous sentence end to the next one, so a
        # marker just after the closing bracket (「…」[2]。) belongs to it.
        start = 0
        for end_m in _SENTENCE_END.finditer(text, 0, m.start()):
            start = end_m.end()
        nxt = _SENTENCE_END.search(text, m.end())
        stop = nxt.end() if nxt else len(text)
        nums = tuple(dict.fromkeys(int(n) for n in re.findall(r"\[(\d+)\]", text[start:stop])))
        pool = [passages[n - 1] for n in nums] if nums else passages
        needle = _norm(quoted)
        ok = bool(needle) and any(needle in _norm(p) for p in pool)
        quotes.append(QuoteCheck(text=quoted, cited=nums, verified=ok))
    return CheckedAnswer(text, tuple(cited), tuple(dropped), tuple(quotes))


class MarkerStream:
    """Normalise markers in a streamed answer as it arrives.

    Text is passed through at once except from an opening bracket until the marker
    closes (or clearly is not one), so what a terminal shows matches the final check.
    """

    _OPEN = "[【［"
    _MAX = 24  # a marker longer than this is not a marker

    def __init__(self, k: int) -> None:
        self.k = k
        self._held = ""

    def feed(self, delta: str) -> str:
        out: list[str] = []
        buf = self._held + delta
        self._held = ""
        i = 0
        while i < len(buf):
            ch = buf[i]
            if ch not in self._OPEN:
                j = i
                while j < len(buf) and buf[j] not in self._OPEN:
                    j += 1
                out.append(buf[i:j])
                i = j
                continue
            m = MARKER.match(buf, i)
            if m:
                out.append(normalise_markers(m.group(0), self.k)[0])
                i = m.end()
                continue
            rest = buf[i:]
            if len(rest) < self._MAX and re.fullmatch(r".[\s\d,，、・]*", rest, re.S):
                self._held = rest  # may still become a marker
                break
            out.append(ch)
            i += 1
        return "".join(out)

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held
