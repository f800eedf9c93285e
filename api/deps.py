"""Dependencies and checks the routes share: the one RAGService of the app, the knowledge bases
a request asks of, the question and history checks, loading an answer's backend (the key check
is ``api.auth``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import Depends, Request
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from api.auth import Principal
from api.errors import APIError
from rag.config import LLMBackend, Settings
from rag.schemas import Turn
from rag.service import RAGService


def get_service(request: Request) -> RAGService:
    return request.app.state.service  # type: ignore[no-any-return]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


# Knowledge bases one search or chat may ask of at once.
MAX_KBS = 16

# The ``kbs`` field of /v1/search, /v1/chat and /v1/chat/completions.
KBsField = Annotated[
    list[str] | None,
    Field(
        min_length=1,
        max_length=MAX_KBS,
        description="the knowledge bases asked (default: the default KB); each hit and "
        "citation names its KB",
    ),
]


async def asked_kbs(kbs: Sequence[str] | None, service: RAGService, caller: Principal) -> list[str]:
    """The knowledge bases a search or chat asks of (default: the default KB), each one the
    caller may read (else the 404 of a KB that does not exist) and one that exists: checked
    before a stream starts, so that it is an error response, not an error event."""
    names = list(dict.fromkeys(kbs or [service.default_kb]))
    caller.check_read_all(names)
    if names != [service.default_kb]:  # the default KB always exists
        await run_in_threadpool(service.kbs.select, names)
    return names


Service = Annotated[RAGService, Depends(get_service)]
AppSettings = Annotated[Settings, Depends(get_settings)]


def check_question(question: str, settings: Settings, field: str = "question") -> None:
    """Blank or longer than ``max_question_chars``: a 422 (one rule for /v1/chat,
    /v1/chat/completions and /v1/search)."""
    limit = settings.max_question_chars
    if not question.strip():
        raise APIError(422, f"{field}: must not be blank")
    if len(question) > limit:
        raise APIError(422, f"{field}: longer than {limit} characters")


def check_history(history: Sequence[Turn], settings: Settings, field: str = "history") -> None:
    """More turns than ``conversation.max_turns`` or a turn longer than
    ``conversation.max_turn_chars``: a 422 naming the limit (roles are checked by the schema)."""
    limits = settings.conversation
    if len(history) > limits.max_turns:
        raise APIError(
            422, f"{field}: {len(history)} turns, at most {limits.max_turns} are accepted"
        )
    for i, turn in enumerate(history):
        if len(turn.content) > limits.max_turn_chars:
            raise APIError(
                422, f"{field}[{i}].content: longer than {limits.max_turn_chars} characters"
            )


async def load_backend(service: RAGService, backend: LLMBackend) -> None:
    """Load the backend's model before answering, so that a backend this server cannot run is
    an error response rather than an error event (the service raises ``Unsupported`` → 422 for
    a backend other than the default, ``LLMError`` → 503 for the default one)."""
    await run_in_threadpool(service.chat_model, backend)
