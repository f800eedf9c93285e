"""The answerability check (rag/answerable.py) with the real LAC tagger: a passage answers a
question only when it states the kind of thing asked, about the question's subject and year."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.answerable import answers, asked_kinds, subjects
from rag.service import RAGService

PROFIT = "2022年东吴证券的净利润是多少?"


@pytest.mark.parametrize(
    ("question", "kinds"),
    [
        ("神舟十五号的指令长是谁?", {"person"}),
        ("龙港市撤销了多少个行政村?", {"figure"}),
        ("冬奥会开幕式是什么时候?", {"time"}),
        ("亚运会在哪个城市举办?", {"place"}),
        ("这部电影讲述了什么?", set()),
    ],
)
def test_the_kind_asked_is_read_from_the_question_words(question: str, kinds: set[str]) -> None:
    assert asked_kinds(question) == kinds


def test_joined_and_nested_places_are_alternatives() -> None:
    assert subjects("北京和上海的常住人口是多少?") == [["北京", "上海"]]
    assert subjects("青岛城阳区有多少个社区?") == [["青岛", "城阳区"]]
    # a general name is met by any passage (it says 我国 for 中国)
    assert subjects("中国的粮食产量是多少?") == []


@pytest.mark.parametrize(
    ("excerpt", "context", "year", "expected"),
    [
        ("东吴证券2022年实现净利润17.2亿元。", "", None, True),
        # another company's figure: on the topic, not an answer
        ("长安汽车2022年实现净利润77.98亿元。", "", None, False),
        # another year's figure
        ("东吴证券2021年实现净利润23.3亿元。", "", None, False),
        # the year from the document's own date, the name from its title
        ("实现净利润17.2亿元。", "东吴证券年报", 2022, True),
        # the subject and the thing asked, but no figure
        ("东吴证券净利润保持增长。", "", 2022, False),
    ],
)
def test_an_excerpt_answers_only_of_the_subject_period_and_kind_asked(
    excerpt: str, context: str, year: int | None, expected: bool
) -> None:
    assert answers(PROFIT, excerpt, context, year) is expected


def test_a_person_asked_needs_a_name_and_a_place_its_rank_need_not_be_written() -> None:
    who = "神舟十五号的指令长是谁?"
    assert answers(who, "神舟十五号载人飞船发射成功,指令长由费俊龙担任。", "")
    assert not answers(who, "神舟十五号载人飞船发射成功,指令长将出舱。", "")
    assert answers("龙港市撤销了多少个行政村?", "龙港撤销全部102个行政村。", "")
    assert answers("北京和上海的常住人口是多少?", "上海常住人口2487万人。", "")


def test_a_figure_asked_of_a_thing_is_one_stated_of_it() -> None:
    # the passage's figure is the revenue's; the profit is named without one
    assert not answers(PROFIT, "东吴证券2022年营收100亿元,净利润保持增长。", "")
    assert answers(PROFIT, "东吴证券2022年营收100亿元,净利润17.2亿元。", "")
    # the figure asked is of what the subject did (损失), not of the subject: any figure counts
    assert answers("野火造成了多少美元的损失?", "这场大火造成价值55亿美元的损失。", "野火")


def test_a_year_in_the_excerpt_is_its_period_unless_a_point_of_reference() -> None:
    days = "2014年空气优良天数达到多少天?"
    # the 2015 report reviews 2014 ("去年") and names 2001 only as a point of reference
    assert answers(days, "去年空气优良天数达到313天,创2001年有监测记录以来最好成绩。", "", 2015)
    # a figure the excerpt gives to another year
    assert not answers(days, "2015年空气优良天数达到320天。", "", 2015)


def test_a_time_asked_needs_a_date_not_a_relative_time() -> None:
    opening = "二十大开幕时间"
    assert not answers(opening, "把学习贯彻二十大精神作为当前和今后一个时期的首要任务。", "")
    assert answers(opening, "二十大于2022年10月16日上午在北京开幕。", "")


def test_the_service_refuses_a_passage_on_the_topic_that_does_not_answer(
    fresh: RAGService, tmp_path: Path
) -> None:
    """Through the whole chain (a real index, the extractive backend): a passage about another
    company's profit, or another year's, is no answer; the one asked of is."""
    docs = tmp_path / "news"
    docs.mkdir()
    (docs / "changan.txt").write_text(
        "长安汽车发布年报。长安汽车2022年实现净利润77.98亿元,同比增长118%。", encoding="utf-8"
    )
    (docs / "dongwu.txt").write_text(
        "东吴证券发布年报。东吴证券2021年实现净利润23.3亿元。", encoding="utf-8"
    )
    fresh.ingest([docs])
    for question in (PROFIT, "长安汽车2020年的净利润是多少?"):
        assert fresh.answer(question, backend="extractive").refused, question
    answer = fresh.answer("长安汽车2022年的净利润是多少?", backend="extractive")
    assert not answer.refused and "77.98亿元" in answer.answer
    assert [c.source for c in answer.citations] == ["changan.txt"]
