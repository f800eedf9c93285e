"""Liveness and readiness (open without a key)."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from api.deps import Service
from api.errors import APIError
from rag.errors import Unavailable
from rag.schemas import Readiness

router = APIRouter(tags=["health"])

log = logging.getLogger("rag.api")


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness)
async def readyz(service: Service) -> Readiness:
    """200 when the index and the embedder answer; any failure is a 503 (not ready), with what
    is down when a part is unavailable and no more than "not ready" otherwise."""
    try:
        return await run_in_threadpool(service.readiness)
    except Unavailable as exc:
        raise APIError(503, f"not ready: {exc}") from exc
    except Exception as exc:
        log.error("readiness check failed", exc_info=exc)
        raise APIError(503, "not ready") from exc
