"""What the two streaming routes share (``/v1/chat`` with server-sent events, and
``/v1/chat/completions`` in OpenAI's chunk format): pulling the service's blocking event
iterator without blocking the event loop, closing it when the client leaves, and shaping events
and errors. A stream that fails reports its error under the policy of the JSON responses
(``api.errors.classify``): the same type names and messages, no exception text for a 500.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import TypeVar

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from api.errors import ErrorInfo, classify, log_error
from rag.schemas import ChatEvent, ErrorEvent

T = TypeVar("T")

SSE = dict[str, str]  # one server-sent event, as sse_starlette takes it: event / data


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


def stream_error(request: Request, exc: BaseException) -> ErrorInfo:
    """What a stream tells its client about ``exc`` (logged as a JSON error response would be)."""
    info = classify(exc)
    log_error(request, exc, info)
    return info


def sse_event(event: ChatEvent) -> SSE:
    """A chat event as a server-sent event: its kind as ``event:``, the rest as JSON ``data:``."""
    return {"event": event.event, "data": event.model_dump_json(exclude={"event"})}


def sse_error(request: Request, exc: BaseException) -> SSE:
    """The ``error`` event of a failed /v1/chat stream: ``{"type", "message"}``."""
    info = stream_error(request, exc)
    return sse_event(ErrorEvent(type=info.type, message=info.message))


def openai_error(request: Request, exc: BaseException) -> SSE:
    """The last chunk of a failed /v1/chat/completions stream: ``{"error": {"type",
    "message"}}`` (OpenAI's clients raise on a chunk with an ``error`` field)."""
    info = stream_error(request, exc)
    error = {"type": info.type, "message": info.message}
    return {"data": json.dumps({"error": error}, ensure_ascii=False)}
