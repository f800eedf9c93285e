"""POST /v1/chat/completions: the OpenAI wire format, so OpenAI clients work unmodified.

The last user message is the question; the user and assistant messages before it are the
conversation, so a follow-up ("农村呢?") is answered as the standalone question they make of it
(system and tool messages are ignored: answers come from the documents). ``kbs``, an extra body
field (the OpenAI client's ``extra_body``), names the knowledge bases asked, as on ``/v1/chat``. ``model`` picks the backend when it names one (local, openai,
extractive); any other name gets the default backend. Sampling options (``temperature``,
``max_tokens`` …) are accepted and ignored: decoding is greedy and capped by the settings. Unlike
``/v1/chat``, which refuses unknown fields, this route accepts and ignores fields it does not
know (``user``, ``tools``, ``response_format`` …): OpenAI's clients send them as a matter of course.
The response's extra top-level fields carry what OpenAI's format has no place for:
``citations``, ``passages`` and ``standalone_question`` (and, on the last chunk of a stream, ``answer``, the final text
that the citation markers refer to, which can differ from the streamed tokens when the answer
was corrected).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal, get_args

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
from api.errors import APIError
from api.observability import AppMetrics
from api.streaming import SSE, iterate_closing, openai_error
from rag.config import LLMBackend, Settings
from rag.schemas import (
    Answer,
    Citation,
    CitationsEvent,
    DoneEvent,
    Passage,
    PassagesEvent,
    TokenEvent,
    Turn,
)

router = APIRouter(tags=["openai"])

_BACKENDS: dict[str, LLMBackend] = {b: b for b in get_args(LLMBackend)}


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """OpenAI's request; unknown fields are accepted and ignored, as are sampling options."""

    model_config = ConfigDict(extra="allow")
    model: str = "default"
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1, le=1)
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    # Ours, not OpenAI's (the OpenAI client's ``extra_body``):
    kbs: KBsField = None


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"
    logprobs: None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    citations: list[Citation]
    passages: list[Passage]
    standalone_question: str | None = None
    refused: bool = False
    fallback: bool = False


def _conversation(req: ChatCompletionRequest, settings: Settings) -> tuple[str, list[Turn]]:
    """The last user message, and the user/assistant messages before it as history."""
    last = max((i for i, m in enumerate(req.messages) if m.role == "user"), default=None)
    if last is None:
        raise APIError(422, "messages: no message with role 'user'")
    question = req.messages[last].text()
    check_question(question, settings, "messages")
    history = [
        Turn(role=m.role, content=m.text())
        for m in req.messages[:last]
        if m.role in ("user", "assistant")
    ]
    check_history(history, settings, "messages")
    return question, history


def _usage(prompt: float | None, completion: int) -> Usage:
    p = int(prompt or 0)
    return Usage(prompt_tokens=p, completion_tokens=completion, total_tokens=p + completion)


@router.post("/v1/chat/completions", response_model=ChatCompletion)
async def chat_completions(
    req: ChatCompletionRequest,
    request: Request,
    caller: Caller,
    service: Service,
    settings: AppSettings,
    metrics: AppMetrics,
) -> Any:
    question, history = _conversation(req, settings)
    kbs = await asked_kbs(req.kbs, service, caller)
    backend = _BACKENDS.get(req.model, service.default_backend)
    await load_backend(service, backend)
    cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    if not req.stream:

        def answer() -> tuple[Answer, int]:
            events = list(
                metrics.observe(
                    service.stream_answer(question, backend, history=history, kbs=kbs), backend
                )
            )
            tokens = sum(isinstance(e, TokenEvent) for e in events)
            return Answer.from_events(events, backend), tokens

        a, tokens = await run_in_threadpool(answer)
        return ChatCompletion(
            id=cid,
            created=created,
            model=backend,
            choices=[Choice(message=AssistantMessage(content=a.answer))],
            usage=_usage(a.timings.get("prompt_tokens"), tokens),
            citations=a.citations,
            passages=a.passages,
            standalone_question=a.standalone_question,
            refused=a.refused,
            fallback=a.fallback,
        )

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> SSE:
        body = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": backend,
            "choices": choices,
            **extra,
        }
        return {"data": json.dumps(body, ensure_ascii=False)}

    def delta(content: dict[str, str], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": content, "finish_reason": finish, "logprobs": None}]

    async def chunks() -> AsyncIterator[SSE]:
        streamed = 0
        final: CitationsEvent | None = None
        try:
            stream = await run_in_threadpool(
                lambda: service.stream_answer(question, backend, history=history, kbs=kbs)
            )
            async for e in iterate_closing(metrics.observe(stream, backend)):
                if isinstance(e, PassagesEvent):
                    passages = [p.model_dump(mode="json") for p in e.passages]
                    yield chunk(
                        delta({"role": "assistant", "content": ""}),
                        passages=passages,
                        standalone_question=e.standalone_question,
                    )
                elif isinstance(e, TokenEvent):
                    streamed += 1
                    yield chunk(delta({"content": e.text}))
                elif isinstance(e, CitationsEvent):
                    final = e
                    if not streamed:  # extractive, refused before generation, early fallback
                        yield chunk(delta({"content": e.answer}))
                elif isinstance(e, DoneEvent) and final is not None:
                    yield chunk(
                        delta({}, "stop"),
                        citations=[c.model_dump(mode="json") for c in final.citations],
                        answer=final.answer,
                        refused=final.refused,
                        fallback=final.fallback,
                    )
                    if req.stream_options and req.stream_options.include_usage:
                        usage = _usage(e.timings.get("prompt_tokens"), streamed)
                        yield chunk([], usage=usage.model_dump())
        except Exception as exc:
            yield openai_error(request, exc)
            return
        yield {"data": "[DONE]"}

    return EventSourceResponse(chunks())
