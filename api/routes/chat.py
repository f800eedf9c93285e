"""POST /v1/chat: a cited answer, as JSON or as server-sent events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from api.deps import Service
from api.errors import APIError
from rag.config import LLMBackend
from rag.schemas import Answer, ErrorEvent, Filters

router = APIRouter(tags=["chat"])


class HistoryTurn(BaseModel):
    role: str
    content: str


class ChatRequest(BaseModel):
    question: str = Field(min_length=1)
    history: list[HistoryTurn] | None = None
    top_k: int | None = Field(None, ge=1, le=50)
    filters: Filters | None = None
    backend: LLMBackend | None = None
    stream: bool = False


def _check(req: ChatRequest, request: Request) -> None:
    limit = request.app.state.settings.max_question_chars
    if not req.question.strip():
        raise APIError(422, "question: must not be blank")
    if len(req.question) > limit:
        raise APIError(422, f"question: longer than {limit} characters")


@router.post("/v1/chat", response_model=Answer)
async def chat(req: ChatRequest, request: Request, service: Service) -> Any:
    _check(req, request)
    wants_sse = req.stream or "text/event-stream" in request.headers.get("accept", "")
    if not wants_sse:
        return await run_in_threadpool(
            service.answer, req.question, req.backend, req.top_k, req.filters
        )

    async def events() -> AsyncIterator[dict[str, str]]:
        try:
            stream = service.stream_answer(req.question, req.backend, req.top_k, req.filters)
            async for e in iterate_in_threadpool(stream):
                yield {"event": e.event, "data": e.model_dump_json(exclude={"event"})}
        except Exception as exc:
            err = ErrorEvent(type=type(exc).__name__, message=str(exc))
            yield {"event": "error", "data": json.dumps(err.model_dump(exclude={"event"}))}

    return EventSourceResponse(events())
