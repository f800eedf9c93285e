"""GET /metrics: the app's Prometheus metrics (behind the API key when keys are set)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from api.observability import AppMetrics

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response)
async def metrics(metrics: AppMetrics) -> Response:
    return Response(metrics.export(), media_type=CONTENT_TYPE_LATEST)
