"""Request rate and concurrency limits (RAG_RATE_LIMIT, RAG_MAX_CONCURRENT) over real HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from api.app import create_app
from api.limits import RateLimiter
from rag.config import LLMBackend
from rag.schemas import ChatEvent
from rag.service import FiltersArg, HistoryArg, KBsArg, RAGService

from .conftest import serve, service_copy

QUESTION = "延吉市2016年集体访人次同比下降了多少?"


def test_token_bucket_refills() -> None:
    limiter = RateLimiter(per_minute=2)
    assert limiter.take("k", now=0.0) == 0.0
    assert limiter.take("k", now=0.0) == 0.0
    assert limiter.take("k", now=0.0) == 30.0  # one token per 30 s
    assert limiter.take("other", now=0.0) == 0.0  # a budget per client
    assert limiter.take("k", now=30.0) == 0.0


def test_rate_limit_is_a_429_per_key(tmp_path: Path, seeded: RAGService) -> None:
    service = service_copy(seeded, tmp_path / "data", api_keys="k1,k2", rate_limit=3)
    with serve(create_app(service.settings, service)) as base:

        def get(key: str) -> httpx.Response:
            return httpx.get(f"{base}/v1/documents", headers={"authorization": f"Bearer {key}"})

        assert [get("k1").status_code for _ in range(3)] == [200, 200, 200]
        limited = get("k1")
        assert limited.status_code == 429
        assert limited.json()["error"]["type"] == "too_many_requests"
        assert "3 requests per minute" in limited.json()["error"]["message"]
        assert int(limited.headers["retry-after"]) >= 1
        assert get("k2").status_code == 200  # another key, another budget
        assert httpx.get(f"{base}/healthz").status_code == 200  # health is never limited
        assert httpx.get(f"{base}/readyz").status_code == 200
        # An invalid key is refused for the key, not counted against a valid one.
        assert get("nope").status_code == 401


class GatedService(RAGService):
    """The real service, holding each answer until ``gate`` opens."""

    def __init__(self, base: RAGService) -> None:
        super().__init__(base.settings, embedder=base.embedder)
        self.entered = threading.Event()
        self.gate = threading.Event()

    def stream_answer(
        self,
        question: str,
        backend: LLMBackend | None = None,
        top_k: int | None = None,
        filters: FiltersArg = None,
        history: HistoryArg = None,
        kbs: KBsArg = None,
    ) -> Iterator[ChatEvent]:
        events = super().stream_answer(question, backend, top_k, filters, history, kbs)
        self.entered.set()
        assert self.gate.wait(60)
        return events


def test_max_concurrent_chats_is_a_429(tmp_path: Path, seeded: RAGService, seeds_dir: Path) -> None:
    base_service = service_copy(seeded, tmp_path / "data", max_concurrent=1)
    base_service.ingest([seeds_dir])
    service = GatedService(base_service)
    body = {"question": QUESTION, "backend": "extractive"}
    with serve(create_app(service.settings, service)) as base:
        first: dict[str, Any] = {}

        def ask() -> None:
            first["response"] = httpx.post(f"{base}/v1/chat", json=body, timeout=120)

        thread = threading.Thread(target=ask)
        thread.start()
        try:
            assert service.entered.wait(60)
            refused = httpx.post(f"{base}/v1/chat", json=body, timeout=30)
            assert refused.status_code == 429
            assert refused.json()["error"]["type"] == "too_many_requests"
            assert "RAG_MAX_CONCURRENT" in refused.json()["error"]["message"]
            openai = httpx.post(
                f"{base}/v1/chat/completions",
                json={"model": "extractive", "messages": [{"role": "user", "content": QUESTION}]},
                timeout=30,
            )
            assert openai.status_code == 429
            # Other routes are not chat: not limited.
            search = httpx.post(f"{base}/v1/search", json={"query": "延吉"}, timeout=30)
            assert search.status_code == 200
        finally:
            service.gate.set()
            thread.join(timeout=120)
        assert first["response"].status_code == 200, first["response"].text
        assert "52%" in first["response"].json()["answer"]
        again = httpx.post(f"{base}/v1/chat", json=body, timeout=120)
        assert again.status_code == 200  # the slot is free again
