"""POST /v1/chat: a cited answer, as JSON or as server-sent events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from api.auth import Caller
from api.deps import (
    AppSettings,
    KBsField,
    Service,
    asked_kbs,
    check_history,
    check_question,
    load_backend,
)
from api.observability import AppMetrics
from api.streaming import SSE, iterate_closing, sse_error, sse_event
from rag.config import LLMBackend
from rag.schemas import Answer, Filters, Turn

router = APIRouter(tags=["chat"])


class ChatRequest(BaseModel):
    """Unknown fields are a 422 (a misspelt option is not silently ignored)."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1)
    top_k: int | None = Field(None, ge=1, le=50, description="default: the server's answer.top_k")
    filters: Filters | None = None
    backend: LLMBackend | None = Field(None, description="default: the server's llm.backend")
    stream: bool = False
    history: list[Turn] = Field(
        default_factory=list,
        description="earlier turns, oldest first: a follow-up ('农村呢?') is answered as the "
        "standalone question they make of it (returned as standalone_question)",
    )
    kbs: KBsField = None


@router.post("/v1/chat", response_model=Answer)
async def chat(
    req: ChatRequest,
    request: Request,
    caller: Caller,
    service: Service,
    settings: AppSettings,
    metrics: AppMetrics,
) -> Any:
    check_question(req.question, settings)
    check_history(req.history, settings)
    kbs = await asked_kbs(req.kbs, service, caller)
    backend = req.backend or service.default_backend
    await load_backend(service, backend)
    wants_sse = req.stream or "text/event-stream" in request.headers.get("accept", "")
    if not wants_sse:

        def answer() -> Answer:
            events = service.stream_answer(
                req.question, backend, req.top_k, req.filters, req.history, kbs
            )
            return Answer.from_events(metrics.observe(events, backend), backend)

        return await run_in_threadpool(answer)

    async def events() -> AsyncIterator[SSE]:
        try:
            # Built in the threadpool: the first use of a backend loads its model.
            stream = await run_in_threadpool(
                service.stream_answer,
                req.question,
                backend,
                req.top_k,
                req.filters,
                req.history,
                kbs,
            )
            async for e in iterate_closing(metrics.observe(stream, backend)):
                yield sse_event(e)
        except Exception as exc:
            yield sse_error(request, exc)

    return EventSourceResponse(events())
