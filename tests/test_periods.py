"""Periods: which years a sentence speaks of, what it states of them, and a question's time scope;
the facts and comparisons built on them (pure functions, real extraction over report text)."""

from __future__ import annotations

import pytest

from rag.facts import compare, extract_facts, parse_question
from rag.periods import Clock, Period, TimeScope, headings, time_scope
from rag.service import RAGService

REPORT_2019 = Clock.of("2019", "2019年政府工作报告")


@pytest.mark.parametrize(
    ("sentence", "heading", "expected"),
    [
        ("去年国内生产总值增长6.6%。", None, Period(2018, 2018, "result")),
        ("今年发展的主要预期目标是:国内生产总值增长6%-6.5%。", None, Period(2019, 2019, "target")),
        ("赤字率拟按2.8%安排。", "二、2019年政府工作任务", Period(2019, 2019, "plan")),
        ("城镇新增就业1361万人。", "一、2018年工作回顾", Period(2018, 2018, "result")),
        ("城镇新增就业1361万人。", "一、一年来工作回顾", Period(2018, 2018, "result")),
        ("过去五年,国内生产总值年均增长7.1%。", None, Period(2014, 2018, "result")),
        ("“十二五”时期,经济实力跃上新台阶。", None, Period(2011, 2015, "result")),
        # a base of comparison is not the year spoken of; full-width digits read as half width
        ("１９８４年工农业总产值比１９８３年增长１４．２％。", None, Period(1984, 1984, "result")),
        ("粮食产量达到6.07亿吨。", None, Period(2018, 2018, "result")),  # a spring report
    ],
)
def test_a_sentence_speaks_of_its_period(
    sentence: str, heading: str | None, expected: Period
) -> None:
    assert REPORT_2019.read(sentence, heading) == expected


def test_a_report_dated_in_december_reports_its_own_year() -> None:
    clock = Clock.of("2021-11-24", "长春市二道区人民政府工作报告")
    period = clock.read("新增城镇就业4.5万人。")
    assert period is not None and (period.first, period.last) == (2021, 2021)


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("2019年政府工作报告提出的赤字率是多少?", TimeScope(reports=(2019,))),
        (
            "据2022年政府工作报告，2021年国内生产总值增长了多少?",
            TimeScope(reports=(2022,), years=(2021, 2021)),
        ),
        (
            "2021年至2025年的政府工作报告中，哪一年赤字率最高?",
            TimeScope(reports=tuple(range(2021, 2026))),
        ),
        (
            "2003年、2005年和2007年的政府工作报告拟发行多少国债?",
            TimeScope(reports=(2003, 2005, 2007)),
        ),
        (
            "據1987年政府工作報告，1986年國民收入是多少？",
            TimeScope(reports=(1987,), years=(1986, 1986)),
        ),
        (
            "According to China's 2024 Government Work Report, how fast did GDP grow in 2023?",
            TimeScope(reports=(2024,), years=(2023, 2023)),
        ),
        ("最近三年的赤字率哪一年最高?", TimeScope(recent=3)),
        ("哪个城市信访量下降最多?", TimeScope()),
    ],
)
def test_questions_get_a_time_scope(question: str, expected: TimeScope) -> None:
    assert time_scope(question) == expected


def test_a_report_reviews_last_year_and_sets_this_years_targets() -> None:
    text = (
        "2015年政府工作报告\n\n一、2014年工作回顾\n\n粮食产量达到6.07亿吨,城镇新增就业1322万人。\n\n"
        "二、2015年工作总体部署\n\n今年粮食产量要稳定在5.5亿吨以上,城镇新增就业1000万人以上。\n"
        "拟安排地方政府专项债券1000亿元。"
    )
    facts = {(f.indicator, f.figure): f for f in extract_facts(text, "2015", date="2015")}
    assert (facts[("粮食产量", "6.07亿吨")].period, facts[("粮食产量", "6.07亿吨")].kind) == (
        "2014",
        "result",
    )
    target = facts[("粮食产量", "5.5亿吨以上")]  # the qualifier stays with the figure
    assert (target.period, target.kind) == ("2015", "target")
    assert facts[("城镇新增就业", "1322万人")].kind == "result"
    bonds = facts[("地方政府专项债券", "1000亿元")]  # an indicator no taxonomy lists
    assert (bonds.period, bonds.kind, bonds.canonical) == ("2015", "plan", None)


def test_a_paragraph_that_opens_with_its_year_dates_the_paragraphs_after_it() -> None:
    """A news report of a work report has no numbered parts: "2014年已经过去。" opens the review
    and "2015年已经到来。" the year's goals; a figure between them with no year is 2014's."""
    text = (
        "兰州:开创和谐幸福城关建设新局面\n2014年已经过去 。这一年,城关区着力打造和谐幸福城区。\n"
        "社会保障体系更加完善 。新增就业4.6万人 ,城镇居民登记失业率控制在1.7%以内 。\n"
        "2015年已经到来 。这一年,是全面深化改革的关键之年。\n"
        "全力实现主要预期目标:城镇居民登记失业率控制在4%以内。\n"
    )
    facts = {f.figure: f for f in extract_facts(text, "lanzhou", date="2015-01-13")}
    assert (facts["4.6万人"].period, facts["4.6万人"].kind) == ("2014", "result")
    assert facts["1.7%以内"].period == "2014"
    assert (facts["4%以内"].period, facts["4%以内"].kind) == ("2015", "target")
    # a paragraph opening with an event of a year ("1998年发生特大洪水后,") dates nothing else
    assert [h for _, h in headings("1998年发生特大洪水后,总结实施了基本措施。\n")] == []


def _reports(texts: dict[int, str]) -> list:  # type: ignore[type-arg]
    return [f for y, t in texts.items() for f in extract_facts(t, str(y), date=str(y))]


def test_the_first_year_past_a_threshold_compares_units_of_one_scale() -> None:
    facts = _reports(
        {
            2016: "今年拟安排地方专项债券4000亿元。",
            2017: "今年拟安排地方专项债券8000亿元。",
            2018: "今年拟安排地方专项债券1.35万亿元。",
            2019: "今年拟安排地方专项债券2.15万亿元。",
        }
    )
    q = parse_question("2016年至2019年的政府工作报告中，地方专项债券从哪一年开始超过1万亿元?")
    assert q is not None and q.mode == "first"
    ranked = compare(q, facts)
    assert ranked is not None
    assert [(e, fs[0].figure) for e, fs in ranked.groups] == [
        ("2018年", "1.35万亿元"),
        ("2016年", "4000亿元"),
        ("2017年", "8000亿元"),
        ("2019年", "2.15万亿元"),
    ]


def test_results_are_compared_by_the_year_they_speak_of() -> None:
    """The report of 1988 gives 1987's harvest: the year compared is 1987, not 1988."""
    facts = _reports(
        {
            1987: "去年粮食总产量达到3910亿公斤。今年粮食产量力争达到4050亿公斤。",
            1988: "去年粮食总产量达到4024亿公斤。",
        }
    )
    q = parse_question("根据1987年和1988年的政府工作报告，1986年和1987年哪一年的粮食总产量更高?")
    assert q is not None
    ranked = compare(q, facts)
    assert ranked is not None
    assert [(e, fs[0].figure) for e, fs in ranked.groups] == [
        ("1987年", "4024亿公斤"),
        ("1986年", "3910亿公斤"),
    ]


_SMALL_REPORTS = {
    "2019.txt": "2019年政府工作报告\n\n一、2018年工作回顾\n\n去年赤字率为2.6%。\n\n"
    "二、2019年政府工作任务\n\n今年赤字率拟按2.8%安排。\n",
    "2021.txt": "2021年政府工作报告\n\n一、2020年工作回顾\n\n过去一年国内生产总值增长2.3%。\n\n"
    "二、2021年政府工作任务\n\n今年赤字率拟按3.2%左右安排。\n",
}


@pytest.fixture
def reports(fresh: RAGService) -> RAGService:
    """Two small work reports, named by year as the national reports are (2020 missing)."""
    summary = fresh.ingest_bytes([(n, t.encode()) for n, t in _SMALL_REPORTS.items()])
    assert summary.count("added") == 2, summary
    return fresh


def test_a_report_year_the_corpus_lacks_is_refused_plainly(reports: RAGService) -> None:
    a = reports.answer("2020年政府工作报告安排的赤字率是多少?", backend="extractive")
    assert a.refused and not a.citations
    assert "资料中没有2020年的政府工作报告" in a.answer and "2019年、2021年" in a.answer


def test_a_named_report_is_answered_from_that_report_and_says_so(reports: RAGService) -> None:
    a = reports.answer("2021年政府工作报告提出的赤字率是多少?", backend="extractive")
    assert not a.refused and "3.2%" in a.answer and "2.8%" not in a.answer
    assert a.answer.startswith("2021年政府工作报告")  # the figure names its report
    assert {c.source for c in a.citations} == {"2021.txt"}


def test_a_figure_of_what_the_report_does_not_speak_of_is_refused(fresh: RAGService) -> None:
    """A sentence sharing the report, 预算 and 增加 with "国防预算增长多少" is about 中央预算内投资:
    without 国防 (the rarest word of what is asked about) it is not the answer."""
    report = (
        "2019年政府工作报告\n\n二、2019年政府工作任务\n\n今年赤字率拟按2.8%安排。"
        "今年中央预算内投资安排5776亿元，比去年增加400亿元。\n"
    )
    fresh.ingest_bytes([("2019.txt", report.encode())])
    a = fresh.answer("2019年政府工作报告提出的国防预算增加多少?", backend="extractive")
    assert a.refused and not a.citations, a.answer
    asked = fresh.answer("2019年政府工作报告提出的中央预算内投资增加多少?", backend="extractive")
    assert not asked.refused and "400亿元" in asked.answer


def test_a_range_with_a_gap_says_which_year_is_missing(reports: RAGService) -> None:
    a = reports.answer(
        "2019年至2021年的政府工作报告中，哪一年的赤字率目标最高?", backend="extractive"
    )
    assert a.facts and a.answer.startswith("2021年最高") and "3.2%左右" in a.answer
    assert "资料中没有2020年的报告" in a.answer
