"""POST /v1/search: the best passages, as `rag search --json` prints them."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.auth import Caller
from api.deps import AppSettings, KBsField, Service, asked_kbs, check_question
from rag.retrieval import SearchMode
from rag.schemas import Filters, SearchResponse

router = APIRouter(tags=["search"])


class SearchRequest(BaseModel):
    """Unknown fields are a 422 (a misspelt option is not silently ignored)."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(
        min_length=1, description="at most the server's max_question_chars (RAG_MAX_QUESTION_CHARS)"
    )
    top_k: int | None = Field(None, ge=1, le=100, description="default: the server's answer.top_k")
    mode: SearchMode = "hybrid"
    filters: Filters | None = None
    kbs: KBsField = None


@router.post("/v1/search", response_model=SearchResponse)
async def search(
    req: SearchRequest, caller: Caller, service: Service, settings: AppSettings
) -> SearchResponse:
    check_question(req.query, settings, "query")
    kbs = await asked_kbs(req.kbs, service, caller)
    hits = await run_in_threadpool(service.search, req.query, req.top_k, req.mode, req.filters, kbs)
    return SearchResponse(hits=hits)
