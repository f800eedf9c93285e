"""Shared fixtures: a real index of the seeds, built once per session in a temp dir.

Models come from the user cache (built from Python packages); the hub is off and every
non-loopback socket is blocked for the whole run (pytest-socket, see pyproject addopts).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from rag.config import Settings
from rag.service import RAGService

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip when a component is missing locally; under CI=true a missing component fails."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required component missing under CI: {reason}")
    pytest.skip(reason)


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    return Settings(data_dir=data_dir, **overrides)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def seeds_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the seeds (tests may not touch the repo's folder)."""
    dst = tmp_path_factory.mktemp("seeds")
    for p in SEEDS.iterdir():
        shutil.copy(p, dst / p.name)
    return dst


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory, seeds_dir: Path) -> RAGService:
    """One real index (Chroma + e5 + BM25) of the five seeds, shared read-only by tests."""
    service = RAGService(make_settings(tmp_path_factory.mktemp("seeded")))
    summary = service.ingest([seeds_dir])
    assert summary.count("added") == 5, summary
    return service


@pytest.fixture
def fresh(tmp_path: Path, seeded: RAGService) -> Iterator[RAGService]:
    """An empty index of its own, sharing the (expensive) loaded embedder with ``seeded``."""
    service = RAGService(make_settings(tmp_path / "data"))
    service.__dict__["embedder"] = seeded.embedder
    yield service
