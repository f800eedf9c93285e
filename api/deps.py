"""Dependencies: the one RAGService of the app, and the API-key check."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from api.errors import APIError
from rag.service import RAGService


def get_service(request: Request) -> RAGService:
    return request.app.state.service  # type: ignore[no-any-return]


def require_key(request: Request) -> None:
    """With RAG_API_KEYS set, ``Authorization: Bearer <key>`` is required (constant-time check)."""
    keys: list[str] = request.app.state.api_keys
    if not keys:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not any(
        hmac.compare_digest(token.encode(), k.encode()) for k in keys
    ):
        raise APIError(401, "missing or invalid API key (Authorization: Bearer <key>)")


Service = Annotated[RAGService, Depends(get_service)]
