"""Request ids and Prometheus metrics: one ASGI middleware, one registry per app.

- Every request gets an id: a well-formed ``X-Request-ID`` header of the request, else a new one.
  It comes back in the ``X-Request-ID`` response header and is on every log record made while the
  request is served (``record.request_id``; ``LOG_FORMAT`` shows it), so one request's log lines
  can be grepped. Headers are never logged (API keys travel in them).
- ``Metrics`` holds the app's own ``CollectorRegistry`` (several apps in one process do not
  clash): requests by route template, method, status and the API key's name (never the key);
  request latency; per-stage answer
  latency from the answer timings; prompt and generated tokens; answers by outcome; the
  knowledge bases held open and opened.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Annotated, Any

from fastapi import Depends, Request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.kbs import KnowledgeBases
from rag.schemas import ChatEvent, CitationsEvent, DoneEvent, TokenEvent

REQUEST_ID_HEADER = "X-Request-ID"
LOG_FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
_ACCEPTED_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")  # anything else could forge log lines
access_log = logging.getLogger("rag.api.access")

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


def new_request_id(offered: str | None) -> str:
    """The client's id when it is well formed, else a fresh one."""
    if offered and _ACCEPTED_ID.fullmatch(offered):
        return offered
    return uuid.uuid4().hex


def install_request_id_logging() -> None:
    """Give every log record a ``request_id`` attribute (``-`` outside a request). Idempotent."""
    current = logging.getLogRecordFactory()
    if getattr(current, "_adds_request_id", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        record.request_id = request_id_var.get()
        return record

    factory._adds_request_id = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def configure_logging() -> None:
    """When nothing configured logging (``rag serve``, plain uvicorn): INFO lines with ids."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)


class Metrics:
    """The app's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "rag_http_requests",
            "HTTP requests, by the API key's name (`-`: no key was accepted)",
            ["method", "route", "status", "key"],
            registry=r,
        )
        self.latency = Histogram(
            "rag_http_request_duration_seconds",
            "HTTP request latency, until the last byte of the response (streams included)",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.stages = Histogram(
            "rag_answer_stage_seconds",
            "Answer latency per stage (from the answer timings: retrieval, first_token, "
            "generation, total …), measured from the start of the answer",
            ["backend", "stage"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "rag_answer_tokens",
            "Tokens: prompt (as the model counts them) and completion (streamed chunks)",
            ["backend", "kind"],
            registry=r,
        )
        self.answers = Counter(
            "rag_answers",
            "Answers by outcome: answered, refused, fallback, aborted (client gone or error)",
            ["backend", "outcome"],
            registry=r,
        )

    def watch_kbs(self, kbs: KnowledgeBases) -> None:
        """Export the knowledge bases held open and how often one was opened."""
        self.registry.register(_KBCollector(kbs))

    def export(self) -> bytes:
        return generate_latest(self.registry)

    def observe(self, events: Iterator[ChatEvent], backend: str) -> Iterator[ChatEvent]:
        """Pass the events of one answer through, recording tokens, timings and the outcome.

        Closing this iterator closes ``events`` (so generation stops)."""
        finished = False
        try:
            for e in events:
                if isinstance(e, TokenEvent):
                    self.tokens.labels(backend, "completion").inc()
                elif isinstance(e, CitationsEvent):
                    outcome = "fallback" if e.fallback else "refused" if e.refused else "answered"
                    self.answers.labels(backend, outcome).inc()
                    finished = True
                elif isinstance(e, DoneEvent):
                    self.record_timings(e.timings, backend)
                yield e
        finally:
            if not finished:
                self.answers.labels(backend, "aborted").inc()
            close = getattr(events, "close", None)
            if close is not None:
                close()

    def record_timings(self, timings: dict[str, float], backend: str) -> None:
        for key, value in timings.items():
            if key.endswith("_ms"):
                self.stages.labels(backend, key.removesuffix("_ms")).observe(value / 1000)
            elif key.endswith("_tokens"):
                self.tokens.labels(backend, key.removesuffix("_tokens")).inc(value)


class _KBCollector(Collector):
    """Read at each scrape: the KBs held open now (RAG_KB__MAX_OPEN bounds it, besides the
    default one) and the KBs opened so far; opens that keep rising under a steady load mean KBs
    are released and reopened, a sign the bound is below the KBs in use."""

    def __init__(self, kbs: KnowledgeBases) -> None:
        self.kbs = kbs

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        yield GaugeMetricFamily(
            "rag_kbs_open",
            "Knowledge bases held open (lexical index, facts in memory), the default included",
            value=len(self.kbs.open_names()),
        )
        yield CounterMetricFamily(
            "rag_kb_opens",
            "Knowledge bases opened (first use, or again after a release)",
            value=self.kbs.opens,
        )
        # each open KB's pieces (rag.segments): counted since the KB was opened in this process
        kbs = [(kb.name, kb.segments) for kb in self.kbs.open_kbs() if kb.has_segments]
        pieces = GaugeMetricFamily(
            "rag_lexical_pieces", "Pieces of a KB's lexical index, facts and catalog", labels=["kb"]
        )
        families = {
            key: CounterMetricFamily(f"rag_lexical_{key}", help, labels=["kb"])
            for key, help in (
                ("catch_ups", "Catch-ups with what the store committed since the last one"),
                ("chunks_read", "Chunks read from the store into new pieces (never re-read)"),
                ("merges", "Background merges of pieces published"),
            )
        }
        for name, segments in kbs:
            pieces.add_metric([name], segments.pieces)
            for key, family in families.items():
                family.add_metric([name], segments.stats[key])
        yield pieces
        yield from families.values()


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics  # type: ignore[no-any-return]


AppMetrics = Annotated[Metrics, Depends(get_metrics)]


class RequestContextMiddleware:
    """Request id (header in, header out, on log records), request counts and latency."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), None
        )
        rid = new_request_id(offered)
        # Not reset afterwards: the server runs each request in a task (and context) of its
        # own, and the app's last-resort error handler, which runs outside this middleware,
        # still logs under the id.
        request_id_var.set(rid)
        state = scope.setdefault("state", {})  # the one dict ``request.state`` writes to
        status = 500
        t0 = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", rid.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - t0
            route = getattr(scope.get("route"), "path", None) or "<unmatched>"
            method = str(scope["method"])
            key = str(state.get("key_name", "-"))  # set by api.auth
            self.metrics.requests.labels(method, route, str(status), key).inc()
            self.metrics.latency.labels(method, route).observe(seconds)
            access_log.info("%s %s %d %.1fms", method, scope["path"], status, seconds * 1000)
