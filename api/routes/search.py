"""POST /v1/search: the best passages, as `rag search --json` prints them."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.deps import Service
from rag.retrieval import SearchMode
from rag.schemas import Filters, SearchResponse

router = APIRouter(tags=["search"])


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=2000)
    top_k: int = Field(5, ge=1, le=100)
    mode: SearchMode = "hybrid"
    filters: Filters | None = None


@router.post("/v1/search", response_model=SearchResponse)
async def search(req: SearchRequest, service: Service) -> SearchResponse:
    hits = await run_in_threadpool(service.search, req.query, req.top_k, req.mode, req.filters)
    return SearchResponse(hits=hits)
