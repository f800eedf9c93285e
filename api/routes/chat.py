"""POST /v1/chat: a cited answer, as JSON or as server-sent events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from api.deps import Service
from api.errors import APIError
from api.observability import AppMetrics
from rag.chain import collect
from rag.config import LLMBackend
from rag.llm import LLMError
from rag.schemas import Answer, ErrorEvent, Filters
from rag.service import RAGService

router = APIRouter(tags=["chat"])

T = TypeVar("T")


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


def check_question(question: str, request: Request, field: str = "question") -> None:
    """Blank or too long: a 422 (the same rule for /v1/chat and /v1/chat/completions)."""
    limit = request.app.state.settings.max_question_chars
    if not question.strip():
        raise APIError(422, f"{field}: must not be blank")
    if len(question) > limit:
        raise APIError(422, f"{field}: longer than {limit} characters")


def _pull(iterator: Iterator[T]) -> list[T]:
    for item in iterator:
        return [item]
    return []


async def iterate_closing(iterator: Iterator[T]) -> AsyncIterator[T]:
    """Pull a blocking iterator in the threadpool, one item at a time, and close it however the
    iteration ends — finished, failed, or cancelled because the client went away — so that the
    work behind it (retrieval, the LLM's generation) stops instead of running on unseen."""
    try:
        while got := await run_in_threadpool(_pull, iterator):
            yield got[0]
    finally:
        # Never mid-``next``: a cancelled threadpool call returns only once ``next`` has.
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


async def load_backend(service: RAGService, backend: LLMBackend) -> None:
    """Load the backend's model before answering: one this server cannot run is the client's
    422 when the request named another than the default, the server's 503 otherwise."""
    try:
        await run_in_threadpool(service.chat_model, backend)
    except LLMError as exc:
        if backend != service.settings.llm.backend:
            raise APIError(422, f"backend '{backend}' is not available here: {exc}") from exc
        raise APIError(503, f"the LLM backend '{backend}' is not available: {exc}") from exc


@router.post("/v1/chat", response_model=Answer)
async def chat(req: ChatRequest, request: Request, service: Service, metrics: AppMetrics) -> Any:
    check_question(req.question, request)
    backend = req.backend or service.settings.llm.backend
    await load_backend(service, backend)
    wants_sse = req.stream or "text/event-stream" in request.headers.get("accept", "")
    if not wants_sse:

        def answer() -> Answer:
            events = service.stream_answer(req.question, backend, req.top_k, req.filters)
            return collect(metrics.observe(events, backend), backend)

        return await run_in_threadpool(answer)

    async def events() -> AsyncIterator[dict[str, str]]:
        try:
            # Built in the threadpool: the first use of a backend loads its model.
            stream = await run_in_threadpool(
                service.stream_answer, req.question, backend, req.top_k, req.filters
            )
            async for e in iterate_closing(metrics.observe(stream, backend)):
                yield {"event": e.event, "data": e.model_dump_json(exclude={"event"})}
        except Exception as exc:
            err = ErrorEvent(type=type(exc).__name__, message=str(exc))
            yield {"event": "error", "data": json.dumps(err.model_dump(exclude={"event"}))}

    return EventSourceResponse(events())
