"""Indicator facts: extraction quality on the seeds, question routing, computed comparisons."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.facts import compare, extract_facts, parse_question
from rag.schemas import Answer, Fact
from rag.service import RAGService

from .conftest import SEEDS

# Every petition (信访) figure the seeds state, listed by hand: (doc, indicator, value, direction).
PETITION_FACTS = {
    ("000_941dbc5847c0e16b", "集体访批次", 442.0, None),
    ("000_941dbc5847c0e16b", "集体访人次", 2179.0, None),
    ("000_941dbc5847c0e16b", "集体访批次", 7.0, "down"),
    ("000_941dbc5847c0e16b", "集体访人次", 52.0, "down"),
    ("001_69232ea0bb8e6e45", "信访总量", 15.1, "down"),
    ("001_69232ea0bb8e6e45", "进京非访", 73.0, "down"),
    ("004_525e593bb1f8bd43", "来信", 20.0, "down"),
    ("004_525e593bb1f8bd43", "来访", 50.0, "down"),
    ("004_525e593bb1f8bd43", "网络信访", 200.0, "down"),
}

HEADLINE = [
    "哪个城市信访量下降最多?",
    "哪個城市信訪量下降最多?",
    "Which city cut petition volume the most?",
]


def seed_facts() -> list[Fact]:
    return [
        f
        for p in sorted(SEEDS.glob("*.txt"))
        for f in extract_facts(p.read_text(encoding="utf-8"), p.stem)
    ]


def test_petition_extraction_precision_and_recall_on_the_seeds() -> None:
    facts = seed_facts()
    found = {(f.doc_id, f.indicator, f.value, f.direction) for f in facts if f.family == "信访"}
    hits = len(found & PETITION_FACTS)
    precision, recall = hits / max(len(found), 1), hits / len(PETITION_FACTS)
    print(
        f"petition facts: precision {precision:.2f}, recall {recall:.2f} ({hits} of {len(found)})"
    )
    assert precision >= 0.9 and recall >= 0.9, sorted(found ^ PETITION_FACTS)
    for f in facts:  # the span holds the figure, in the original script
        text = (SEEDS / f"{f.doc_id}.txt").read_text(encoding="utf-8")
        assert f"{f.value:g}" in text[f.start : f.end]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("信访总量、进京非访量分别同比下降15.1%、73%。", [("信访总量", 15.1), ("进京非访", 73.0)]),
        (
            "2016年,集體訪442批2179人次,同比分別下降7%和52%。",
            [("集体访批次", 7.0), ("集体访人次", 52.0)],
        ),
        ("政法部门涉法涉诉来信同比下降20%,来访同比下降50%。", [("来信", 20.0), ("来访", 50.0)]),
        ("全年新增就业4.6万人,新增17项集中办理事项。", []),  # 新增: a level, not a change
    ],
)
def test_list_patterns_pair_figures_in_order(text: str, expected: list[tuple[str, float]]) -> None:
    changes = [(f.indicator, f.value) for f in extract_facts(text, "d") if f.direction]
    assert changes == expected


def test_targets_are_told_apart_from_results() -> None:
    text = (
        "过去一年,城镇新增就业1351万人,经济社会发展主要目标任务全面完成。\n"
        "今年发展的主要预期目标是:国内生产总值增长6.5%左右;城镇新增就业1100万人以上;"
        "赤字率拟按2.6%安排。"
    )
    kinds = {(f.indicator, f.value): f.kind for f in extract_facts(text, "2018", date="2018")}
    assert kinds[("城镇新增就业", 1351.0)] == "result"
    assert kinds[("城镇新增就业", 1100.0)] == "target"
    assert kinds[("国内生产总值", 6.5)] == "target"
    assert kinds[("赤字率", 2.6)] == "target"  # in the paragraph of goals


@pytest.mark.parametrize("question", HEADLINE)
def test_comparison_questions_are_routed_in_three_languages(question: str) -> None:
    q = parse_question(question)
    assert q is not None and q.families == {"信访"} and q.direction == "down" and q.descending


@pytest.mark.parametrize(
    "question", ["延吉市2016年集体访人次同比下降了多少?", "龙港市常住人口有多少?"]
)
def test_factoid_questions_are_not_routed(question: str) -> None:
    assert parse_question(question) is None


def test_periods_are_compared_by_the_documents_year() -> None:
    """National reports: the entity is the year; targets only when the question asks for one."""
    reports = {
        2017: "今年赤字率拟按3%安排,财政赤字2.38万亿元。",
        2018: "今年赤字率拟按2.6%安排,比去年预算低0.4个百分点。",
        2019: "去年赤字率为2.6%。今年赤字率拟按2.8%安排。",
        2020: "今年赤字率拟按3.6%以上安排。",
    }
    facts = [
        f
        for year, text in reports.items()
        for f in extract_facts(text, str(year), region="全国", date=str(year))
    ]
    q = parse_question("2017年至2019年的政府工作报告中,哪一年的赤字率目标最低?")
    assert q is not None
    ranked = compare(q, facts)
    assert ranked is not None and ranked.by_year
    assert [(e, fs[0].value) for e, fs in ranked.groups] == [
        ("2018年", 2.6),
        ("2019年", 2.8),
        ("2017年", 3.0),
    ]


def _check_headline(answer: Answer, seeded: RAGService) -> None:
    assert answer.facts, answer.answer
    facts = {(f.doc_id, f.indicator): f for f in answer.facts}
    winner = answer.facts[0]
    assert (winner.doc_id, winner.value, winner.unit) == ("001_69232ea0bb8e6e45", 73.0, "%")
    assert "城关" in answer.answer.splitlines()[0] and "73%" in answer.answer.splitlines()[0]
    assert facts[("001_69232ea0bb8e6e45", "信访总量")].value == 15.1
    assert facts[("000_941dbc5847c0e16b", "集体访人次")].value == 52.0
    assert facts[("000_941dbc5847c0e16b", "集体访批次")].value == 7.0
    assert facts[("004_525e593bb1f8bd43", "来访")].value == 50.0
    assert facts[("004_525e593bb1f8bd43", "来信")].value == 20.0
    flagged = facts[("004_525e593bb1f8bd43", "网络信访")]
    assert flagged.implausible and not any(f.implausible for f in answer.facts if f is not flagged)
    # every figure is cited to its own document, at offsets whose text holds the figure
    by_marker = {c.marker: c for c in answer.citations}
    for f in answer.facts:
        c = by_marker[f.marker or 0]
        text = seeded.store.document_text(c.doc_id) or ""
        assert c.doc_id == f.doc_id and c.verified and text[c.start : c.end] == c.quote
        assert f"{f.value:g}%" in c.quote.replace("％", "%")
        assert f"[{f.marker}]" in answer.answer


@pytest.mark.parametrize("question", HEADLINE)
def test_headline_question_is_answered_by_computation(seeded: RAGService, question: str) -> None:
    answer = seeded.answer(question, backend="extractive")
    _check_headline(answer, seeded)
    events = [e.event for e in seeded.stream_answer(question, backend="extractive")]
    assert events == ["passages", "citations", "facts", "done"]


def test_an_extra_document_changes_the_winner_and_removing_it_restores_it(
    seeded: RAGService, tmp_path: Path
) -> None:
    extra = tmp_path / "某市通报.txt"
    extra.write_text("某市信访工作通报\n某市2015年信访总量同比下降80%。\n", encoding="utf-8")
    try:
        assert seeded.ingest([extra]).count("added") == 1
        answer = seeded.answer(HEADLINE[0], backend="extractive")
        assert answer.facts and answer.facts[0].doc_id == "某市通报"
        assert answer.facts[0].value == 80.0 and "80%" in answer.answer.splitlines()[0]
    finally:
        seeded.delete_document("某市通报")
    _check_headline(seeded.answer(HEADLINE[0], backend="extractive"), seeded)
