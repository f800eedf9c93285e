"""Shared fixtures: a real index of the seeds, built once per session in a temp dir.

Models come from the user cache (built from Python packages); the hub is off and every
non-loopback socket is blocked for the whole run (pytest-socket, see pyproject addopts).
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

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
    yield service_copy(seeded, tmp_path / "data")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Run ``app`` under a real uvicorn on a free loopback port; yields its base URL."""
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


def service_copy(seeded: RAGService, data_dir: Path, **overrides: object) -> RAGService:
    """A service on its own data dir, sharing the loaded embedder with ``seeded``."""
    settings = seeded.settings.model_copy(update={"data_dir": data_dir, **overrides})
    return RAGService(settings, embedder=seeded.embedder)


def wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path, deadline: float) -> None:
    """Until the API process at ``base`` answers /readyz (fails if it exits or ``deadline``, a
    ``time.monotonic()``, passes; its log's tail is shown)."""
    while True:
        assert proc.poll() is None, f"API exited:\n{log.read_text(errors='replace')[-3000:]}"
        assert time.monotonic() < deadline, f"API did not start:\n{log.read_text()[-3000:]}"
        try:
            if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)


def poll_job(
    base: str, headers: dict[str, str], job_id: str, timeout: float = 120.0, every: float = 0.1
) -> list[dict[str, Any]]:
    """Every state of an ingest job read from ``GET /v1/jobs/{id}`` until it ends."""
    states: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(f"{base}/v1/jobs/{job_id}", headers=headers, timeout=30)
        assert r.status_code == 200, r.text
        states.append(r.json())
        if states[-1]["status"] in ("done", "failed"):
            return states
        assert time.monotonic() < deadline, states[-1]
        time.sleep(every)


def blank_pdf(pages: int, password: str | None = None) -> bytes:
    """A real PDF of ``pages`` blank pages (encrypted with ``password``, if given)."""
    from pypdf import PdfWriter

    w = PdfWriter()
    for _ in range(pages):
        w.add_blank_page(612, 792)
    if password:
        w.encrypt(password)
    buf = io.BytesIO()
    w.write(buf)
    return buf.getvalue()
