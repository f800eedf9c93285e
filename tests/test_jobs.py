"""Ingest jobs on real components: a large upload answered at once with 202 and ingested in the
background (real uvicorn, real index), progress readable as it goes, through raw HTTP and the
client; and a job that survives `kill -9` of its API process (a real uvicorn subprocess), taken
up again at the next start and never half-committed."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from api.client import RAGClient
from rag.jobs import Job
from rag.service import RAGService

from .conftest import ROOT, free_port, poll_job, serve, service_copy, wait_ready

KEY = "jobs-key"
UVICORN = (sys.executable, "-m", "uvicorn", "--factory", "api.app:app_factory")
H = {"Authorization": f"Bearer {KEY}"}


def _town(i: int) -> tuple[str, bytes]:
    """A small document with a token of its own (tok007 is in town 7 only)."""
    body = (
        f"测试{i:03d}镇工作通报\n\ntok{i:03d}的测试{i:03d}镇本季度受理来信{100 + i}件，同比下降了"
        f"{i % 50 + 1}%。各部门落实责任，推进矛盾纠纷化解，完善工作机制，加强基层基础建设。" * 3
    )
    return f"town_{i:03d}.txt", body.encode()


@pytest.fixture(scope="module")
def live(seeded: RAGService, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An app where an upload past 2,000 bytes becomes a job."""
    service = service_copy(
        seeded, tmp_path_factory.mktemp("jobs") / "data", api_keys=KEY, ingest_async_bytes=2_000
    )
    with serve(create_app(service.settings, service)) as base:
        yield base


def _poll(base: str, job_id: str) -> list[Job]:
    return [Job.model_validate(state) for state in poll_job(base, H, job_id)]


def test_a_large_upload_is_a_job_with_progress_and_a_small_one_is_not(live: str) -> None:
    files = [_town(i) for i in range(12)] + [("noise.txt", bytes(range(256)) * 8)]
    r = httpx.post(
        f"{live}/v1/documents", headers=H, files=[("file", f) for f in files], timeout=30
    )
    assert r.status_code == 202, r.text
    job = Job.model_validate(r.json())
    assert r.headers["location"] == f"/v1/jobs/{job.job}"
    assert job.status == "queued" and len(job.files) == 13 and job.kb == "documents"
    states = _poll(live, job.job)
    done = states[-1]
    assert done.status == "done" and done.files_done == 13 and done.errors == 1, done
    assert {d.status for d in done.documents} == {"added", "failed"}
    assert done.chunks_done == done.chunks_total > 0
    for a, b in itertools.pairwise(states):  # progress only moves forward
        assert b.chunks_done >= a.chunks_done and b.files_done >= a.files_done
    hits = httpx.post(
        f"{live}/v1/search", headers=H, json={"query": "tok007", "mode": "bm25", "top_k": 1}
    ).json()["hits"]
    assert hits[0]["doc_id"] == "town_007"

    small = httpx.post(f"{live}/v1/documents", headers=H, files={"file": _town(50)})
    assert small.status_code == 200 and small.json()["documents"][0]["status"] == "added"
    listed = httpx.get(f"{live}/v1/jobs", headers=H).json()["jobs"]
    assert listed[0]["job"] == job.job
    for bad in ("nope", "../../etc", "0" * 32):
        r = httpx.get(f"{live}/v1/jobs/{bad}", headers=H)
        assert r.status_code == 404 and r.json()["error"]["type"] == "not_found", r.text


def test_the_client_waits_for_jobs(live: str, tmp_path: Path) -> None:
    paths = []
    for i in range(60, 66):
        name, data = _town(i)
        (tmp_path / name).write_bytes(data)
        paths.append(tmp_path / name)
    with RAGClient(live, api_key=KEY) as rag:
        results = rag.upload(*paths[:4])  # past 2,000 bytes: a job, waited for
        assert [r.status for r in results] == ["added"] * 4
        job = rag.start_upload(paths[4])  # small, but asked as a job
        seen: list[Job] = []
        done = rag.wait_job(job, timeout=120, poll_s=0.05, on_progress=seen.append)
        assert done.status == "done" and done.documents[0].doc_id == "town_064"
        assert seen[-1] == done
        with pytest.raises(TimeoutError):
            rag.wait_job(rag.start_upload(paths[5]), timeout=0, poll_s=0.01)
        assert any(j.job == done.job for j in rag.jobs())


def _start(data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(
        RAG_DATA_DIR=str(data_dir),
        RAG_LLM__BACKEND="extractive",
        RAG_API_KEYS=KEY,
        RAG_INGEST_GROUP_CHUNKS="4",  # commits every few documents
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=str(ROOT),
    )
    with log.open("ab") as out:
        return subprocess.Popen(
            [*UVICORN, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            cwd=data_dir.parent,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _ready(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    wait_ready(base, proc, log, time.monotonic() + 180)


@pytest.mark.slow
def test_a_job_survives_kill_9_and_is_never_half_committed(tmp_path: Path) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "api.log"
    data_dir.mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    files = [_town(i) for i in range(40)]
    proc = _start(data_dir, port, log)
    try:
        _ready(base, proc, log)
        r = httpx.post(
            f"{base}/v1/documents",
            headers=H,
            params={"job": "true"},
            files=[("file", f) for f in files],
            timeout=60,
        )
        assert r.status_code == 202, r.text
        job_id = r.json()["job"]
        deadline = time.monotonic() + 120
        while True:  # kill once some documents are committed and some are not
            state = httpx.get(f"{base}/v1/jobs/{job_id}", headers=H).json()
            if state["files_done"] >= 4:
                break
            assert state["status"] != "done" and time.monotonic() < deadline, state
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert state["status"] == "running" and state["files_done"] < 40, state

        proc = _start(data_dir, port, log)
        _ready(base, proc, log)
        state = poll_job(base, H, job_id, timeout=180, every=0.2)[-1]
        assert state["status"] == "done" and state["restarts"] == 1, state
        assert state["files_done"] == 40 and state["errors"] == 0
        statuses = {d["status"] for d in state["documents"]}
        assert statuses == {"added", "unchanged"}, statuses  # those committed before the kill
        docs = httpx.get(f"{base}/v1/documents", headers=H, params={"limit": 100}).json()
        assert docs["total"] == 40
        for d in docs["documents"]:  # every document whole: its token finds it first
            i = int(d["doc_id"].rsplit("_", 1)[1])
            hit = httpx.post(
                f"{base}/v1/search",
                headers=H,
                json={"query": f"tok{i:03d}", "mode": "bm25", "top_k": 1},
            ).json()["hits"]
            assert hit[0]["doc_id"] == d["doc_id"]
        assert not (data_dir / "jobs" / job_id / "files").exists()  # kept only until it ended
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def test_a_job_submitted_through_the_library_runs_once(seeded: RAGService, tmp_path: Path) -> None:
    """Without the API (no resume at start), the first job starts the worker and runs once."""
    service = service_copy(seeded, tmp_path / "data")
    job = service.submit_ingest([_town(i) for i in range(3)])
    deadline = time.monotonic() + 120
    while not (state := service.job(job.job)).ended:
        assert time.monotonic() < deadline, state
        time.sleep(0.05)
    assert state.status == "done" and state.restarts == 0 and state.files_done == 3
    assert [d.status for d in state.documents] == ["added"] * 3
    assert len(service.documents()) == 3
