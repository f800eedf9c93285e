"""The typed clients: the sync and the async one mirror each other, and what the server has
(one document's text, the document count, the 429 of the rate limit) comes through, over real
HTTP (real uvicorn, real index)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.app import create_app
from api.client import (
    AsyncRAGClient,
    DocumentList,
    NotFoundError,
    RAGClient,
    RAGError,
    RateLimitError,
)
from rag.schemas import DocumentText
from rag.service import RAGService

from .conftest import serve

KEY = "client-key"
TEXT = "新城市2019年空气优良天数达到345天。\n新城市2019年新增绿地面积36公顷。\n"


def _public(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def test_sync_and_async_clients_have_the_same_methods_and_parameters() -> None:
    sync, async_ = _public(RAGClient), _public(AsyncRAGClient)
    assert sorted(sync) == sorted(async_)
    assert {"chat", "stream_chat", "search", "document", "documents", "documents_page"} <= set(sync)
    for name, signature in sync.items():
        # names, kinds, defaults and annotations alike; only the return types differ (awaitable)
        assert list(signature.parameters.values()) == list(async_[name].parameters.values()), name
        is_async = inspect.iscoroutinefunction(getattr(AsyncRAGClient, name))
        is_async_gen = inspect.isasyncgenfunction(getattr(AsyncRAGClient, name))
        assert is_async or is_async_gen, f"AsyncRAGClient.{name} is not async"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, seeded: RAGService) -> Iterator[str]:
    """An empty index of its own, keys on, the seeded service's embedder."""
    settings = seeded.settings.model_copy(
        update={"data_dir": tmp_path_factory.mktemp("client"), "api_keys": KEY}
    )
    with serve(create_app(settings, RAGService(settings, embedder=seeded.embedder))) as base:
        yield base


def test_document_text_and_the_document_count(server: str, tmp_path: Path) -> None:
    doc = tmp_path / "新城 报告.txt"
    doc.write_text(TEXT, encoding="utf-8")
    other = tmp_path / "other.txt"
    other.write_text("另一个县2020年新建公园12个。\n", encoding="utf-8")
    with RAGClient(server, api_key=KEY) as c:
        results = c.upload(doc, other)
        assert [r.status for r in results] == ["added", "added"]
        doc_id = results[0].doc_id
        assert doc_id is not None
        got = c.document(doc_id)
        assert isinstance(got, DocumentText)
        assert got.text == TEXT and got.source == "新城 报告.txt" and got.chunks >= 1
        (hit,) = c.search("新城市空气优良天数", top_k=1)  # its offsets index the text
        assert hit.doc_id == doc_id and got.text[hit.start : hit.end] == hit.text
        with pytest.raises(NotFoundError) as missing:
            c.document("no-such-doc")
        assert missing.value.status == 404 and "no-such-doc" in missing.value.message
        page = c.documents_page(limit=1)
        assert isinstance(page, DocumentList)
        assert (page.total, page.offset, page.limit, len(page.documents)) == (2, 0, 1, 1)
        assert [d.doc_id for d in c.documents()] == [d.doc_id for d in c.documents_page().documents]

    async def run() -> tuple[DocumentText, int]:
        async with AsyncRAGClient(server, api_key=KEY) as ac:
            got = await ac.document(doc_id)
            with pytest.raises(NotFoundError):
                await ac.document("no-such-doc")
            return got, (await ac.documents_page(offset=1)).total

    got_async, total = asyncio.run(run())
    assert got_async == got and total == 2


def test_429_is_a_rate_limit_error_with_retry_after(tmp_path: Path, seeded: RAGService) -> None:
    settings = seeded.settings.model_copy(
        update={"data_dir": tmp_path / "data", "api_keys": KEY, "rate_limit": 2}
    )
    with serve(create_app(settings, RAGService(settings, embedder=seeded.embedder))) as base:
        with RAGClient(base, api_key=KEY) as c:
            c.documents()
            c.documents()
            with pytest.raises(RateLimitError) as limited:
                c.documents()
        err = limited.value
        assert isinstance(err, RAGError) and err.status == 429
        assert err.type == "too_many_requests" and "2 requests per minute" in err.message
        assert err.retry_after is not None and err.retry_after >= 1

        async def run() -> RateLimitError:
            async with AsyncRAGClient(base, api_key=KEY) as ac:
                with pytest.raises(RateLimitError) as again:
                    await ac.search("新城")
                return again.value

        again = asyncio.run(run())
        assert again.retry_after is not None and again.retry_after >= 1
