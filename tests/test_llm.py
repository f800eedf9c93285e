"""The LLM backends on the real bundled model: local (llama.cpp in-process) and openai (a real
OpenAI-compatible server, llama.cpp's, started on loopback). A small smoke set only: the local
model costs seconds per answer here; the extractive backend carries the quality gate."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from eval.metrics import answer_correct
from rag.bundled.qwen import QWEN_BYTES, build_qwen
from rag.config import LLMSettings
from rag.errors import ModelError
from rag.schemas import CitationsEvent, TokenEvent
from rag.service import RAGService

from .conftest import ROOT, free_port, require

SMOKE = ["dev-02", "dev-03", "dev-05", "dev-07", "dev-09", "dev-14", "dev-15", "dev-19"]


def dev_questions() -> dict[str, dict[str, object]]:
    lines = (ROOT / "eval" / "datasets" / "dev_questions.jsonl").read_text(encoding="utf-8")
    return {q["id"]: q for q in map(json.loads, lines.splitlines())}


@pytest.fixture(scope="session")
def gguf(seeded: RAGService) -> Path:
    try:
        import llama_cpp  # noqa: F401

        return build_qwen(seeded.settings.models_dir)
    except (ImportError, ModelError) as exc:
        require(False, f"local LLM not installed (make install): {exc}")
        raise


def test_gguf_is_assembled_from_packages_with_the_verified_hash(gguf: Path) -> None:
    assert gguf.stat().st_size == QWEN_BYTES  # the sha256 is checked when assembling


def test_local_backend_smoke(seeded: RAGService, gguf: Path) -> None:
    questions = dev_questions()
    correct = 0
    for qid in SMOKE:
        q = questions[qid]
        a = seeded.answer(str(q["question"]), backend="local")
        assert a.backend == "local"
        for c in a.citations:
            assert seeded.store.document_text(c.doc_id)[c.start : c.end] == c.quote  # type: ignore[index]
        if q["type"] == "unanswerable":
            correct += a.refused
        else:
            correct += (not a.refused) and answer_correct(a.answer, q["must_include"])  # type: ignore[arg-type]
    print(f"local smoke: {correct}/{len(SMOKE)} correct")
    assert correct >= 6


def test_local_backend_streams_tokens_then_citations(seeded: RAGService, gguf: Path) -> None:
    events = list(seeded.stream_answer("延吉市森林覆盖率是多少?", backend="local"))
    kinds = [e.event for e in events]
    assert kinds[0] == "passages" and kinds[-2:] == ["citations", "done"]
    assert any(isinstance(e, TokenEvent) for e in events)
    assert kinds.index("token") < kinds.index("citations")


@pytest.mark.parametrize(
    "question",
    [
        "延吉市2016年集体访人次同比下降了多少?",
        "延吉市2016年集體訪人次同比下降了多少?",
        "By how much did collective petition visits in Yanji fall in 2016?",
    ],
)
def test_local_backend_pairs_the_right_figure_in_three_scripts(
    seeded: RAGService, gguf: Path, question: str
) -> None:
    """ "同比分別下降7%和52%": the 人次 figure is 52%, whatever the question's language."""
    a = seeded.answer(question, backend="local")
    assert "52%" in a.answer and "7%" not in a.answer, a.answer
    assert a.citations and a.citations[0].doc_id == "000_941dbc5847c0e16b"


def test_local_backend_writes_the_comparison_lead_from_the_computed_ranking(
    seeded: RAGService, gguf: Path
) -> None:
    events = list(seeded.stream_answer("哪个城市信访量下降最多?", backend="local"))
    kinds = [e.event for e in events]
    assert kinds[0] == "passages" and kinds[-3:] == ["citations", "facts", "done"]
    assert "token" in kinds and kinds.index("token") < kinds.index("citations")
    answer = next(e for e in events if isinstance(e, CitationsEvent))
    lead = answer.answer.splitlines()[0]
    assert "73%" in lead and "城关" in lead


@pytest.fixture
def openai_server(gguf: Path, tmp_path: Path) -> Iterator[str]:
    """llama.cpp's own OpenAI-compatible server on a free loopback port."""
    port = free_port()
    log = tmp_path / "llama-server.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(gguf),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "4096",
            "--n_threads",
            "2",
            "--model_alias",
            "qwen",
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"llama.cpp server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_openai_backend_through_a_real_server(seeded: RAGService, openai_server: str) -> None:
    settings = seeded.settings.model_copy(
        update={"llm": LLMSettings(backend="openai", base_url=openai_server, model="qwen")}
    )
    service = RAGService(settings, embedder=seeded.embedder)
    a = service.answer("城阳区刑事警情平均每年下降多少?")
    assert a.backend == "openai" and not a.refused
    assert "16.2%" in a.answer
    assert a.citations and a.citations[0].doc_id == "004_525e593bb1f8bd43"


def test_openai_backend_down_falls_back_to_extractive(seeded: RAGService) -> None:
    port = free_port()  # nothing listens there
    settings = seeded.settings.model_copy(
        update={
            "llm": LLMSettings(
                backend="openai", base_url=f"http://127.0.0.1:{port}/v1", timeout_s=5
            )
        }
    )
    service = RAGService(settings, embedder=seeded.embedder)
    a = service.answer("城阳区刑事警情平均每年下降多少?")
    assert a.fallback and "16.2%" in a.answer and a.citations


def test_a_follow_up_with_the_local_model_and_its_guarded_rewrite(
    seeded: RAGService, gguf: Path, tmp_path: Path
) -> None:
    """The deterministic resolution answers the follow-up; with model_rewrite on, the model's
    rewrite is used only if it keeps what was inherited (else the deterministic one stands)."""
    history = [
        {"role": "user", "content": "延吉市城市低保标准调整到了多少?"},
        {"role": "assistant", "content": "城市低保标准由每人每月530元调整至550元[1]。"},
    ]
    plain = seeded.answer("农村呢?", backend="local", history=history)
    assert plain.standalone_question == "延吉市农村低保标准调整到了多少?"
    assert "4400" in plain.answer and not plain.refused
    settings = seeded.settings.model_copy(
        update={
            "conversation": seeded.settings.conversation.model_copy(update={"model_rewrite": True})
        }
    )
    rewriting = RAGService(
        settings,
        embedder=seeded.embedder,
        store=seeded.store,
        chat_models={"local": seeded.chat_model("local")},
    )
    a = rewriting.answer("农村呢?", backend="local", history=history)
    assert "rewrite_ms" in a.timings
    assert a.standalone_question and "延吉" in a.standalone_question
    assert "农村" in a.standalone_question and "4400" in a.answer
