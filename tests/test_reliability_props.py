"""Property tests from the file on disk to the chunks: for any text, in any supported
encoding and with any mix of line endings, read_document + chunk_document give
spans that map back exactly to the text, cover every non-empty sentence, and line
ranges that agree with the spans. (test_chunking.py checks the chunker alone.)"""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bunko.chunking import chunk_document
from bunko.errors import SkipFile
from bunko.ingest import read_document
from bunko.text import split_sentences

_BREAK = re.compile(r"\r\n|\r|\n")
_PIECES = st.sampled_from(
    [*"あ漢カaZ1 .,、。！？!「」#\t\u3000", "\n", "\r", "\r\n", "# 見出し\n", "---\n", "title: x\n"]
)
_ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp932", "euc_jp"])


def cheap_count(text: str) -> int:
    return len(text) // 2 + 3


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_PIECES, max_size=200).map("".join), _ENCODINGS, st.integers(6, 40))
def test_file_to_chunks(tmp_path: Path, text: str, encoding: str, max_tokens: int) -> None:
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        assume(False)
    path = tmp_path / "doc.md"
    path.write_bytes(data)
    try:
        doc = read_document(path, tmp_path)
    except SkipFile as skip:  # only blank files and front matter alone are skipped
        assert skip.reason in ("empty file", "front matter only, no body"), skip.reason
        assert skip.reason != "empty file" or not text.strip()
        return
    assert doc.text == text  # decoded exactly, BOM dropped, line endings kept
    chunks = chunk_document(doc, cheap_count, max_tokens, overlap=1)
    covered = bytearray(len(text) + 1)
    for c in chunks:
        assert c.text == text[c.char_start : c.char_end]
        assert c.line_start == 1 + len(_BREAK.findall(text, 0, c.char_start))
        assert c.line_end == 1 + len(_BREAK.findall(text, 0, c.char_end - 1))
        for s in c.sentences:
            assert c.char_start <= s.start < s.end <= c.char_end
        covered[c.char_start : c.char_end] = b"\x01" * (c.char_end - c.char_start)
    for s in split_sentences(text, doc.body_start):
        assert all(covered[i] or text[i].isspace() for i in range(s.start, s.end))
