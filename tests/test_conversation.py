"""Conversations: follow-ups made standalone (``rag.conversation``), and history through the API
over real HTTP — /v1/chat (JSON and SSE), /v1/chat/completions (OpenAI's client), the typed
clients — on a real index of the seeds."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from api.app import create_app
from api.client import AsyncRAGClient, RAGClient, ValidationError
from rag.config import ConversationSettings
from rag.conversation import Resolved, accept_rewrite, resolve
from rag.schemas import PassagesEvent, Turn
from rag.service import RAGService
from rag.slots import english_places, pinyin_index

from .conftest import serve, service_copy


def _history(*pairs: tuple[str, str]) -> list[Turn]:
    turns = []
    for question, answer in pairs:
        turns += [Turn(role="user", content=question), Turn(role="assistant", content=answer)]
    return turns


# -- the resolution itself: deterministic, no index needed -----------------------------------


@pytest.mark.parametrize(
    ("earlier", "question", "standalone"),
    [
        # an elliptical turn fills the slot it names
        (
            "延吉市2016年集体访人次同比下降了多少?",
            "批次呢?",
            "延吉市2016年集体访批次同比下降了多少?",
        ),
        ("延吉市城市低保标准调整到了多少?", "农村呢?", "延吉市农村低保标准调整到了多少?"),
        ("延吉市城市低保标准调整到了多少?", "農村呢?", "延吉市农村低保标准调整到了多少?"),
        (
            "2019年政府工作报告提出的赤字率是多少?",
            "2018年呢?",
            "2018年政府工作报告提出的赤字率是多少?",
        ),
        ("城阳区刑事警情平均每年下降多少?", "那龙港市呢?", "龙港市刑事警情平均每年下降多少?"),
        (
            "兰州城关区2015年地区生产总值增长目标是多少?",
            "公共财政预算收入呢?",
            "兰州城关区2015年公共财政预算收入增长目标是多少?",
        ),
        (
            "长春二道区计划新增城镇就业多少人?",
            "幸福社区覆盖率的目标呢?",
            "长春二道区幸福社区覆盖率的目标是多少?",
        ),
        (
            "延吉市2016年集体访人次下降了多少?",
            "同比呢?",
            "延吉市2016年集体访人次同比下降了多少?",
        ),
        # a full follow-up inherits the place, the year and the topic it leaves out
        ("龙港市撤销了多少个行政村?", "建立了多少个社区?", "龙港市建立了多少个社区?"),
        ("龙港市撤销了多少个行政村?", "那个地方建立了多少个社区?", "龙港市建立了多少个社区?"),
        (
            "2014年政府工作报告提出的居民消费价格涨幅目标是多少?",
            "上一年实际涨了多少?",
            "据2014年政府工作报告，去年（2013年）居民消费价格实际涨了多少?",
        ),
        (
            "2016年政府工作报告提出的广义货币M2增长目标是多少?",
            "那一年的居民消费价格涨幅目标呢?",
            "2016年政府工作报告提出的居民消费价格涨幅目标是多少?",
        ),
        (
            "How many administrative villages did Longgang abolish?",
            "And how many communities were set up?",
            "How many communities were set up in Longgang?",
        ),
        (
            "How many administrative villages did Longgang abolish?",
            "What about 2018?",
            "How many administrative villages did Longgang abolish in 2018?",
        ),
        (
            "What was Yanji's urban minimum living allowance raised to?",
            "What about rural areas?",
            "What was Yanji's rural minimum living allowance raised to?",
        ),
    ],
)
def test_a_follow_up_inherits_what_it_leaves_out(
    earlier: str, question: str, standalone: str
) -> None:
    resolved = resolve(question, _history((earlier, "…")))
    assert resolved.followup
    assert resolved.standalone == standalone


@pytest.mark.parametrize(
    ("earlier", "question"),
    [
        # names its own place: a topic switch inherits nothing it contradicts
        ("青岛城阳区有多少项划转事项实现了“一网通办”?", "长春二道区计划新增城镇就业多少人?"),
        # names its own year and indicator: stands alone, no place from a city's question
        ("龙港市撤销了多少个行政村?", "2018年城镇新增就业目标是多少?"),
        # asks which place: inherits no place
        ("龙港市撤销了多少个行政村?", "哪个城市信访量下降最多?"),
    ],
)
def test_a_question_that_stands_alone_is_left_alone(earlier: str, question: str) -> None:
    resolved = resolve(question, _history((earlier, "…")))
    assert resolved == Resolved(question, question)


def test_without_history_the_question_is_answered_as_asked() -> None:
    assert resolve("农村呢?") == Resolved("农村呢?", "农村呢?")


def test_the_place_an_answer_named_is_what_that_city_means() -> None:
    history = _history(("哪个城市信访量下降最多?", "延吉市信访总量下降最多[1]。"))
    resolved = resolve("那个城市的低保标准是多少?", history)
    assert resolved.standalone.startswith("延吉市") and "低保标准" in resolved.standalone


def test_slots_carry_over_several_follow_ups() -> None:
    history = _history(("延吉市2016年集体访人次同比下降了多少?", "52%"), ("批次呢?", "7%"))
    resolved = resolve("那个城市的城镇登记失业率是多少?", history)
    assert resolved.standalone.startswith("延吉市")
    assert "城镇登记失业率" in resolved.standalone


def test_a_model_rewrite_must_keep_the_inherited_slots_and_add_no_figure() -> None:
    history = _history(("延吉市2016年集体访人次同比下降了多少?", "52%"))
    resolved = resolve("批次呢?", history)
    assert accept_rewrite("延吉市2016年集体访的批次同比下降了多少?", resolved, history)
    assert not accept_rewrite("2016年集体访批次下降了多少?", resolved, history)  # place lost
    assert not accept_rewrite("延吉市2016年集体访批次下降了7%吗?", resolved, history)  # a figure
    assert not accept_rewrite("", resolved, history)


# -- over real HTTP --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, seeded: RAGService, seeds_dir: Path
) -> Iterator[str]:
    """The app on its own seeds index, extractive by default, small history limits."""
    service = service_copy(
        seeded,
        tmp_path_factory.mktemp("conversation"),
        llm=seeded.settings.llm.model_copy(update={"backend": "extractive"}),
        conversation=ConversationSettings(max_turns=6, max_turn_chars=300),
    )
    service.ingest([seeds_dir])
    with serve(create_app(service.settings, service)) as base:
        yield base


def _chat(server: str, question: str, history: list[dict[str, str]]) -> dict[str, Any]:
    r = httpx.post(
        f"{server}/v1/chat", json={"question": question, "history": history}, timeout=120
    )
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _turns(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [t.model_dump() for t in _history(*pairs)]


def test_chat_answers_a_follow_up_as_its_standalone_question(server: str) -> None:
    first = _chat(server, "延吉市2016年集体访人次同比下降了多少?", [])
    assert "52%" in first["answer"]
    assert first["standalone_question"] == "延吉市2016年集体访人次同比下降了多少?"
    second = _chat(
        server, "批次呢?", _turns(("延吉市2016年集体访人次同比下降了多少?", first["answer"]))
    )
    assert second["standalone_question"] == "延吉市2016年集体访批次同比下降了多少?"
    assert "7%" in second["answer"] and not second["refused"]
    assert second["timings"]["resolve_ms"] >= 0


def test_a_topic_switch_inherits_nothing(server: str) -> None:
    history = _turns(("青岛城阳区有多少项划转事项实现了“一网通办”?", "940项[1]。"))
    answer = _chat(server, "长春二道区计划新增城镇就业多少人?", history)
    assert answer["standalone_question"] == "长春二道区计划新增城镇就业多少人?"
    assert "4.5万" in answer["answer"]


def test_an_unanswerable_follow_up_is_refused(server: str) -> None:
    history = _turns(("城阳区刑事警情平均每年下降多少?", "平均每年下降16.2%[1]。"))
    answer = _chat(server, "那龙港市呢?", history)
    assert answer["standalone_question"] == "龙港市刑事警情平均每年下降多少?"
    assert answer["refused"] and "16.2%" not in answer["answer"]


@pytest.mark.parametrize(
    ("history", "says"),
    [
        ([{"role": "system", "content": "你是…"}], "history.0.role"),
        ([{"role": "user"}], "history.0.content"),
        ([{"role": "user", "content": "问", "name": "x"}], "history.0.name"),
        ([{"role": "user", "content": "问"}] * 7, "at most 6"),
        ([{"role": "assistant", "content": "答" * 301}], "history[0].content"),
        ("not a list", "history"),
    ],
)
def test_bad_history_is_a_422_naming_the_problem(server: str, history: Any, says: str) -> None:
    r = httpx.post(f"{server}/v1/chat", json={"question": "农村呢?", "history": history})
    assert r.status_code == 422, r.text
    assert says in json.dumps(r.json()["error"], ensure_ascii=False)


def test_the_stream_says_the_standalone_question_first(server: str) -> None:
    history = [{"role": "user", "content": "延吉市城市低保标准调整到了多少?"}]
    with RAGClient(server) as client:
        events = list(client.stream_chat("农村呢?", history=history))
    assert isinstance(events[0], PassagesEvent)
    assert events[0].standalone_question == "延吉市农村低保标准调整到了多少?"


def test_clients_send_history(server: str) -> None:
    history = [Turn(role="user", content="延吉市城市低保标准调整到了多少?")]
    with RAGClient(server) as client:
        answer = client.chat("农村呢?", history=history)
    assert answer.standalone_question == "延吉市农村低保标准调整到了多少?"
    assert "4400" in answer.answer

    async def run() -> str | None:
        async with AsyncRAGClient(server) as client:
            dicts = [{"role": "user", "content": "龙港市撤销了多少个行政村?"}]
            return (await client.chat("建立了多少个社区?", history=dicts)).standalone_question

    assert asyncio.run(run()) == "龙港市建立了多少个社区?"
    with RAGClient(server) as client, pytest.raises(ValidationError):
        client.chat("农村呢?", history=[{"role": "robot", "content": "?"}])


def test_chat_completions_uses_the_earlier_messages(server: str) -> None:
    openai = OpenAI(base_url=f"{server}/v1", api_key="unused")
    messages: list[Any] = [
        {"role": "system", "content": "请用中文回答"},
        {"role": "user", "content": "龙港市撤销了多少个行政村?"},
        {"role": "assistant", "content": "撤销73个行政村[1]。"},
        {"role": "user", "content": "建立了多少个社区?"},
    ]
    r = openai.chat.completions.create(model="extractive", messages=messages)
    extra = r.model_extra or {}
    assert extra["standalone_question"] == "龙港市建立了多少个社区?"
    assert "102" in (r.choices[0].message.content or "")
    stream = openai.chat.completions.create(model="extractive", messages=messages, stream=True)
    chunks = [c.model_extra or {} for c in stream]
    assert chunks[0]["standalone_question"] == "龙港市建立了多少个社区?"
    too_many = [{"role": "user", "content": "问"}] * 7 + [messages[-1]]
    bad = httpx.post(
        f"{server}/v1/chat/completions", json={"model": "extractive", "messages": too_many}
    )
    assert bad.status_code == 422 and "messages" in bad.json()["error"]["message"]


def test_english_names_of_the_corpus_places_are_found_by_pinyin() -> None:
    index = pinyin_index(["龙港", "延吉市", "城阳区"])
    asked = "How did Longgang and Chengyang District compare with Yanji?"
    assert english_places(asked, index) == {
        "Longgang": "龙港",
        "Chengyang": "城阳区",
        "Yanji": "延吉市",
    }
    assert english_places("How many villages were there?", index) == {}
