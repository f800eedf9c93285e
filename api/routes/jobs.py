"""Ingest jobs: how far a large upload got (``rag.jobs``). A key sees the jobs of the knowledge
bases it may read; any other job is the 404 of one that does not exist."""

from __future__ import annotations

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from api.auth import Caller
from api.deps import Service
from api.schemas import JobList
from rag.errors import NotFound
from rag.jobs import Job

router = APIRouter(tags=["documents"])


@router.get("/v1/jobs/{job_id}", response_model=Job)
async def get_job(job_id: str, caller: Caller, service: Service) -> Job:
    job = await run_in_threadpool(service.job, job_id)  # none: 404
    if not caller.may_read(job.kb):
        raise NotFound(f"no job '{job_id}'")
    return job


@router.get("/v1/jobs", response_model=JobList)
async def list_jobs(
    caller: Caller, service: Service, limit: int = Query(50, ge=1, le=1000)
) -> JobList:
    """The jobs of this process's data dir the key may see, newest first."""
    jobs = await run_in_threadpool(service.jobs.list)
    return JobList(jobs=[j for j in jobs if caller.may_read(j.kb)][:limit])
