"""The routes. ``v1_router()`` is the API: every ``/v1/*`` route, behind the API key and the
rate limit. The health checks, the page and ``/metrics`` are mounted by ``api.app`` on their own
(``/metrics`` behind the key as well).

Each route is declared with its whole path (``/v1/chat``) rather than under a router prefix: in
the FastAPI of requirements.lock (0.165), ``scope["route"]`` is the route as declared, so a
prefix would be missing from the route templates the metrics are labelled with
(``api.observability``), while older versions (pyproject allows 0.115) see the prefixed copy.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from api.auth import authenticate
from api.limits import rate_limit
from api.routes import chat, documents, embeddings, jobs, kbs, openai, search

# The key first: a request with a bad key is refused without counting against a valid one.
KEYED = (Depends(authenticate), Depends(rate_limit))


def v1_router() -> APIRouter:
    v1 = APIRouter(dependencies=KEYED)
    for module in (chat, openai, embeddings, search, documents, jobs, kbs):
        v1.include_router(module.router)
    return v1
