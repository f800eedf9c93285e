"""The chat page at `/`, driven in a real headless Chromium (Debian's package) by Playwright.

No browser is ever downloaded: Playwright launches the system binary. Without it (or without
the ``playwright`` package) these tests skip locally and fail under CI=true. Screenshots go to
``tests/artifacts/`` (git-ignored).
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.routes.page import CSP, STATIC_DIR
from rag import citations
from rag.service import RAGService

from .conftest import ROOT, require, serve, service_copy

HAVE_PLAYWRIGHT = importlib.util.find_spec("playwright") is not None
if HAVE_PLAYWRIGHT:
    from playwright.sync_api import (
        Browser,
        FilePayload,
        Page,
        Request,
        Route,
        ViewportSize,
        expect,
        sync_playwright,
    )

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "tests" / "artifacts"
KEY = "page-key-123"
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}
SLOW = 90_000  # ms: the first question also warms the retriever on a 2-core machine

HOSTILE = (
    '测试县蓝莓报告<img src=x onerror="window.__pwned=1">\n'
    '2020年测试县蓝莓产量为123吨<img src=x onerror="window.__pwned=1">'
    "<script>window.__pwned=2</script>，同比增长7%。\n"
    "其他内容与蓝莓无关。\n"
)


def test_the_page_reads_citation_markers_with_the_library_grammar() -> None:
    """app.js turns markers into buttons with the very pattern the library parses them with."""
    source = (STATIC_DIR / "app.js").read_text(encoding="utf-8")
    literals = re.findall(r"^\s*const CITATION_MARKER = /(.+)/[dgimsuvy]*;\s*$", source, re.M)
    assert len(literals) == 1, "app.js must define CITATION_MARKER once, as a regex literal"
    assert literals[0] == citations.MARKER.pattern


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require(CHROMIUM.exists(), f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    require(HAVE_PLAYWRIGHT, "the playwright package is not installed (pip install -e '.[dev]')")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def keyed_server(
    tmp_path_factory: pytest.TempPathFactory, seeded: RAGService, seeds_dir: Path
) -> Iterator[str]:
    """The seeds on their own index, API keys on."""
    service = service_copy(seeded, tmp_path_factory.mktemp("page"), api_keys=KEY)
    service.ingest([seeds_dir])
    with serve(create_app(service.settings, service)) as base:
        yield base


@pytest.fixture
def open_server(tmp_path: Path, seeded: RAGService) -> Iterator[str]:
    """An empty index, no API keys."""
    service = service_copy(seeded, tmp_path / "data")
    with serve(create_app(service.settings, service)) as base:
        yield base


@pytest.fixture
def jobs_server(tmp_path: Path, seeded: RAGService) -> Iterator[str]:
    """An empty index, no API keys, every upload an ingest job (RAG_INGEST_ASYNC_BYTES=0)."""
    service = service_copy(seeded, tmp_path / "data", ingest_async_bytes=0)
    with serve(create_app(service.settings, service)) as base:
        yield base


def new_page(browser: Browser, problems: list[str], viewport: ViewportSize = DESKTOP) -> Page:
    """A fresh page that records uncaught errors and CSP violations into ``problems``."""
    page = browser.new_page(viewport=viewport, locale="zh-CN")
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    page.on(
        "console",
        lambda m: (
            problems.append(f"console: {m.text}") if "Content Security Policy" in m.text else None
        ),
    )
    return page


def ask(page: Page, question: str) -> None:
    page.select_option("#backend", "extractive")
    page.fill("#question", question)
    page.click("#ask")
    expect(page.locator("#answer")).to_have_attribute("data-state", "done", timeout=SLOW)


def test_page_headers(keyed_server: str) -> None:
    """`/` and its files are open without a key and carry the strict CSP; the API is not open."""
    for path in ("/", "/static/app.js", "/static/style.css"):
        r = httpx.get(keyed_server + path)
        assert r.status_code == 200, path
        assert r.headers["content-security-policy"] == CSP
        assert r.headers["x-content-type-options"] == "nosniff"
    assert "'unsafe-inline'" not in CSP and "frame-ancestors 'none'" in CSP
    assert httpx.get(keyed_server + "/v1/documents").status_code == 401


def test_ask_then_open_the_cited_passage(browser: Browser, keyed_server: str) -> None:
    problems: list[str] = []
    page = new_page(browser, problems)
    response = page.goto(keyed_server + "/")
    assert response is not None and response.headers["content-security-policy"] == CSP

    # No key yet: the documents panel says so, as a message (the API's JSON error message).
    expect(page.locator("#docs-error")).to_contain_text("API key")
    page.fill("#api-key", KEY)
    page.click("#key-save")
    expect(page.locator("#doc-list li")).to_have_count(5)
    assert page.evaluate("sessionStorage.getItem('rag.apiKey')") == KEY

    ask(page, "延吉市2016年集体访人次同比下降了多少?")
    expect(page.locator("#answer-text")).to_contain_text("52%")
    first = page.locator("#citation-list li").first
    quote = first.locator(".quote").text_content()
    assert quote and "52%" in quote

    page.click("#answer-text button.cite[data-marker='1']")
    mark = page.locator("#doc-text mark")
    expect(mark).to_have_count(1)
    expect(mark).to_have_text(quote)  # the highlighted span is exactly the cited one
    expect(mark).to_contain_text("52%")
    expect(mark).to_be_in_viewport()
    expect(page.locator("#doc-title")).to_contain_text("延吉")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / "page-citation.png")

    # The key is kept for the session: a reload needs no new entry.
    page.reload()
    expect(page.locator("#doc-list li")).to_have_count(5)

    # A comparison question (the facts table shows when the service sends facts).
    ask(page, "哪个城市信访量下降最多?")
    expect(page.locator("#answer-text button.cite").first).to_be_visible()
    page.locator("#answer-text button.cite").first.click()
    expect(page.locator("#doc-text mark")).to_have_count(1)
    page.screenshot(path=ARTIFACTS / "page-compare.png")

    # Phone width: one column, nothing wider than the screen.
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=ARTIFACTS / "page-phone.png", full_page=True)
    assert problems == []


def test_hostile_document_text_never_runs(browser: Browser, open_server: str) -> None:
    problems: list[str] = []
    page = new_page(browser, problems)
    page.goto(open_server + "/")
    expect(page.locator("#docs-count")).to_contain_text("0")

    # Upload by drag and drop: a DataTransfer with the file, dropped on the drop zone.
    page.evaluate(
        """text => {
            const data = new DataTransfer();
            data.items.add(new File([text], "hostile.txt", {type: "text/plain"}));
            document.getElementById("drop").dispatchEvent(
                new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true}));
        }""",
        HOSTILE,
    )
    expect(page.locator("#upload-status li[data-status='added']")).to_contain_text("hostile.txt")
    expect(page.locator("#doc-list li")).to_have_count(1)
    expect(page.locator("#doc-list .doc-open")).to_contain_text("<img src=x")

    # An unsupported file through the file input: the API's message, not a stack trace.
    exe: FilePayload = {"name": "notes.exe", "mimeType": "text/plain", "buffer": b"x"}
    page.set_input_files("#file-input", files=[exe])
    failed = page.locator("#upload-status li[data-status='failed']")
    expect(failed).to_contain_text("unsupported file type")
    assert "Traceback" not in (failed.text_content() or "")

    ask(page, "测试县2020年蓝莓产量是多少?")
    expect(page.locator("#answer-text")).to_contain_text("<script>window.__pwned=2</script>")
    page.click("#answer-text button.cite[data-marker='1']")
    mark = page.locator("#doc-text mark")
    expect(mark).to_contain_text("123吨")
    expect(mark).to_contain_text('<img src=x onerror="window.__pwned=1">')
    expect(page.locator("#doc-title")).to_contain_text("<img src=x")
    page.locator("#doc-list .doc-open").click()  # the whole document, no highlight
    expect(page.locator("#doc-text")).to_contain_text("<script>window.__pwned=2</script>")

    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("img").count() == 0
    assert page.locator("script").count() == 1  # app.js only
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / "page-hostile.png")

    # Delete takes two clicks (no modal dialog); the list and the API agree.
    delete = page.locator("#doc-list .delete")
    delete.click()
    expect(delete).to_have_attribute("data-armed", "1")
    delete.click()
    expect(page.locator("#doc-list li")).to_have_count(0)
    assert httpx.get(open_server + "/v1/documents/hostile").status_code == 404
    assert problems == []


def sse(event: str, data: object) -> str:
    return f"event: {event}\r\ndata: {json.dumps(data, ensure_ascii=False)}\r\n\r\n"


def test_stream_parsing_and_facts_table(browser: Browser, open_server: str) -> None:
    """A canned stream (CRLF frames, a ping comment, facts with hostile and missing fields)."""
    citation = {
        "marker": 1,
        "doc_id": "a",
        "source": "a.txt",
        "title": "甲市",
        "start": 0,
        "end": 3,
        "quote": "下降5%",
        "verified": True,
    }
    facts = [
        {"entity": "甲市", "indicator": "信访总量", "value": 5, "unit": "%", "direction": "down"},
        {"entity": "<img src=x onerror=window.__pwned=3>", "value": 250, "implausible": True},
    ]
    body = (
        ": ping\r\n\r\n"
        + sse("passages", {"passages": []})
        + sse("token", {"text": "甲市下降"})
        + sse("token", {"text": "5%[1]"})
        + sse("citations", {"answer": "甲市下降5%[1][9]。", "citations": [citation]})
        + sse("facts", {"facts": facts})
        + sse("done", {"timings": {"total_ms": 12.0}})
    )
    problems: list[str] = []
    page = new_page(browser, problems)
    page.route(
        "**/v1/chat",
        lambda route: route.fulfill(
            status=200, headers={"content-type": "text/event-stream"}, body=body
        ),
    )
    page.goto(open_server + "/")
    ask(page, "哪个城市下降最多?")
    # [1] resolves to a citation and is a button; [9] points nowhere and stays text.
    expect(page.locator("#answer-text")).to_have_text("甲市下降5%[1][9]。")
    expect(page.locator("#answer-text button.cite")).to_have_count(1)
    table = page.locator("#facts-table")
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table.locator("thead")).to_contain_text("Indicator")
    expect(table.locator("tbody tr").first).to_contain_text("↓")
    expect(table.locator("tr.implausible")).to_contain_text("<img src=x")
    assert page.locator("img").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"

    # An error event and an error response are both shown as their message.
    page.unroute("**/v1/chat")
    page.route(
        "**/v1/chat",
        lambda route: route.fulfill(
            status=200,
            headers={"content-type": "text/event-stream"},
            body=sse("error", {"type": "LLMError", "message": "模型超时 / model timed out"}),
        ),
    )
    page.fill("#question", "再问一次")
    page.click("#ask")
    expect(page.locator("#chat-error")).to_have_text("模型超时 / model timed out (LLMError)")
    page.unroute("**/v1/chat")
    # Past the page's own cap (maxlength) the server's 422 message shows.
    page.evaluate("document.getElementById('question').removeAttribute('maxlength')")
    page.fill("#question", "x" * 2001)
    page.click("#ask")
    expect(page.locator("#chat-error")).to_contain_text("longer than 2000 characters")
    expect(page.locator("#answer")).to_have_attribute("data-state", "error")
    assert problems == []


def json_body(request: Request) -> dict[str, Any]:
    body = request.post_data_json
    assert isinstance(body, dict), body
    return body


def chat_bodies(page: Page) -> list[dict[str, Any]]:
    """The JSON bodies of the page's POSTs to /v1/chat, recorded as they are sent."""
    bodies: list[dict[str, Any]] = []

    def record(request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/v1/chat"):
            bodies.append(json_body(request))

    page.on("request", record)
    return bodies


def test_a_follow_up_in_the_thread_then_a_new_conversation(
    browser: Browser, keyed_server: str
) -> None:
    """Earlier turns stay shown and go with the next question as its history; a follow-up shows
    the standalone question it was answered as; 新对话 empties the thread and the history."""
    problems: list[str] = []
    page = new_page(browser, problems)
    bodies = chat_bodies(page)
    page.goto(keyed_server + "/")
    page.fill("#api-key", KEY)
    page.click("#key-save")
    expect(page.locator("#new-chat")).to_be_hidden()

    first = "延吉市城市低保标准调整到了多少?"
    ask(page, first)
    expect(page.locator("#answer-text")).to_contain_text("550")
    expect(page.locator("#standalone-question")).to_be_hidden()  # answered as asked
    expect(page.locator("#new-chat")).to_be_visible()

    ask(page, "农村呢?")
    turns = page.locator("#thread > .turn")
    expect(turns).to_have_count(2)
    older, newer = turns.nth(0), turns.nth(1)
    expect(older.locator(".question-text")).to_have_text(first)
    expect(older.locator(".answer-text")).to_contain_text("550")
    expect(older.locator(".citation-list li").first).to_be_visible()
    expect(newer.locator(".question-text")).to_have_text("农村呢?")
    expect(newer.locator(".answer-text")).to_contain_text("4400")
    standalone = newer.locator(".standalone-question")
    expect(standalone).to_be_visible()
    expect(standalone).to_contain_text("农村")
    expect(standalone).to_contain_text("延吉")
    # The newest turn has the ids, the older one only its classes.
    expect(page.locator("#standalone-question")).to_contain_text("农村")
    expect(page.locator("#answer-text")).to_contain_text("4400")
    assert page.locator("[id='answer-text']").count() == 1
    assert older.locator("[id]").count() == 0

    # The requests: the first without history, the follow-up with the first turn's question and
    # final answer.
    assert len(bodies) == 2
    assert "history" not in bodies[0]
    history = bodies[1]["history"]
    assert [t["role"] for t in history] == ["user", "assistant"]
    assert history[0]["content"] == first
    assert "550" in history[1]["content"]
    assert bodies[1]["question"] == "农村呢?"

    # An earlier turn's citations still open their passage.
    older.locator(".answer-text button.cite").first.click()
    expect(page.locator("#doc-text mark")).to_contain_text("550")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / "page-thread.png", full_page=True)

    page.click("#new-chat")
    expect(turns).to_have_count(0)
    expect(page.locator("#answer")).to_have_count(0)
    expect(page.locator("#new-chat")).to_be_hidden()
    ask(page, first)
    expect(turns).to_have_count(1)
    expect(page.locator("#answer-text")).to_contain_text("550")
    assert len(bodies) == 3
    assert not bodies[2].get("history")
    assert problems == []


def test_history_sent_is_capped(browser: Browser, open_server: str) -> None:
    """At most the last 20 turns go, each at most 4000 characters; a failed turn stays shown but
    is not sent."""
    long_answer = "𠀀" * 4100  # past the cap; outside the BMP: the cap counts code points
    bodies: list[dict[str, Any]] = []

    def fulfill(route: Route) -> None:
        body = json_body(route.request)
        bodies.append(body)
        if body["question"] == "坏问题":
            stream = sse("error", {"type": "LLMError", "message": "模型超时 / model timed out"})
        else:
            n = len(bodies)
            stream = (
                sse("passages", {"passages": [], "standalone_question": body["question"]})
                + sse("citations", {"answer": f"答案{n}" if n > 1 else long_answer})
                + sse("done", {"timings": {"total_ms": 1.0}})
            )
        route.fulfill(status=200, headers={"content-type": "text/event-stream"}, body=stream)

    problems: list[str] = []
    page = new_page(browser, problems)
    page.route("**/v1/chat", fulfill)
    page.goto(open_server + "/")
    for i in range(12):
        ask(page, f"问题{i}")
    assert "history" not in bodies[0]
    assert [t["content"] for t in bodies[1]["history"]] == ["问题0", "𠀀" * 4000]
    page.fill("#question", "坏问题")
    page.click("#ask")
    expect(page.locator("#chat-error")).to_contain_text("model timed out")
    expect(page.locator("#question")).to_have_value("坏问题")  # given back to edit
    ask(page, "最后")
    expect(page.locator("#thread > .turn")).to_have_count(14)
    history = bodies[-1]["history"]
    assert len(history) == 20
    assert [t["role"] for t in history] == ["user", "assistant"] * 10
    assert history[0]["content"] == "问题2" and history[-1]["content"] == "答案12"
    assert "坏问题" not in [t["content"] for t in history]
    # The same question back from the server: no "answered as" line.
    expect(page.locator("#standalone-question")).to_be_hidden()
    assert problems == []


def test_a_job_upload_shows_its_progress_then_its_results(
    browser: Browser, jobs_server: str
) -> None:
    problems: list[str] = []
    page = new_page(browser, problems)
    page.goto(jobs_server + "/")
    expect(page.locator("#docs-count")).to_contain_text("0")
    towns = [
        {
            "name": f"town{i}.txt",
            "mimeType": "text/plain",
            "buffer": f"测试{i}镇工作通报\n\n测试{i}镇新建公园{i + 3}个。".encode(),
        }
        for i in range(6)
    ]
    page.set_input_files("#file-input", files=towns)  # type: ignore[arg-type]
    job = page.locator("#upload-status li.job")
    expect(job).to_have_attribute("data-status", "done", timeout=SLOW)
    expect(job).to_contain_text("6/6")
    bar = job.locator("progress")
    assert bar.get_attribute("value") == bar.get_attribute("max")
    expect(page.locator("#upload-status li[data-status='added']")).to_have_count(6)
    expect(page.locator("#doc-list li")).to_have_count(6)
    assert not problems, problems
