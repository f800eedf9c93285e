"""Liveness and readiness (open without a key)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from api.deps import Service
from api.errors import APIError

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(service: Service) -> dict[str, object]:
    try:
        chunks = await run_in_threadpool(service.store.count_chunks)
        dim = service.embedder.dimension
    except Exception as exc:
        raise APIError(503, f"not ready: {exc}") from exc
    return {"status": "ready", "chunks": chunks, "embedding_dim": dim}
