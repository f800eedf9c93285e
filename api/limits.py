"""Request rate and concurrency limits, in process (one set of counters per API process).

- ``RAG_RATE_LIMIT``: requests per minute per API key (per client address when no keys are set)
  on every route but the health checks and the page; a token bucket, so short bursts up to the
  limit pass. Past it: 429 with ``Retry-After``.
- ``RAG_MAX_CONCURRENT``: chat requests (``/v1/chat``, ``/v1/chat/completions``) being answered
  at once, streams included until their last event; one more is refused at once with a 429
  rather than queued behind the others.

Both are 0 (off) by default. With several worker processes each process counts on its own.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import APIError, error_body

CHAT_PATHS = frozenset({"/v1/chat", "/v1/chat/completions"})
_MAX_CLIENTS = 10_000  # buckets kept before full ones are forgotten


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class RateLimiter:
    """A token bucket per client: ``per_minute`` tokens, refilled continuously."""

    per_minute: int
    buckets: dict[str, _Bucket] = field(default_factory=dict)

    def take(self, client: str, now: float | None = None) -> float:
        """Take one token; returns 0 when allowed, else the seconds until one is free."""
        now = time.monotonic() if now is None else now
        rate = self.per_minute / 60.0
        b = self.buckets.get(client)
        if b is None:
            if len(self.buckets) >= _MAX_CLIENTS:
                self._forget_full(now)
            b = self.buckets[client] = _Bucket(float(self.per_minute), now)
        b.tokens = min(float(self.per_minute), b.tokens + (now - b.at) * rate)
        b.at = now
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            return 0.0
        return (1.0 - b.tokens) / rate

    def _forget_full(self, now: float) -> None:
        rate = self.per_minute / 60.0
        for key in [
            k for k, b in self.buckets.items() if b.tokens + (now - b.at) * rate >= self.per_minute
        ]:
            del self.buckets[key]


def client_identity(request: Request) -> str:
    """The API key's name (set by the key check) or, with no keys, the client's address."""
    if not request.app.state.keys.open:
        return "key:" + str(request.state.key_name)
    return "addr:" + (request.client.host if request.client else "unknown")


def rate_limit(request: Request) -> None:
    """Dependency (after the key check): 429 past ``RAG_RATE_LIMIT`` requests per minute."""
    limiter: RateLimiter | None = request.app.state.rate_limiter
    if limiter is None:
        return
    wait = limiter.take(client_identity(request))
    if wait > 0:
        raise APIError(
            429,
            f"rate limit of {limiter.per_minute} requests per minute reached; "
            f"retry in {math.ceil(wait)} s",
            headers={"Retry-After": str(math.ceil(wait))},
        )


class ConcurrencyLimitMiddleware:
    """At most ``limit`` chat requests in flight (the whole response, streams included)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.active = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in CHAT_PATHS or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        if self.active >= self.limit:
            response = error_body(
                429,
                f"{self.limit} chat requests are being answered already (RAG_MAX_CONCURRENT); "
                "retry shortly",
            )
            response.headers["Retry-After"] = "1"
            await response(scope, receive, send)
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1
