"""What the models folder holds: built folders, GGUF files, and builds left incomplete."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rag.bundled.e5_onnx import ONNX_INT8
from rag.bundled.files import MANIFEST


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
