"""The OpenAI wire format, /metrics, request ids and client disconnects, under a real uvicorn.

OpenAI's own client and LangChain's ChatOpenAI talk to the app unmodified. The disconnect tests
need a model that is still generating when the client leaves: a real LLM cannot be made slow on
cue, so a scripted LangChain model (one character every 20 ms) stands in, and a callback counts
the tokens it really produced.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_openai import ChatOpenAI
from openai import OpenAI

from api.app import create_app
from rag.service import RAGService

from .conftest import serve, service_copy

KEY = "test-key-openai-456"
AUTH = {"Authorization": f"Bearer {KEY}"}
QUESTION = "延吉市2016年集体访人次同比下降了多少?"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, seeded: RAGService, seeds_dir: Path
) -> Iterator[str]:
    """The app on its own index, keys on, `extractive` as the default backend."""
    service = service_copy(
        seeded,
        tmp_path_factory.mktemp("openai-api"),
        api_keys=KEY,
        max_question_chars=200,
        llm=seeded.settings.llm.model_copy(update={"backend": "extractive"}),
    )
    service.ingest([seeds_dir])
    with serve(create_app(service.settings, service)) as base:
        yield base


@pytest.fixture
def oai(server: str) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0) as client:
        yield client


# -- OpenAI wire format ----------------------------------------------------------------------------


def test_openai_client_plain_answer_with_citations(oai: OpenAI) -> None:
    done = oai.chat.completions.create(
        model="extractive",
        messages=[
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "你好"},
            {"role": "assistant", "content": "你好!"},
            {"role": "user", "content": QUESTION},
        ],
        temperature=0.7,
        max_tokens=50,
    )
    assert done.object == "chat.completion" and done.model == "extractive"
    (choice,) = done.choices
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    content = choice.message.content or ""
    assert "52%" in content and "[1]" in content
    extra = done.model_extra or {}
    citations, passages = extra["citations"], extra["passages"]
    assert citations[0]["doc_id"] == "000_941dbc5847c0e16b" and citations[0]["verified"]
    assert citations[0]["marker"] == 1 and passages and passages[0]["n"] == 1
    assert done.usage is not None and done.usage.total_tokens >= 0


def test_openai_client_streaming_ends_with_citations_and_done(server: str, oai: OpenAI) -> None:
    chunks = list(
        oai.chat.completions.create(
            model="extractive", messages=[{"role": "user", "content": QUESTION}], stream=True
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].model_extra and chunks[0].model_extra["passages"]
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert "52%" in text
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop" and all(
        c.choices[0].finish_reason is None for c in chunks[:-1]
    )
    extra = last.model_extra or {}
    assert extra["citations"][0]["doc_id"] == "000_941dbc5847c0e16b"
    assert extra["answer"] == text
    # the raw stream: OpenAI's SSE framing, ending with [DONE]
    raw = httpx.post(
        f"{server}/v1/chat/completions",
        headers=AUTH,
        json={
            "model": "extractive",
            "stream": True,
            "messages": [{"role": "user", "content": QUESTION}],
        },
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    data = [line[6:] for line in raw.text.splitlines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    assert all(json.loads(d)["object"] == "chat.completion.chunk" for d in data[:-1])


def test_openai_stream_options_include_usage(oai: OpenAI) -> None:
    chunks = list(
        oai.chat.completions.create(
            model="extractive",
            messages=[{"role": "user", "content": QUESTION}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None


def test_unknown_model_name_gets_the_default_backend(oai: OpenAI) -> None:
    done = oai.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": [{"type": "text", "text": QUESTION}]}],
    )
    assert done.model == "extractive" and "52%" in (done.choices[0].message.content or "")


def test_langchain_chat_openai_plain_and_streaming(server: str) -> None:
    llm = ChatOpenAI(base_url=f"{server}/v1", api_key=KEY, model="extractive", max_retries=0)
    reply = llm.invoke(QUESTION)
    assert "52%" in str(reply.content)
    streamed = "".join(str(c.content) for c in llm.stream(QUESTION))
    assert streamed == reply.content


def test_openai_fields_we_do_not_use_are_accepted(server: str) -> None:
    """Unlike /v1/chat, the OpenAI route ignores what it does not know: clients send it."""
    body = {
        "model": "extractive",
        "messages": [{"role": "user", "content": QUESTION, "name": "alice"}],
        "user": "user-123",
        "seed": 7,
        "presence_penalty": 0.5,
        "logit_bias": {"50256": -100},
        "response_format": {"type": "text"},
        "some_future_option": True,
    }
    r = httpx.post(f"{server}/v1/chat/completions", headers=AUTH, json=body)
    assert r.status_code == 200, r.text
    assert "52%" in r.json()["choices"][0]["message"]["content"]


def test_openai_errors_keep_the_json_error_body(server: str, oai: OpenAI) -> None:
    with pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=f"{server}/v1", api_key="wrong", max_retries=0).chat.completions.create(
            model="extractive", messages=[{"role": "user", "content": QUESTION}]
        )
    with pytest.raises(openai.UnprocessableEntityError) as too_long:
        oai.chat.completions.create(
            model="extractive", messages=[{"role": "user", "content": "长" * 201}]
        )
    assert "200" in too_long.value.message
    cases = [
        {"model": "extractive", "messages": []},
        {"model": "extractive", "messages": [{"role": "system", "content": "hi"}]},
        {"model": "extractive", "messages": [{"role": "user", "content": "   "}]},
        {"model": "extractive", "messages": [{"role": "user", "content": QUESTION}], "n": 2},
        {"messages": "not a list"},
    ]
    for body in cases:
        r = httpx.post(f"{server}/v1/chat/completions", headers=AUTH, json=body)
        assert r.status_code == 422, body
        assert set(r.json()["error"]) == {"type", "message"}
    r = httpx.post(f"{server}/v1/chat/completions", json=cases[0])
    assert r.status_code == 401 and r.json()["error"]["type"] == "unauthorized"


# -- metrics and request ids -----------------------------------------------------------------------


def _metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text format."""
    for line in text.splitlines():
        if line.startswith(name + "{"):
            got = dict(re.findall(r'(\w+)="([^"]*)"', line[: line.rindex("}")]))
            if all(got.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_stages_and_need_the_key(server: str) -> None:
    before = httpx.get(f"{server}/metrics", headers=AUTH).text
    for _ in range(2):
        httpx.post(
            f"{server}/v1/chat", headers=AUTH, json={"question": QUESTION, "backend": "extractive"}
        ).raise_for_status()
    httpx.post(f"{server}/v1/chat", headers=AUTH, json={"question": 42})
    r = httpx.get(f"{server}/metrics", headers=AUTH)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    after = r.text

    def grew(name: str, **labels: str) -> float:
        return _metric(after, name, **labels) - _metric(before, name, **labels)

    chat = {"method": "POST", "route": "/v1/chat"}
    assert grew("rag_http_requests_total", **chat, status="200") == 2
    assert grew("rag_http_requests_total", **chat, status="422") == 1
    assert grew("rag_http_request_duration_seconds_count", **chat) == 3
    for stage in ("retrieval", "total"):
        labels = {"backend": "extractive", "stage": stage}
        assert grew("rag_answer_stage_seconds_count", **labels) == 2
    assert grew("rag_answers_total", backend="extractive", outcome="answered") == 2
    unauthorized = httpx.get(f"{server}/metrics")
    assert unauthorized.status_code == 401 and unauthorized.json()["error"]["message"]
    # unknown paths share one label (no label per probed URL)
    httpx.get(f"{server}/no/such/path", headers=AUTH)
    text = httpx.get(f"{server}/metrics", headers=AUTH).text
    assert 'route="<unmatched>"' in text and "/no/such/path" not in text


def test_request_id_is_echoed_generated_and_on_log_records(
    server: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rag.api")
    r = httpx.post(
        f"{server}/v1/chat",
        headers=AUTH | {"X-Request-ID": "trace-abc.123"},
        json={"question": QUESTION, "backend": "extractive"},
    )
    assert r.headers["x-request-id"] == "trace-abc.123"
    fresh = httpx.get(f"{server}/healthz").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", fresh)
    forged = httpx.get(f"{server}/healthz", headers={"X-Request-ID": "x" * 500}).headers
    assert len(forged["x-request-id"]) == 32  # an unusable id is replaced, not echoed
    # errors carry it too
    bad = httpx.post(f"{server}/v1/chat", headers={"X-Request-ID": "err-1"}, json={})
    assert bad.status_code == 401 and bad.headers["x-request-id"] == "err-1"
    deadline = time.monotonic() + 5
    while not any(getattr(rec, "request_id", None) == "err-1" for rec in caplog.records):
        assert time.monotonic() < deadline, "no log record with the request id"
        time.sleep(0.05)
    mine = [rec for rec in caplog.records if getattr(rec, "request_id", None) == "trace-abc.123"]
    assert mine and "/v1/chat" in mine[0].getMessage()
    assert KEY not in caplog.text and "Bearer" not in caplog.text


# -- a client that leaves mid-stream stops generation ----------------------------------------------


class TokenCounter(BaseCallbackHandler):
    """Counts the tokens the model really produced (called from the generating thread)."""

    def __init__(self) -> None:
        self.tokens = 0

    def on_llm_new_token(self, token: Any, **kwargs: Any) -> None:
        self.tokens += 1


SCRIPTED_TOKENS = 400  # 8 s of generation at 20 ms a token


@dataclass
class Scripted:
    base: str
    counter: TokenCounter


@pytest.fixture(scope="module")
def scripted(
    tmp_path_factory: pytest.TempPathFactory, seeded: RAGService, seeds_dir: Path
) -> Iterator[Scripted]:
    """The seeds on an index of their own, with a scripted model given to the service as its
    `local` backend (extractive stays the default)."""
    counter = TokenCounter()
    model = FakeListChatModel(responses=["ζ" * SCRIPTED_TOKENS], sleep=0.02, callbacks=[counter])
    llm = seeded.settings.llm.model_copy(update={"backend": "extractive"})
    settings = seeded.settings.model_copy(
        update={"data_dir": tmp_path_factory.mktemp("scripted"), "api_keys": KEY, "llm": llm}
    )
    service = RAGService(settings, embedder=seeded.embedder, chat_models={"local": model})
    service.ingest([seeds_dir])
    with serve(create_app(settings, service)) as base:
        yield Scripted(base, counter)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat", {"question": QUESTION, "backend": "local", "stream": True}),
        (
            "/v1/chat/completions",
            {"model": "local", "stream": True, "messages": [{"role": "user", "content": QUESTION}]},
        ),
    ],
)
def test_a_client_that_disconnects_mid_stream_stops_generation(
    scripted: Scripted, path: str, body: dict[str, object]
) -> None:
    counter = scripted.counter
    counter.tokens = 0
    with (
        httpx.Client(base_url=scripted.base, headers=AUTH, timeout=30) as http,
        http.stream("POST", path, json=body) as r,
    ):
        assert r.status_code == 200
        seen = 0
        for line in r.iter_lines():
            seen += line.startswith("data:") and "ζ" in line
            if seen >= 5:
                break
    # the response is closed unread: the connection drops
    time.sleep(1.0)
    stopped_at = counter.tokens
    time.sleep(1.0)
    assert counter.tokens == stopped_at, "the model kept generating after the client left"
    assert 5 <= stopped_at < SCRIPTED_TOKENS // 4
    metrics = httpx.get(f"{scripted.base}/metrics", headers=AUTH).text
    assert _metric(metrics, "rag_answers_total", backend="local", outcome="aborted") >= 1
