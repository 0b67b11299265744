"""Text primitives shared by chunking and lexical search.

Everything here works on the original document text and returns absolute char
offsets into it, so that chunks and citations can point back at the file exactly
as a user sees it. Normalization (NFKC) is applied only to token strings, never to
the text that offsets refer to.
"""

from __future__ import annotations

import os
import re
import threading
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable
from typing import Any, Literal

from bunko.types import Span

__all__ = [
    "JAPANESE", "LOOKALIKE_DIGIT", "STOP_POS", "Tokenizer", "digits_for_lookalikes",
    "line_of", "line_starts", "nfkc", "split_sentences",
]  # fmt: skip

# Japanese script: kana and the CJK ideographs (extension A and the main block). The
# one definition behind "is this question/passage Japanese?" everywhere.
JAPANESE = re.compile("[\u3040-\u30ff\u3400-\u9fff]")
# A letter written where a digit belongs ("o1" for a model the text spells "01",
# "l2" for "12"): a look-alike letter right before a digit.
LOOKALIKE_DIGIT = re.compile(r"[oOlI](?=[0-9])")
_DIGIT_FOR = {"o": "0", "O": "0", "l": "1", "I": "1"}


def digits_for_lookalikes(word: str) -> str:
    """``word`` with each look-alike letter before a digit spelt as that digit ("o1" -> "01")."""
    return LOOKALIKE_DIGIT.sub(lambda m: _DIGIT_FOR[m.group()], word)


_LINE_BREAK = re.compile(r"\r\n|\r|\n")

# One regex pass finds every character that can matter for sentence boundaries, so
# the Python loop runs once per event rather than once per char (50 MB must be fast).
_EVENTS = re.compile(r"\r\n|\r|\n|[「『]|[」』]|[。！？．!?.]+")
# Closing brackets that belong to the sentence they follow (「…です。」, "(see below.)").
_CLOSERS_JA = re.compile(r"[」』）)\]］】〉》”’]*")
_CLOSERS_EN = re.compile(r"[」』）)\]］】〉》”’\"']*")
_ABBREV = frozenset({"mr", "mrs", "ms", "dr", "prof", "st", "vs", "cf", "fig", "no", "approx"})
_DOTTED = re.compile(r"(?:[a-z]\.)+[a-z]")  # e.g, i.e, u.s (the final period is the event)


def nfkc(s: str) -> str:
    """NFKC-normalize ``s``: full-width ASCII becomes ASCII, half-width kana full-width."""
    return unicodedata.normalize("NFKC", s)


def line_starts(text: str) -> list[int]:
    """Char offsets where each line of ``text`` starts.

    Only ``\\r\\n``, ``\\r`` and ``\\n`` end a line (each counts once), as in an
    editor; ``str.splitlines`` would also break at form feeds and U+2028.
    """
    return [0, *(m.end() for m in _LINE_BREAK.finditer(text))]


def line_of(starts: list[int], offset: int) -> int:
    """1-based number of the line holding char ``offset``, given ``line_starts(text)``."""
    return bisect_right(starts, offset)


def _is_abbreviation(text: str, lo: int, dot: int) -> bool:
    """Whether the word ending at the period ``text[dot]`` is an abbreviation (e.g., U.S.)."""
    window = text[max(lo, dot - 12) : dot].rsplit(None, 1)
    word = window[-1].lstrip("([{\"'“‘").lower() if window else ""
    return word in _ABBREV or _DOTTED.fullmatch(word) is not None


def _boundary_end(text: str, run_start: int, run_end: int, lo: int, end: int) -> int | None:
    """Where a sentence ends after the terminator run ``text[run_start:run_end]``, or None.

    Full-width 。！？ always end a sentence. ASCII ``!``/``?`` end one when followed by
    whitespace or a non-ASCII char (Japanese often uses them half-width), so URLs with
    ``?q=`` survive. ``.`` needs whitespace after it and no abbreviation before it, so
    ``4.5`` and ``e.g.`` survive. ``．`` is a full-width period unless a digit follows
    (``４．５``).
    """
    run = text[run_start:run_end]
    strong = any(c in "。！？" for c in run)
    closers = (_CLOSERS_JA if strong else _CLOSERS_EN).match(text, run_end, end)
    stop = closers.end() if closers else run_end
    nxt = text[stop] if stop < end else ""
    if strong:
        return stop
    if "．" in run and not any(c in ".!?" for c in run):
        return None if nxt.isdigit() else stop
    if nxt and not nxt.isspace():
        return stop if ("!" in run or "?" in run) and not nxt.isascii() else None
    if run == "." and _is_abbreviation(text, lo, run_start):
        return None
    return stop


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[Span]:
    """Sentence spans within ``text[start:end]``, as absolute offsets into ``text``.

    Boundaries fall after 。！？ (and runs such as ！？ plus closing brackets, 。」),
    after English ``.``/``?``/``!`` followed by whitespace, and at every line break.
    Terminators inside 「」/『』 do not split: Japanese prose quotes whole sentences
    (「そうか。わかった。」と彼は言った。 is one sentence). Quote depth resets at each
    line break, so one unbalanced 「 cannot swallow the rest of a document.
    Spans are trimmed of whitespace (including U+3000); empty ones are dropped.
    Runs in linear time.

    Args:
        text: the whole document text.
        start: where to begin, e.g. ``Document.body_start``.
        end: where to stop (default: end of text).

    Returns:
        Non-empty, non-overlapping spans in text order.
    """
    end = len(text) if end is None else end
    cuts: list[int] = []  # sentence ends; the next sentence starts right there
    depth = 0
    line_lo = pos = start
    while (m := _EVENTS.search(text, pos, end)) is not None:
        ch = m.group()
        pos = m.end()
        if ch in ("\r\n", "\r", "\n"):
            cuts.append(m.start())
            depth, line_lo = 0, pos
        elif ch in "「『":
            depth += 1
        elif ch in "」』":
            depth = max(0, depth - 1)
        elif depth == 0:
            stop = _boundary_end(text, m.start(), pos, line_lo, end)
            if stop is not None:
                cuts.append(stop)
                pos = stop
    cuts.append(end)

    spans: list[Span] = []
    lo = start
    for hi in cuts:
        seg = text[lo:hi]
        body = seg.strip()
        if body:
            s = lo + len(seg) - len(seg.lstrip())
            spans.append(Span(s, s + len(body)))
        lo = hi
    return spans


# UniDic POS (品詞大分類) of function words: particles and auxiliary verbs. Kept by
# default because they barely cost BM25 anything (low IDF) and ～ない/～た carry meaning.
STOP_POS: frozenset[str] = frozenset({"助詞", "助動詞"})
_DROP_POS = frozenset({"補助記号", "空白"})  # punctuation, symbols, whitespace


def _has_word_char(s: str) -> bool:
    return any(c.isalnum() for c in s)


_TAGGERS = threading.local()


def _thread_tagger() -> Any:
    """This thread's fugashi tagger, made once per thread and shared by every Tokenizer.

    A MeCab tagger is not safe to share between threads, and one that has parsed text
    keeps tens of MB that are not given back when it is dropped (measured: about 35 MB
    per Shelf that answered a query), so a long-lived process or a test session must
    not make one per Tokenizer.
    """
    tagger = getattr(_TAGGERS, "tagger", None)
    if tagger is None:
        import fugashi
        import unidic_lite

        # Pin unidic-lite explicitly: fugashi would prefer the full `unidic` package
        # when installed, and an index and its queries must be tokenized alike.
        dicdir = unidic_lite.DICDIR
        mecabrc = os.path.join(dicdir, "mecabrc")
        tagger = fugashi.Tagger(f'-d "{dicdir}" -r "{mecabrc}"')
        _TAGGERS.tagger = tagger
    return tagger


class Tokenizer:
    """Lexical tokens for a Japanese-aware BM25, from fugashi with UniDic-lite.

    Japanese has no spaces, so words come from morphological analysis; English words
    pass through it whole. Text is NFKC-normalized and lowercased first so that ＧＰＴ
    and GPT, or ４．５ and 4.5, give the same tokens. The tagger is built lazily, once
    per instance, because loading the dictionary takes a moment.

    Args:
        mode: ``"surface"`` keeps word forms as written; ``"lemma"`` maps inflected
            forms to their dictionary form (走った -> 走る), which helps recall.
        drop_function_words: also drop particles and auxiliary verbs (see STOP_POS).
    """

    def __init__(
        self, mode: Literal["surface", "lemma"] = "surface", drop_function_words: bool = False
    ) -> None:
        if mode not in ("surface", "lemma"):
            raise ValueError(f"unknown tokenizer mode {mode!r}; use 'surface' or 'lemma'")
        self.mode = mode
        self.drop_function_words = drop_function_words

    def _get_tagger(self) -> Any:
        return _thread_tagger()  # per thread, shared by every Tokenizer

    def tokens(self, text: str) -> list[str]:
        """Tokens of ``text``: normalized, lowercased, punctuation and symbols dropped."""
        tagger = self._get_tagger()
        out: list[str] = []
        # MeCab splits "4.5" into 4 / . / 5, and dropping the "." would leave "4" and
        # "5". Digits joined by "." with no space between are glued back into one
        # token so that GPT-4.5 gives ["gpt", "4.5"] and does not match "GPT-4" + "5".
        glue = False  # the previous node was a "." right after a number token
        prev_num = False  # the last token emitted was a number (possibly dotted)
        for node in tagger(nfkc(text).lower()):
            surface: str = node.surface
            # feature_raw, not node.pos/feature: those build a namedtuple per node (4x slower).
            pos1, _, rest = node.feature_raw.partition(",")
            if surface == "." and prev_num and not node.white_space:
                glue = True
                continue
            if surface.isdecimal() and glue and not node.white_space:
                out[-1] += "." + surface
                glue = False
                continue
            glue = prev_num = False
            if pos1 in _DROP_POS or not _has_word_char(surface):
                continue
            if self.drop_function_words and pos1 in STOP_POS:
                continue
            token = surface
            # UniDic-lite gives proper nouns a katakana lemma (東京 -> トウキョウ), which
            # would merge homophones; their surface is already the base form.
            if self.mode == "lemma" and not rest.startswith("固有名詞"):
                lemma = getattr(node.feature, "lemma", None)
                if lemma and lemma != "*":
                    # UniDic writes loanword lemmas as "スペース-space": keep the word.
                    token = nfkc(lemma.split("-", 1)[0] or lemma).lower()
            out.append(token)
            prev_num = surface.isdecimal()
        return out

    def proper_nouns(self, text: str) -> list[tuple[str, str]]:
        """UniDic's proper nouns in ``text`` as (surface, kind), kind e.g. 人名 or 地名.

        The highlight uses them for 誰/who and どこ/where questions.
        """
        out = []
        for node in self._get_tagger()(nfkc(text).lower()):
            parts = node.feature_raw.split(",", 3)
            if len(parts) > 2 and parts[1] == "固有名詞":
                out.append((node.surface, parts[2]))
        return out

    def tokens_many(self, texts: Iterable[str]) -> list[list[str]]:
        """``tokens`` for each text, sharing one tagger."""
        return [self.tokens(t) for t in texts]
