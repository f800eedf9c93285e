"""Ingest jobs: a large upload is ingested in the background, its progress readable meanwhile.

A job is a folder under ``<data dir>/jobs/<id>/``: ``job.json`` (its state, rewritten atomically
as it advances) and ``files/`` (the uploaded bytes, kept until the job ends). One worker thread
runs the jobs of a process one at a time, in the order they came (ingest is CPU-bound: two at
once would only share the cores).

A job survives the process: at start, a job left ``queued`` or ``running`` is queued again and
runs from the start. That is safe because ingest is idempotent and commits document by
document (``rag.store``): the documents committed before the restart come out ``unchanged``, a
document cut halfway left nothing committed (its chunks are collected as garbage), so a job is
never half-committed. Jobs are local to the process's data dir: with several replicas, a job is
read from the replica that took it.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from rag.errors import NotFound
from rag.schemas import IngestResult, IngestSummary

log = logging.getLogger("rag.jobs")

JobStatus = Literal["queued", "running", "done", "failed"]
# Finished jobs kept (their records: the files are gone once a job ends); older ones are pruned.
KEEP_FINISHED = 1000
_SAVE_EVERY_S = 0.5  # progress is written at most this often while a job runs


class Job(BaseModel):
    """An ingest job and how far it got."""

    job: str = Field(description="the job's id")
    kb: str
    status: JobStatus = "queued"
    files: list[str] = Field(description="the files' names, in the order they were sent")
    files_done: int = 0
    chunks_done: int = 0
    chunks_total: int = Field(0, description="grows as files are read, a group at a time")
    documents: list[IngestResult] = Field(
        default_factory=list, description="a result per file, as files are committed"
    )
    errors: int = Field(0, description="files that failed")
    error: str | None = Field(None, description="why the job failed as a whole, if it did")
    restarts: int = Field(0, description="times the job was taken up again after a restart")
    created: float
    started: float | None = None
    finished: float | None = None

    @property
    def ended(self) -> bool:
        return self.status in ("done", "failed")


Ingest = Callable[[str, list[tuple[str, bytes]], "JobProgress"], IngestSummary]


class JobProgress:
    """The ingest's progress (``rag.ingest.Progress``), saved to the job as it comes."""

    def __init__(self, jobs: JobQueue, job: Job) -> None:
        self.jobs, self.job = jobs, job
        self._saved = 0.0

    def add_total(self, chunks: int) -> None:
        self.job.chunks_total += chunks
        self._save()

    def advance(self, chunks: int) -> None:
        self.job.chunks_done += chunks
        self._save()

    def finished(self, results: Sequence[IngestResult]) -> None:
        self.job.documents += results
        self.job.files_done += len(results)
        self.job.errors += sum(r.status == "failed" for r in results)
        self._save(force=True)

    def _save(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._saved >= _SAVE_EVERY_S:
            self._saved = now
            self.jobs.save(self.job)


class JobQueue:
    """The jobs of one data dir, and the worker thread that runs them."""

    def __init__(self, folder: Path, ingest: Ingest) -> None:
        self.folder = folder
        self._ingest = ingest
        self._queue: queue.Queue[str] = queue.Queue()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None

    def submit(self, kb: str, files: Sequence[tuple[str, bytes]]) -> Job:
        """Keep the files and queue a job to ingest them into ``kb``."""
        self.start()  # first: taking up unfinished jobs must not take this one too
        job = Job(
            job=uuid.uuid4().hex, kb=kb, files=[name for name, _ in files], created=time.time()
        )
        folder = self._files(job.job)
        folder.mkdir(parents=True)
        for i, (_, data) in enumerate(files):
            (folder / f"{i:05d}").write_bytes(data)
        self.save(job)
        self._prune()
        self._queue.put(job.job)
        return job

    def get(self, job_id: str) -> Job:
        try:
            return Job.model_validate_json((self._dir(job_id) / "job.json").read_text())
        except (OSError, ValueError):
            raise NotFound(f"no job '{job_id}'") from None

    def list(self) -> list[Job]:
        """The jobs on record, newest first."""
        jobs = []
        for d in self.folder.glob("*/job.json") if self.folder.exists() else []:
            try:
                jobs.append(Job.model_validate_json(d.read_text()))
            except (OSError, ValueError):
                continue
        return sorted(jobs, key=lambda j: -j.created)

    def save(self, job: Job) -> None:
        path = self._dir(job.job) / "job.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(job.model_dump_json())
        os.replace(tmp, path)  # readers see the old state or the new one, never half of one

    def start(self) -> None:
        """Start the worker (once), queueing again the jobs a stopped process left unfinished."""
        with self._lock:
            if self._worker is not None:
                return
            for job in reversed(self.list()):  # oldest first
                if not job.ended:
                    job.status, job.restarts = "queued", job.restarts + 1
                    job.files_done = job.chunks_done = job.chunks_total = job.errors = 0
                    job.documents = []
                    self.save(job)
                    self._queue.put(job.job)
            self._worker = threading.Thread(target=self._work, name="rag-jobs", daemon=True)
            self._worker.start()

    # ---------------------------------------------------------------------------------------------

    def _dir(self, job_id: str) -> Path:
        if not job_id.isalnum():  # a job id is hex; anything else names no job (nor a path)
            raise NotFound(f"no job '{job_id}'")
        return self.folder / job_id

    def _files(self, job_id: str) -> Path:
        return self._dir(job_id) / "files"

    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            try:
                self._run(self.get(job_id))
            except Exception:  # a bug in the runner must not stop the worker
                log.exception("ingest job %s failed", job_id)

    def _run(self, job: Job) -> None:
        job.status, job.started = "running", time.time()
        self.save(job)
        folder = self._files(job.job)
        try:
            files = [(name, (folder / f"{i:05d}").read_bytes()) for i, name in enumerate(job.files)]
            summary = self._ingest(job.kb, files, JobProgress(self, job))
            job.documents = summary.documents  # the whole result, in order
            job.files_done = len(summary.documents)
            job.errors = summary.count("failed")
            job.status = "done"
        except Exception as exc:  # the KB was deleted, the store is down …
            log.warning("ingest job %s failed: %s", job.job, exc)
            job.status, job.error = "failed", str(exc) or type(exc).__name__
        job.finished = time.time()
        self.save(job)
        shutil.rmtree(folder, ignore_errors=True)

    def _prune(self) -> None:
        finished = [j for j in self.list() if j.ended]
        for job in finished[KEEP_FINISHED:]:
            shutil.rmtree(self._dir(job.job), ignore_errors=True)
