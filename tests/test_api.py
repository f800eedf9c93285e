"""The HTTP API under a real uvicorn on a free loopback port, through the typed clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.client import (
    AsyncRAGClient,
    AuthenticationError,
    NotFoundError,
    RAGClient,
    ValidationError,
)
from rag.config import LLMBackend
from rag.errors import StoreUnavailable
from rag.schemas import ChatEvent, CitationsEvent, ErrorEvent, PassagesEvent
from rag.service import FiltersArg, HistoryArg, KBsArg, RAGService

from .conftest import serve, service_copy

KEY = "test-key-123"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, seeded: RAGService, seeds_dir: Path
) -> Iterator[str]:
    """The app on its own index (seeds ingested), real uvicorn in a thread, API keys on."""
    service = service_copy(
        seeded,
        tmp_path_factory.mktemp("api"),
        api_keys=KEY,
        max_question_chars=200,
        max_upload_bytes=50_000,
    )
    service.ingest([seeds_dir])
    with serve(create_app(service.settings, service)) as base:
        yield base


@pytest.fixture
def client(server: str) -> Iterator[RAGClient]:
    with RAGClient(server, api_key=KEY) as c:
        yield c


def test_health_is_open_and_ready_reports_the_index(server: str) -> None:
    assert httpx.get(f"{server}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{server}/readyz").json()
    assert ready["status"] == "ready" and ready["chunks"] > 0


def test_chat_json_and_search(client: RAGClient) -> None:
    a = client.chat("延吉市2016年集体访人次同比下降了多少?", backend="extractive")
    assert "52%" in a.answer and a.citations[0].doc_id == "000_941dbc5847c0e16b"
    hits = client.search("延吉市集體訪", top_k=3)
    assert len(hits) == 3 and "同比分別下降7%和52%" in hits[0].text


def test_chat_stream_events_in_order(client: RAGClient) -> None:
    events = list(client.stream_chat("龙港市常住人口有多少?", backend="extractive"))
    assert [e.event for e in events] == ["passages", "citations", "done"]
    assert isinstance(events[0], PassagesEvent) and isinstance(events[1], CitationsEvent)
    assert "46.5万" in events[1].answer


def test_async_client_mirrors_the_sync_one(server: str) -> None:
    async def run() -> tuple[str, int, list[Any]]:
        async with AsyncRAGClient(server, api_key=KEY) as c:
            a = await c.chat("城阳区刑事警情平均每年下降多少?", backend="extractive")
            hits = await c.search("城阳区", top_k=2)
            kinds = [
                e.event
                async for e in c.stream_chat("延吉市森林覆盖率是多少?", backend="extractive")
            ]
            return a.answer, len(hits), kinds

    answer, n, kinds = asyncio.run(run())
    assert "16.2%" in answer and n == 2 and kinds == ["passages", "citations", "done"]


def test_upload_makes_a_document_answerable_and_delete_removes_it(
    client: RAGClient, tmp_path: Path
) -> None:
    doc = tmp_path / "新城.txt"
    doc.write_text("新城市2019年空气优良天数达到345天。", encoding="utf-8")
    (result,) = client.upload(doc)
    assert result.status == "added" and result.chunks == 1
    assert any(d.doc_id == "新城" for d in client.documents())
    assert "345天" in client.chat("新城市2019年空气优良天数有多少天?", backend="extractive").answer
    client.delete("新城")
    assert all(h.doc_id != "新城" for h in client.search("新城市空气优良天数", top_k=10))
    with pytest.raises(NotFoundError):
        client.delete("新城")


def test_errors_are_4xx_with_one_json_body(server: str) -> None:
    h = {"Authorization": f"Bearer {KEY}"}
    cases = [
        httpx.post(
            f"{server}/v1/chat",
            content=b"{not json",
            headers=h | {"content-type": "application/json"},
        ),
        httpx.post(f"{server}/v1/chat", json={"question": 42}, headers=h),
        httpx.post(f"{server}/v1/chat", json={"question": "长" * 201}, headers=h),
        httpx.post(f"{server}/v1/chat", json={"question": "   "}, headers=h),
        httpx.post(f"{server}/v1/search", json={"query": "x", "top_k": 0}, headers=h),
        httpx.post(f"{server}/v1/chat", json={"question": "x"}),
        httpx.post(
            f"{server}/v1/chat", json={"question": "x"}, headers={"Authorization": "Bearer wrong"}
        ),
        httpx.delete(f"{server}/v1/documents/nope", headers=h),
        httpx.get(f"{server}/no/such/route", headers=h),
        httpx.post(f"{server}/v1/documents", headers=h, files={"file": ("big.txt", b"x" * 60_000)}),
        httpx.post(f"{server}/v1/documents", headers=h, files={"file": ("prog.exe", b"\x00\x01")}),
        httpx.post(
            f"{server}/v1/documents",
            headers=h,
            files={"file": ("../../etc/passwd.txt", b"\x00\x01\x02")},
        ),
    ]
    statuses = [r.status_code for r in cases]
    assert statuses[:10] == [422, 422, 422, 422, 422, 401, 401, 404, 404, 413]
    assert statuses[10] == 415
    for r in cases[:11]:
        body = r.json()["error"]
        assert set(body) == {"type", "message"} and body["message"]
    # a traversal name is reduced to its base name; binary content fails alone, nothing written
    (doc,) = cases[11].json()["documents"]
    assert doc["source"] == "passwd.txt" and doc["status"] == "failed"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "/v1/chat",
            {"question": "延吉市", "messages": [{"role": "user", "content": "hi"}]},
            "messages",
        ),
        ("/v1/search", {"query": "延吉市", "history": []}, "history"),
        ("/v1/chat", {"question": "延吉市", "topk": 3}, "topk"),
        ("/v1/chat", {"question": "延吉市", "filters": {"doc_id": "a"}, "filter": {}}, "filter"),
        ("/v1/search", {"query": "延吉市", "top": 3}, "top"),
        ("/v1/search", {"query": "延吉市", "stream": True}, "stream"),
    ],
)
def test_unknown_fields_are_a_422_not_ignored(
    server: str, path: str, body: dict[str, object], field: str
) -> None:
    r = httpx.post(f"{server}{path}", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["type"] == "validation_error" and error["message"].startswith(f"{field}: ")


def test_search_query_limit_and_top_k_come_from_the_settings(
    server: str, client: RAGClient, seeded: RAGService
) -> None:
    h = {"Authorization": f"Bearer {KEY}"}
    # max_question_chars (200 here) bounds a query as it does a question, with the same message
    for query, message in (
        ("长" * 201, "query: longer than 200 characters"),
        ("  ", "query: must not be blank"),
    ):
        r = httpx.post(f"{server}/v1/search", json={"query": query}, headers=h)
        assert r.status_code == 422 and r.json()["error"]["message"] == message
    assert len(client.search("长" * 200, top_k=1)) <= 1
    # no top_k: the server's answer.top_k (5 by default), from the client as from raw HTTP
    default = seeded.settings.answer.top_k
    assert len(client.search("延吉市信访")) == default
    raw = httpx.post(f"{server}/v1/search", json={"query": "延吉市信访"}, headers=h).json()
    assert len(raw["hits"]) == default


DOWN = "the Chroma server at http://127.0.0.1:9 cannot be reached"
SECRET = "secret internals: /srv/keys/prod.pem"


class FailingService(RAGService):
    """The real service, whose answers fail as the question says: ``down`` as a part that is
    unavailable, anything else as a bug whose text must never reach a client."""

    def stream_answer(
        self,
        question: str,
        backend: LLMBackend | None = None,
        top_k: int | None = None,
        filters: FiltersArg = None,
        history: HistoryArg = None,
        kbs: KBsArg = None,
    ) -> Iterator[ChatEvent]:
        def fail() -> Iterator[ChatEvent]:
            yield from ()
            if question == "down":
                raise StoreUnavailable(DOWN)
            raise RuntimeError(SECRET)

        return fail()


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory, seeded: RAGService) -> Iterator[str]:
    llm = seeded.settings.llm.model_copy(update={"backend": "extractive"})
    settings = seeded.settings.model_copy(
        update={"data_dir": tmp_path_factory.mktemp("failing"), "llm": llm}
    )
    with serve(create_app(settings, FailingService(settings, embedder=seeded.embedder))) as base:
        yield base


@pytest.mark.parametrize(
    ("question", "status", "type_", "message"),
    [("down", 503, "unavailable", DOWN), ("boom", 500, "internal_error", "internal error")],
)
def test_streams_report_errors_as_the_json_body_does(
    failing: str, question: str, status: int, type_: str, message: str
) -> None:
    """JSON or a stream, /v1/chat or the OpenAI route: one type name and one message per error,
    and an unexpected error's text is never sent."""
    error = {"type": type_, "message": message}
    plain = httpx.post(f"{failing}/v1/chat", json={"question": question})
    assert (plain.status_code, plain.json()) == (status, {"error": error})
    with RAGClient(failing) as c:
        events = list(c.stream_chat(question))
    assert events == [ErrorEvent(type=type_, message=message)]

    messages = [{"role": "user", "content": question}]
    oai = httpx.post(f"{failing}/v1/chat/completions", json={"messages": messages})
    assert (oai.status_code, oai.json()) == (status, {"error": error})
    streamed = httpx.post(
        f"{failing}/v1/chat/completions", json={"messages": messages, "stream": True}
    )
    assert streamed.status_code == 200  # the stream had started: the error is its last chunk
    data = [line[6:] for line in streamed.text.splitlines() if line.startswith("data: ")]
    assert [json.loads(d) for d in data] == [{"error": error}]
    for r in (plain, oai, streamed):
        assert SECRET not in r.text and "RuntimeError" not in r.text


def test_client_raises_typed_errors(server: str) -> None:
    with RAGClient(server, api_key="wrong") as bad, pytest.raises(AuthenticationError):
        bad.search("x")
    with RAGClient(server, api_key=KEY) as c, pytest.raises(ValidationError) as exc:
        c.chat("长" * 500)
    assert exc.value.status == 422 and "200" in exc.value.message


def test_harness_over_http_gives_the_library_figures(
    server: str, seeded: RAGService, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from eval.datasets import load_dataset
    from eval.runner import score_retrieval
    from eval.targets import LocalTarget
    from rag import cli

    res = CliRunner().invoke(
        cli.app,
        [
            "eval",
            "--dataset",
            "seeds",
            "--retrievers",
            "hybrid",
            "--url",
            server,
            "--api-key",
            KEY,
            "--reports",
            str(tmp_path),
        ],
    )
    assert res.exit_code == 0, res.output
    (path,) = tmp_path.glob("seeds-*.json")
    over_http = json.loads(path.read_text())["retrieval"][0]
    ds = load_dataset("seeds")
    local, _ = score_retrieval(ds, ds.samples, LocalTarget(seeded), "hybrid")
    for key in ("recall_at_1", "recall_at_5", "mrr"):
        assert over_http[key] == pytest.approx(getattr(local, key))
