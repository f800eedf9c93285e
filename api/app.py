"""The FastAPI app: a thin layer over one RAGService (parse → call the service → shape)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from api import errors, observability
from api.auth import KeyRing
from api.limits import ConcurrencyLimitMiddleware, RateLimiter
from api.routes import KEYED, health, metrics, page, v1_router
from rag.config import Settings
from rag.errors import Unavailable
from rag.service import RAGService


def create_app(settings: Settings | None = None, service: RAGService | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        observability.configure_logging()
        svc = service or RAGService(settings)
        # Load the models and open the index once, before the first request. A Chroma server
        # that is down now is no reason not to start: /readyz says 503 until it is back.
        # The same for an embeddings server (RAG_EMBEDDING__BASE_URL) that is down.
        try:
            await run_in_threadpool(svc.warm_up)
        except Unavailable as exc:
            logging.getLogger("rag.api").warning("starting without the index: %s", exc)
        app.state.service = svc
        app.state.metrics.watch_kbs(svc.kbs)
        await run_in_threadpool(svc.resume_jobs)  # jobs a stopped process left unfinished
        yield

    app = FastAPI(
        title="rag-zh",
        version="0.1.0",
        lifespan=lifespan,
        description="Cited question answering over Chinese documents.",
    )
    app.state.settings = settings
    app.state.keys = KeyRing.from_settings(settings)  # a bad keys file: no start
    app.state.metrics = observability.Metrics()
    app.state.rate_limiter = RateLimiter(settings.rate_limit) if settings.rate_limit else None
    if settings.max_concurrent:
        app.add_middleware(ConcurrencyLimitMiddleware, limit=settings.max_concurrent)
    errors.install(app)
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=[observability.REQUEST_ID_HEADER],
        )
    # Around CORS and the routes: every response (preflights, 4xx errors) has its request id.
    observability.install_request_id_logging()
    app.add_middleware(observability.RequestContextMiddleware, metrics=app.state.metrics)
    app.include_router(health.router)
    page.install(app)  # the chat page at `/` and `/static/*`: open, like the health checks
    app.include_router(v1_router())  # /v1/*: behind the key and the rate limit
    app.include_router(metrics.router, dependencies=KEYED)
    return app


def app_factory() -> FastAPI:
    """For `uvicorn --factory api.app:app_factory` and `rag serve`: settings from the env."""
    return create_app()
